"""Plain data types shared by the readers, the cleaners and the writers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import NamedTuple


class RejectReason(StrEnum):
    """Why an input could not become an article. Stored verbatim in ``rejects.reason_code``."""

    UNDECODABLE = "undecodable"          # bytes that no detected encoding decodes to text
    BINARY = "binary"                    # looks like an image, archive or other binary data
    EMPTY = "empty"                      # no text at all (0 bytes, whitespace only)
    NOTHING_LEFT = "nothing_left"        # every line was boilerplate
    MALFORMED_RECORD = "malformed_record"  # a JSONL line that is not a JSON object
    MISSING_TEXT = "missing_text"        # a JSONL record with neither `text` nor `html`
    DUPLICATE_ID = "duplicate_id"        # a JSONL record id seen earlier in the same file
    TOO_LARGE = "too_large"              # over the configured per-document size limit
    UNREADABLE = "unreadable"            # the file could not be opened or read (tried again on every run)
    CORRUPT = "corrupt"                  # a compressed file whose content is damaged (tried again once it changes)
    EXTRACTION_FAILED = "extraction_failed"  # HTML from which no extractor got any text
    UNSUPPORTED = "unsupported"          # a file type the readers do not know
    PROCESSING_ERROR = "processing_error"  # cleaning this one document raised an error (a bug: report it)


@dataclass(frozen=True, slots=True)
class RawDocument:
    """One input article before cleaning, with everything known about where it came from."""

    input_id: str
    source: str
    input_file: str
    text: str
    n_bytes: int
    encoding: str = "utf-8"
    url: str | None = None
    title: str | None = None
    author: str | None = None
    published: date | None = None
    fetched_at: datetime | None = None
    extractor: str = "none"   # "none" (plain text), "trafilatura" or "beautifulsoup4"
    title_from_page: bool = False  # the title is the HTML's own metadata, not one the record declares
    line_no: int | None = None  # the JSONL line the record came from
    unread_fields: tuple[str, ...] = ()  # record fields given with a value no reader step reads (left null)


class RemovedLine(NamedTuple):
    """A line that left the text, and the rule that took it out (fields in the order of
    ``schema.REMOVED_LINE``)."""

    line_no: int  # 1-based, in the input text after newline normalization
    text: str
    rule: str
    reason: str


@dataclass(frozen=True, slots=True)
class Reject:
    """An input that could not become an article, with a reason a person can act on."""

    input_id: str
    source: str
    input_file: str
    reason_code: RejectReason
    reason: str
    line_no: int | None = None
    n_bytes: int = 0


@dataclass(frozen=True, slots=True)
class CleanResult:
    """The outcome of cleaning one document: kept text, metadata found, and every removal."""

    text: str
    title: str | None
    metadata: dict[str, str] = field(default_factory=dict)
    # Every removal as a plain (line_no, text, rule, reason) tuple, in line order. A document loses ~130
    # lines on average: named tuples cost 10x a plain tuple to build (1.1 us, measured), and pyarrow writes
    # plain tuples to the ``removed`` structs as they are. `removed` gives them as RemovedLine.
    removed_rows: tuple[tuple[int, str, str, str], ...] = ()
    mojibake_fixed: bool = False
    kept_ratio: float = 1.0        # words kept in `text` / words of the input without its title
    # The safety valve undid learned removals (under 15% of the words would have been kept), a cut_rest marker with too
    # little text above it cut nothing, or the rule packs' removals alone leave under 15% (README, `low_confidence`).
    low_confidence: bool = False
    # The lines a valve kept that a learned step would have removed: (line_no, which valve and why, with the removal
    # it undid), in line order. Not written to Parquet; `boilerstrip explain` shows them.
    spared_rows: tuple[tuple[int, str], ...] = ()

    @property
    def removed(self) -> tuple[RemovedLine, ...]:
        """Every line that left the text, with its rule and why."""
        return tuple(map(RemovedLine._make, self.removed_rows))
