"""Line-by-line view of a cleaning decision: for whoever writes rules for a new site."""

from __future__ import annotations

from dataclasses import dataclass

from cleaners.normalize import normalize_characters
from cleaners.types import CleanResult


@dataclass(frozen=True, slots=True)
class ExplainedLine:
    line_no: int
    text: str
    kept: bool
    rule: str = ""
    reason: str = ""
    note: str = ""  # a kept line: the valve that kept it from a learned step, and why


def explain_lines(raw_text: str, result: CleanResult) -> list[ExplainedLine]:
    """Every non-blank input line, marked kept or removed (with the rule and the evidence); a kept line that a valve
    saved from a learned step says so."""
    normalized, _ = normalize_characters(raw_text)
    removed = {r.line_no: r for r in result.removed}
    spared = dict(result.spared_rows)
    out = []
    for number, line in enumerate(normalized.split("\n"), start=1):
        if not line.strip():
            continue
        hit = removed.get(number)
        if hit is None:
            out.append(ExplainedLine(number, line.strip(), True, note=spared.get(number, "")))
        else:
            out.append(ExplainedLine(number, line.strip(), False, hit.rule, hit.reason))
    return out
