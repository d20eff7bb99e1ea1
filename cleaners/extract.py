"""HTML to text: trafilatura first (it knows article structure), beautifulsoup4 when it finds nothing."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date

import trafilatura
from bs4 import BeautifulSoup

_LOG = logging.getLogger(__name__)
_FAILURES_SEEN: set[str] = set()  # exception types trafilatura raised in this process
_HTML_START = re.compile(r"\A\s*(?:<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>])", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Extracted:
    text: str
    extractor: str  # "trafilatura" | "beautifulsoup4"
    title: str | None = None
    author: str | None = None
    published: date | None = None


def looks_like_html(text: str) -> bool:
    """Whether plain-text input is really an HTML page pasted into a text file."""
    return bool(_HTML_START.match(text[:1024]))


_FAST_DATE_SEARCH = {"original_date": True, "extensive_search": False}


def _parse_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


# A start tag: its name, then attributes (a name, and a value that may be quoted: a quoted value may hold spaces, "<"
# and ">"), as HTML's tokenizer reads them. Possessive: no backtracking, one linear scan of the page.
_ATTRIBUTE_PATTERN = r"""[^\s"'<>/=]++(?:\s*+=\s*+(?:"[^"]*+"|'[^']*+'|[^\s"'=<>`]++))?+"""
_START_TAG = re.compile(rf"<[A-Za-z][^\s/<>]*+(?:[\s/]++|{_ATTRIBUTE_PATTERN})*+")
_ATTRIBUTE = re.compile(_ATTRIBUTE_PATTERN)
_TAG_NAME = re.compile(r"<[A-Za-z][^\s/<>]*")
# More attributes than this on one element is a flood: no page's markup needs it, and lxml (libxml2) checks each
# attribute against the element's others, quadratic in their number: 20,000 on one <div> took 2.9 s to parse, 60,000
# about 30 s, and a 16 MB page could hold a task for hours. (beautifulsoup4's html.parser is linear.) Only tags of
# this many characters can hold that many attributes.
MAX_ATTRIBUTES = 256
_FLOOD_CHARS = 2 * MAX_ATTRIBUTES


_TAG_START = re.compile(r"<[A-Za-z]")
_WHITESPACE_RUN = re.compile(r"\s+")
_QUOTED = re.compile(r""""[^"]*+"|'[^']*+'""")


def _without_raw_floods(html: str) -> str:
    """Each "<" and letter up to the next ">", quotes or not, cut to its name when it holds over ``MAX_ATTRIBUTES``
    separators (runs of spaces, or "="): lxml reads a "<" or a backtick in an unquoted value as part of it, where the
    tokenizer of :func:`_without_attribute_floods` stops (that one sees past a quoted ">", this one does not). Regions
    never overlap (a "<" inside one is not a start), so the scan is linear."""
    parts: list[str] = []
    last = end = 0
    for found in _TAG_START.finditer(html):
        start = found.start()
        if start < end:
            continue  # inside the region before
        close = html.find(">", start)
        end = len(html) if close < 0 else close
        if end - start <= _FLOOD_CHARS:
            continue
        region = html[start:end]
        outside = _QUOTED.sub("", region)  # a quoted value's spaces are not attributes (an SVG path, a long alt)
        if max(outside.count("="), len(_WHITESPACE_RUN.findall(outside))) > MAX_ATTRIBUTES:
            parts += [html[last:start], _TAG_NAME.match(region).group()]  # type: ignore[union-attr]
            last = end
    if not parts:
        return html
    parts.append(html[last:])
    return "".join(parts)


def _without_attribute_floods(html: str) -> str:
    """``html`` with each start tag of over ``MAX_ATTRIBUTES`` attributes cut to its name (attributes hold no article
    text), by HTML's tokenizer and by a plain scan to the next ">" (:func:`_without_raw_floods`); the page itself when
    it has none."""
    return _without_raw_floods(_without_tokenized_floods(html))


def _without_tokenized_floods(html: str) -> str:
    cuts: list[tuple[int, int, str]] = []
    for found in _START_TAG.finditer(html):
        if found.end() - found.start() > _FLOOD_CHARS:
            name = _TAG_NAME.match(found.group()).group()  # type: ignore[union-attr]
            if len(_ATTRIBUTE.findall(found.group(), len(name))) > MAX_ATTRIBUTES:
                cuts.append((found.start(), found.end(), name))
    if not cuts:
        return html
    parts: list[str] = []
    last = 0
    for start, end, name in cuts:
        parts += [html[last:start], name]
        last = end
    parts.append(html[last:])
    return "".join(parts)


def extract_html(html: str, url: str | None = None) -> Extracted | None:
    """Article text and metadata from an HTML page; None when neither extractor finds text."""
    html = _without_attribute_floods(html)
    try:
        found = trafilatura.bare_extraction(
            html,
            url=url,
            with_metadata=True,
            include_comments=False,
            include_tables=True,
            deduplicate=False,  # trafilatura's dedup cache is process-global state: results would vary
            # htmldate's fast search: meta tags, JSON-LD, <time>, the URL, date classes on common elements (and,
            # in the text, an ISO date or one after a label: "on 12/03/2019"). Its extensive search guesses from
            # the prose: "In 2022, he explained..." became published = 2022-01-01 on a page with no date at all. A
            # wrong date is worse than none; the price is dates in rarer places (<a class="date">, a table cell).
            date_extraction_params=_FAST_DATE_SEARCH,
        )
    except Exception as exc:  # trafilatura raises many types on odd markup; the fallback handles those pages
        # Logged: after an upgrade that breaks it, every page would otherwise fall back without a word (`extractor`
        # in the rows says beautifulsoup4).
        # The first failure of each kind in a process is a warning, later ones debug lines (a broken upgrade
        # fails on every page).
        level = logging.DEBUG if type(exc).__name__ in _FAILURES_SEEN else logging.WARNING
        _FAILURES_SEEN.add(type(exc).__name__)
        _LOG.log(level, "trafilatura failed on %r (%s: %.200r); extracted with beautifulsoup4 instead (later "
                 "failures of this kind are logged at debug level)", url or "a page without URL", type(exc).__name__,
                 exc)
        found = None
    if found is not None and (found.text or "").strip():
        return Extracted(
            text=found.text,
            extractor="trafilatura",
            title=found.title or None,
            author=found.author or None,
            published=_parse_date(found.date),
        )
    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(strip=True) if soup.title else None
    # The head's elements are not page text: a page whose body holds only scripts had its <title> as its text. By
    # element, not the <head> itself: without </head> (optional in HTML5) html.parser nests the body inside it.
    for tag in soup(["title", "meta", "link", "base", "script", "style", "noscript", "template", "svg", "iframe"]):
        tag.decompose()
    text = soup.get_text("\n", strip=True)
    if not text.strip():
        return None
    return Extracted(text=text, extractor="beautifulsoup4", title=title or None)
