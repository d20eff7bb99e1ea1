"""Golden tests: each case's cleaned text, title, metadata and removals (line, rule, text, reason) are files under
tests/golden.

Run ``pytest --update-golden`` to rewrite them from the current output; the diff is the review.
Cases with ``expect = "fail"`` are known failures, run as ``xfail(strict=True)``.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from cleaners import clean_document
from tests.conftest import ROOT

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p for p in GOLDEN.iterdir() if (p / "case.toml").exists())


def _case(path: Path) -> dict:
    return tomllib.loads((path / "case.toml").read_text(encoding="utf-8"))


def _render(case_dir: Path, rules, judge) -> dict[str, str]:
    case = _case(case_dir)
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
        assert {"label", "input", "source", "expect"} <= set(case), case_dir.name
        assert case["expect"] in {"pass", "fail"}, case_dir.name
        assert (ROOT / case["input"]).is_file(), f"{case_dir.name}: input {case['input']} is missing"
