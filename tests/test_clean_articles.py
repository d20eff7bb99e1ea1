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
from collections import Counter
from pathlib import Path

import pytest

from cleaners import clean_document

ARTICLES_DIR = Path(__file__).parent / "clean_articles"
ARTICLES = sorted(ARTICLES_DIR.glob("*.txt"))

_QUOTED_INTERFACE = ("interface text quoted on a line of its own in an article about it reads, line by line, as that "
                     "interface (a documented limit of line rules)")
_SHORT_TAIL = ("the line classifier takes short lines near the end of a document (list items, labelled facts, a "
               "sign-off) for a footer: real pages end in footers, these articles do not")
_SHORT_TABLE = "the line classifier takes a table flattened to one cell per line for a link list"

# file name -> why the current cleaner removes real text from it (xfail(strict=True): a fix makes the test
# fail until the case is taken off this list)
KNOWN_FAILURES: dict[str, str] = {
    "about-comments.txt": _QUOTED_INTERFACE + ": 'Comments powered by Disqus.'",
    "about-cookie-banners.txt": _QUOTED_INTERFACE + ": 'Accept all cookies'",
    "about-sharing.txt": _QUOTED_INTERFACE + ": 'Share on Facebook', 'Tweet this', 'Email this', 'Print this article'",
    "about-subscriptions.txt": _QUOTED_INTERFACE + ": 'Subscribe now.', 'Sign up for free.'",
    "resolutions.txt": "related.read-more: a 'Read more' heading inside the article",
    "lyrics-refrain.txt": "structure.title-repeat: a refrain that is the song's title is taken for the title "
                          "printed again; and the classifier takes a lyric line",
    "listicle-short-items.txt": _SHORT_TAIL + " (items 9 and 10)",
    "press-release.txt": _SHORT_TAIL + " (the media contact block)",
    "financial-table.txt": _SHORT_TABLE,
    "copyright-law-explainer.txt": _QUOTED_INTERFACE + ": a copyright notice quoted in full near the end",
    "poem-feed.txt": _QUOTED_INTERFACE + ": a poem's 'Share.' and 'Subscribe.' lines",
    "de-vereinsnachrichten.txt": _SHORT_TAIL + " (the new committee, one 'Role: Name' line each)",
    "open-letter-signoff.txt": _SHORT_TAIL + " (the signatories and their roles)",
    "press-release-about.txt": _SHORT_TAIL + " (the 'About' section and the media contact block)",
    "lyrics-chorus-markers.txt": "the line classifier takes short lyric lines and their [Chorus] markers, repeated, "
                                 "for a link list",
    "school-lunch-menu.txt": "nav.menu-button: a 'Menu' heading above the article's first prose (only one under "
                             "prose is spared)",
    "volunteer-signup-heading.txt": "nav.account: a 'Sign up' heading near the top (account links are matched at the "
                                    "edges, under prose too); and the classifier takes the list of meeting points",
}


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


# The lines each known failure loses now, as written by `pytest tests/test_clean_articles.py --update-golden`.
KNOWN_LOSSES = ARTICLES_DIR / "known_losses.json"


def _losses(path: Path, rules, judge) -> list[str]:
    text = path.read_text(encoding="utf-8")
    result = clean_document(text, rules, source="example.org", judge=judge)
    return [r.text for r in result.removed if (r.line_no, r.rule) != (1, "structure.title")]


def test_known_failures_lose_no_more_than_they_do_now(rules, judge, update_golden: bool) -> None:
    """The known failures are xfail, so a new loss in one of them would pass unseen: each may lose at most the
    lines it loses now (known_losses.json; a fix that loses fewer passes here, and its strict xfail says so)."""
    import json

    found = {name: _losses(ARTICLES_DIR / name, rules, judge) for name in sorted(KNOWN_FAILURES)}
    if update_golden:
        KNOWN_LOSSES.write_text(json.dumps(found, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        pytest.skip(f"{KNOWN_LOSSES.name} rewritten from the current output; review the diff")
    allowed = json.loads(KNOWN_LOSSES.read_text(encoding="utf-8"))
    assert set(allowed) == set(KNOWN_FAILURES), "known_losses.json and KNOWN_FAILURES name different articles"
    for name, lost in found.items():
        new = Counter(lost) - Counter(allowed[name])  # by count: a third copy of a line lost twice is new
        assert not new, f"{name}: real text lost beyond its known failure: {sorted(new.elements())}"


# The same articles as scraped pages: the headline under a site's header, the article, the site's footer. Every line
# of this chrome is one a shipped rule names.
PAGE_HEADER = ["Skip to content", "Home | News | Sport | Business | Culture | Opinion", "Sign in"]
PAGE_FOOTER = ["Share this article", "Related articles", "Follow us on Twitter",
               "© 2026 Example Media Ltd. All rights reserved.", "About us | Contact | Advertise | Privacy policy"]
KNOWN_LOSSES_IN_CHROME = ARTICLES_DIR / "known_losses_in_chrome.json"


def _losses_in_chrome(path: Path, rules, judge) -> tuple[list[str], list[str]]:
    """The article's lines a page around it loses, and the page's chrome lines left in the text."""
    _, title, body = _read(path)
    text = "\n".join([*PAGE_HEADER, title, "", body, "", *PAGE_FOOTER]) + "\n"
    result = clean_document(text, rules, source="example.org", judge=judge)
    first = len(PAGE_HEADER) + 1  # the title's line number
    last = first + 1 + len(body.split("\n"))
    lost = [r.text for r in result.removed if first < r.line_no <= last]
    kept_chrome = [line for line in PAGE_HEADER + PAGE_FOOTER if line in result.text.split("\n")]
    return lost, kept_chrome


def test_articles_inside_page_chrome_lose_no_more_than_they_do_now(rules, judge, update_golden: bool) -> None:
    """A page's furniture is evidence of junk, so the classifier's uncertain drops go on a page that would keep them
    as a bare article (cleaners.document._only_uncertain_evidence): the articles lose more inside a page than alone.
    Each may lose at most what it loses now (known_losses_in_chrome.json: a fix that loses fewer passes, and
    ``--update-golden`` records it), and the chrome goes from every page."""
    import json

    found = {}
    for path in ARTICLES:
        lost, kept_chrome = _losses_in_chrome(path, rules, judge)
        assert not kept_chrome, f"{path.name}: page chrome left in the text: {kept_chrome}"
        if lost:
            found[path.name] = lost
    if update_golden:
        KNOWN_LOSSES_IN_CHROME.write_text(json.dumps(found, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        pytest.skip(f"{KNOWN_LOSSES_IN_CHROME.name} rewritten from the current output; review the diff")
    allowed = json.loads(KNOWN_LOSSES_IN_CHROME.read_text(encoding="utf-8"))
    for name, lost in found.items():
        new = Counter(lost) - Counter(allowed.get(name, []))
        assert not new, f"{name}: real text lost inside a page beyond what is known: {sorted(new.elements())}"


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
    assert len(ARTICLES) >= 81, f"expected at least 81 articles in {ARTICLES_DIR}"
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
