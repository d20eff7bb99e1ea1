"""What the seeds must show, stated directly (the golden files pin the exact output)."""

from __future__ import annotations

from cleaners import clean_document
from tests.conftest import ROOT

SEED_ONE = ROOT / "data/raw/420intel.com/000_09f1c496b2e8d967.txt"
SEED_TWO = ROOT / "data/raw/001_5f048fc90bdc07c1.txt"
JUNK = [
    "420 Intel News",
    "For more Cannabis News like this",
    "Disqus content widget",
    "Region: Mexico",
]


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def test_seed_one_keeps_every_body_paragraph_and_no_junk(rules, judge) -> None:
    raw = SEED_ONE.read_text(encoding="utf-8")
    result = clean_document(raw, rules, source="420intel.com", judge=judge)
    title = "Mexican President Says Country Won’t Combat Cartels on Orders From U.S."
    assert result.title == title
    assert title not in result.text
    assert result.metadata == {"region": "Mexico"}
    for junk in JUNK:
        assert junk not in result.text
    body = [p for p in _paragraphs(raw) if p != title and not any(p.startswith(j) for j in JUNK)]
    kept = _paragraphs(result.text)
    assert [p.replace("\u00a0", " ").rstrip() for p in body] == kept
    assert kept[0] == "Mexico's President Asserts Sovereignty, Rejects US Drug Policy Interference."
    assert kept[-1].startswith("“López Obrador has argued before against ‘demonizing’")
    assert kept[-1].endswith("reacted with disgust and disbelief.”")  # the closing AP quote stays


def test_seed_two_keeps_every_paragraph_and_loses_the_stray_in(rules, judge) -> None:
    raw = SEED_TWO.read_text(encoding="utf-8")
    result = clean_document(raw, rules, source="unknown", judge=judge)
    lines = raw.split("\n")
    assert lines[1] == "in"
    assert result.title == lines[0]
    assert [(r.line_no, r.rule) for r in result.removed] == [(1, "structure.title"), (2, "fragment.stray-connector")]
    assert _paragraphs(result.text) == _paragraphs("\n".join(lines[2:]))
    assert "\nin\n" not in result.text and not result.text.startswith("in\n")


def test_every_removal_names_a_rule_and_a_reason(rules, judge) -> None:
    for path, source in [(SEED_ONE, "420intel.com"), (SEED_TWO, "unknown")]:
        result = clean_document(path.read_text(encoding="utf-8"), rules, source=source, judge=judge)
        assert result.removed
        for removed in result.removed:
            assert removed.rule and removed.reason and removed.line_no >= 1 and removed.text
