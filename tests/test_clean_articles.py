"""Clean articles must come out unchanged: the cleaner may take the title out and nothing else.

Each ``tests/clean_articles/*.txt`` is a real-looking article with no junk in it, laid out as the
pipeline receives it (title line, blank line, paragraphs separated by one blank line). They carry
content a junk remover can wrongly eat: prose about cookies and sharing, one-line paragraphs, lists,
Q&A lines, ingredient lines, datelines, typographic quotes, pipes, tables of figures, non-English text.

Cases the current cleaner gets wrong are listed in ``KNOWN_FAILURES`` (``xfail(strict=True)``): fix
the rule, then take the case off the list. Never edit an article to make it pass.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from cleaners import clean_document

ARTICLES_DIR = Path(__file__).parent / "clean_articles"
ARTICLES = sorted(ARTICLES_DIR.glob("*.txt"))

# file name -> which line a rule wrongly removes
KNOWN_FAILURES: dict[str, str] = {}  # none now: the pipe table of results-nordlicht-q3 is kept (keep_table_rows)


def _params():
    for path in ARTICLES:
        marks = []
        if path.name in KNOWN_FAILURES:
            marks = [pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[path.name])]
        yield pytest.param(path, id=path.name, marks=marks)


def _read(path: Path) -> tuple[str, str, str]:
    """The file's text, its title (first line) and its expected clean text: everything below the title."""
    text = path.read_text(encoding="utf-8")
    title, _, body = text.partition("\n")
    return text, title, body.lstrip("\n").rstrip("\n")


@pytest.mark.parametrize("path", list(_params()))
def test_clean_article_is_unchanged(path: Path, rules, judge) -> None:
    text, title, expected = _read(path)
    result = clean_document(text, rules, source="example.org", judge=judge)
    removed = [(r.line_no, r.rule, r.text) for r in result.removed]
    assert result.title == title, f"title not taken; removed: {removed}"
    assert removed == [(1, "structure.title", title)], f"real text removed: {removed}"
    assert result.text == expected


def test_articles_are_well_formed() -> None:
    """Guard the fixtures: a layout change here would be blamed on the cleaner."""
    assert len(ARTICLES) >= 12, f"expected at least 12 articles in {ARTICLES_DIR}"
    for path in ARTICLES:
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        assert lines[0].strip() and not lines[1], f"{path.name}: title line, then a blank line"
        assert text.endswith("\n") and not text.endswith("\n\n"), f"{path.name}: one final newline"
        assert "\n\n\n" not in text, f"{path.name}: paragraphs separated by one blank line"
        assert all(line == line.rstrip() for line in lines), f"{path.name}: trailing spaces"
        assert "\t" not in text and "\r" not in text, f"{path.name}: tabs or CR"
        assert unicodedata.normalize("NFC", text) == text, f"{path.name}: not NFC"
    assert set(KNOWN_FAILURES) <= {p.name for p in ARTICLES}, "KNOWN_FAILURES names a missing file"
