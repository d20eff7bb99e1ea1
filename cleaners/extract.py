"""HTML to text: trafilatura first (it knows article structure), beautifulsoup4 when it finds nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import trafilatura
from bs4 import BeautifulSoup

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


def _parse_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def extract_html(html: str, url: str | None = None) -> Extracted | None:
    """Article text and metadata from an HTML page; None when neither extractor finds text."""
    try:
        found = trafilatura.bare_extraction(
            html,
            url=url,
            with_metadata=True,
            include_comments=False,
            include_tables=True,
            deduplicate=False,  # trafilatura's dedup cache is process-global state: results would vary
        )
    except Exception:  # trafilatura raises many types on odd markup; the fallback handles those pages
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
    for tag in soup(["script", "style", "noscript", "template", "svg", "iframe"]):
        tag.decompose()
    text = soup.get_text("\n", strip=True)
    if not text.strip():
        return None
    title = soup.title.get_text(strip=True) if soup.title else None
    return Extracted(text=text, extractor="beautifulsoup4", title=title or None)
