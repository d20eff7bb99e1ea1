"""Golden tests: each case's output is files under tests/golden.

A case of one text (``input`` a file, cleaned with ``clean_document``) keeps its cleaned text, title, metadata and
removals (line, rule, text, reason). A case of input files (``inputs`` a folder of text, HTML or JSONL files, read
as a run reads them) keeps the rows a run writes for them, in ``expected_rows.jsonl``: each article with its removed
lines, and each reject with its reason; pass 1 counts the lines of all its documents first, so a folder of one site's
pages shows the learned per-source lines as a run does.

Run ``pytest --update-golden`` to rewrite them from the current output; the diff is the review.
Cases with ``expect = "fail"`` are known failures, run as ``xfail(strict=True)``.
"""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cleaners import clean_document
from cleaners.boilerplate import LineStats, count_lines
from cleaners.readers import discover, read_file
from cleaners.shard import clean_raw_batch
from cleaners.types import RawDocument, Reject
from tests.conftest import ROOT

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p for p in GOLDEN.iterdir() if (p / "case.toml").exists())


def _case(path: Path) -> dict:
    return tomllib.loads((path / "case.toml").read_text(encoding="utf-8"))


# Row columns left out of the golden rows: the run's time and the versions (every rule edit changes the rules
# version; the model's digest is in each classifier reason already).
_UNPINNED = ("ingested_at", "pipeline_version", "rules_version")


def _render_inputs(case_dir: Path, rules, judge) -> dict[str, str]:
    """The rows a run writes for the case's input folder: both passes over all its documents, then one row per
    article or reject, in input order, with paths relative to the folder."""
    root = case_dir / _case(case_dir)["inputs"]
    items = [item for f in discover([str(root)]) for item in read_file(f)]
    docs = [item for item in items if isinstance(item, RawDocument)]
    stats = LineStats.from_table(count_lines((doc.source, doc.text) for doc in docs))
    cleaned = iter(clean_raw_batch(docs, rules, datetime(2026, 1, 1, tzinfo=UTC), line_stats=stats, judge=judge))
    lines = []
    for item in items:
        if isinstance(item, Reject):
            row = {"reject": item.input_id, "source": item.source, "input_file": item.input_file,
                   "reason_code": str(item.reason_code), "reason": item.reason}
        else:
            outcome = next(cleaned)
            row = ({"reject": outcome.input_id, "reason_code": str(outcome.reason_code), "reason": outcome.reason}
                   if isinstance(outcome, Reject) else {k: v for k, v in outcome.items() if k not in _UNPINNED})
        if row.get("input_file"):
            row["input_file"] = Path(row["input_file"]).resolve().relative_to(root.resolve()).as_posix()
        lines.append(json.dumps(row, ensure_ascii=False, sort_keys=True, default=str))
    return {"expected_rows.jsonl": "".join(line + "\n" for line in lines)}


def _render(case_dir: Path, rules, judge) -> dict[str, str]:
    case = _case(case_dir)
    if "inputs" in case:
        return _render_inputs(case_dir, rules, judge)
    raw = (ROOT / case["input"]).read_text(encoding="utf-8")
    result = clean_document(raw, rules, source=case["source"], judge=judge)
    removed = "".join(f"{r.line_no}\t{r.rule}\t{r.text}\t{r.reason}\n" for r in result.removed)
    return {
        "expected.txt": result.text + "\n",
        "expected_title.txt": (result.title or "") + "\n",
        "expected_metadata.json": json.dumps(result.metadata, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
        "expected_removed.tsv": removed,
    }


def _params():
    for case_dir in CASES:
        marks = [pytest.mark.xfail(strict=True)] if _case(case_dir).get("expect") == "fail" else []
        yield pytest.param(case_dir, id=case_dir.name, marks=marks)


@pytest.mark.parametrize("case_dir", list(_params()))
def test_golden_case(case_dir: Path, rules, judge, update_golden: bool) -> None:
    actual = _render(case_dir, rules, judge)
    if update_golden:
        for name, content in actual.items():
            (case_dir / name).write_text(content, encoding="utf-8")
        pytest.skip(f"{case_dir.name}: expected files rewritten from the current output; review the diff")
    for name, content in actual.items():
        expected = (case_dir / name).read_text(encoding="utf-8")
        assert content == expected, f"{case_dir.name}/{name} differs; review, then pytest --update-golden"


def test_every_case_is_well_formed() -> None:
    assert CASES, "no golden cases found"
    for case_dir in CASES:
        case = _case(case_dir)
        assert case.get("expect") in {"pass", "fail"} and "label" in case, case_dir.name
        if "inputs" in case:
            assert (case_dir / case["inputs"]).is_dir(), f"{case_dir.name}: inputs {case['inputs']} is missing"
        else:
            assert {"input", "source"} <= set(case), case_dir.name
            assert (ROOT / case["input"]).is_file(), f"{case_dir.name}: input {case['input']} is missing"
