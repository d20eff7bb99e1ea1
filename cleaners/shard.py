"""Plan shards of input files and process one shard: the unit of work of a flow task.

Pass 1 (:func:`count_shard`) counts the shard's lines per source for learned boilerplate. Pass 2
(:func:`process_shard`) cleans the shard into ``articles/`` and ``rejects/`` and commits it with its
ledger part. Both are plain functions over paths: a task runner only passes file lists around.
"""

from __future__ import annotations

import hashlib
import logging
import operator
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from cleaners.boilerplate import COUNT_BATCH_DOCS, LineCounter, LineStats
from cleaners.document import CleanConfig, DocumentInput, LineJudge, clean_documents
from cleaners.readers import DEFAULT_MAX_DOC_BYTES, InputFile, read_file
from cleaners.rulepack import RuleSet
from cleaners.schema import ARTICLES_SCHEMA, REJECTS_SCHEMA
from cleaners.store import OutputStore, rows_in
from cleaners.types import CleanResult, RawDocument, Reject, RejectReason

# Bump when cleaning changes, the line classifier's file included (tests/test_schema.py pins it to this version):
# every input is processed again (0.6: a line a rule removes is never the title; 0.7: a document counted in several
# shards or runs is not counted against its own lines; 0.8: a declared title is the title, and a template line is on
# at least 5 documents; 0.9: the v7 classifier, a page's own title found printed with a small difference, a menu
# heading inside the article kept, and an HTML page's date no longer guessed from its prose; 0.10: a document whose only
# evidence of junk is the classifier's uncertain drops keeps them; 0.10.1: rule patterns and examples read as the
# cleaner reads text, NFC and odd spaces: a pack's rule written with a no-break space or a decomposed letter matches;
# 0.11: words of scripts written without spaces count per two characters in the valves and kept_ratio; 0.12: below a
# source's template lines at the top (its menu) the title is looked for again and its copies go, and the safety valve
# counts the title's copies as kept; 0.13: a source's masthead, a template line at the top of most of its pages, is
# never the title: the line counts say where lines stand, version 4).
PIPELINE_VERSION = "0.13.0"
# Sources under a site pack a shard reports (ShardStats.sources): a small return value. Only such sources are
# collected, so a shard of many hosts (a multi-site feed) cannot crowd a site pack's source out.
MAX_SOURCES_PER_SHARD = 1_000
_LOG = logging.getLogger(__name__)
# A shard should be seconds of work: 16 MiB of text is ~4 s of cleaning on one core. Measured on a 30,000-document
# bench corpus (382 MB, default process pool, 2 cores): 8 MiB shards 71-75 s and 148-157 CPU s, 16 MiB 64.5 s and
# 135 CPU s, 32 MiB 63.9 s and 131 CPU s (docs/performance.md): fewer Prefect task runs, same cleaning.
DEFAULT_SHARD_BYTES = 16 * 1024 * 1024
DEFAULT_SHARD_FILES = 2000
TOP_REMOVED_PER_SHARD = 50
MAX_TRACKED_REMOVED_LINES = 40_000
# Documents are counted and cleaned in batches of 256 or of this many input bytes, whichever comes first: a batch's
# memory is about ten times its text, and 256 documents of up to 16 MiB each (a few MB of .jsonl.gz) took gigabytes.
BATCH_BYTES = 64 * 2**20


@dataclass(frozen=True, slots=True)
class Shard:
    shard_id: str
    files: tuple[InputFile, ...]

    @property
    def n_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(slots=True)
class ShardStats:
    """Small, JSON-friendly summary of one shard; what a task returns instead of the text."""

    shard_id: str
    partition: str = ""
    n_inputs: int = 0
    n_articles: int = 0
    n_rejects: int = 0
    n_low_confidence: int = 0
    n_bytes: int = 0
    seconds: float = 0.0
    removed_by_rule: dict[str, int] = field(default_factory=dict)
    reject_reasons: dict[str, int] = field(default_factory=dict)
    top_removed_lines: dict[str, int] = field(default_factory=dict)
    unread_fields: dict[str, int] = field(default_factory=dict)  # record fields left null: value not readable
    # Rows of an earlier run of this very shard (same files and versions, same day) that its parts replaced in place.
    n_replaced_in_place: int = 0
    # The sources of its rows that a site pack applies to (at most MAX_SOURCES_PER_SHARD): which site packs had
    # anything to act on.
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shard_id_of(files: Iterable[InputFile], salt: str = "") -> str:
    """Stable id from the shard's members and versions: the same inputs give the same file names."""
    digest = hashlib.sha256(salt.encode())
    for f in sorted(files, key=lambda f: f.path):
        digest.update(f"{f.path}\x1f{f.size}\x1f{f.mtime_ns}\x1e".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


def plan_shards(files: Sequence[InputFile], target_bytes: int = DEFAULT_SHARD_BYTES,
                max_files: int = DEFAULT_SHARD_FILES, salt: str = "") -> list[Shard]:
    """Group files into shards of about ``target_bytes`` or ``max_files``, in discovery's order (by source, then path
    below the root: a site's files stay together), so the same files make the same shards in whatever order they are
    given (a run's unchanged shard-mates come after its changed files)."""
    shards: list[Shard] = []
    batch: list[InputFile] = []
    size = 0
    for f in sorted(files, key=lambda f: (f.source, f.relpath, f.path)):
        if batch and (size + f.size > target_bytes or len(batch) >= max_files):
            shards.append(Shard(shard_id_of(batch, salt), tuple(batch)))
            batch, size = [], 0
        batch.append(f)
        size += f.size
    if batch:
        shards.append(Shard(shard_id_of(batch, salt), tuple(batch)))
    return shards


def doc_id_of(source: str, input_id: str) -> str:
    """Stable document id: the same source and input id give the same doc_id on every run."""
    return hashlib.sha256(f"{source}\x1f{input_id}".encode("utf-8", "surrogatepass")).hexdigest()[:32]


# Fields of a removed line (line_no, text, rule, reason), and a line's first 200 characters (its key in the stats).
_TEXT_OF = operator.itemgetter(1)
_RULE_OF = operator.itemgetter(2)
_FIRST_200 = operator.itemgetter(slice(200))


def _reject_row(reject: Reject, ingested_at: datetime, rules_version: str) -> dict[str, Any]:
    return {
        "input_id": reject.input_id,
        "source": reject.source,
        "input_file": reject.input_file,
        "line_no": reject.line_no,
        "reason_code": str(reject.reason_code),
        "reason": reject.reason,
        "n_bytes": reject.n_bytes,
        "ingested_at": ingested_at,
        "pipeline_version": PIPELINE_VERSION,
        "rules_version": rules_version,
    }


def _article_row(doc: RawDocument, result: CleanResult, rules: RuleSet, ingested_at: datetime) -> dict[str, Any]:
    return {
        "doc_id": doc_id_of(doc.source, doc.input_id),
        "input_id": doc.input_id,
        "source": doc.source,
        "input_file": doc.input_file,
        "url": doc.url,
        "title": result.title,
        "author": doc.author or result.metadata.get("author"),
        "published": doc.published,
        "region": result.metadata.get("region"),
        "text": result.text,
        "removed": result.removed_rows,  # (line_no, text, rule, reason) tuples: the struct's field order
        "kept_ratio": round(result.kept_ratio, 4),
        "low_confidence": result.low_confidence,
        "n_chars_raw": len(doc.text),
        "n_chars_clean": len(result.text),
        "content_sha256": hashlib.sha256(result.text.encode("utf-8", "surrogatepass")).hexdigest(),
        "encoding": doc.encoding,
        "extractor": doc.extractor,
        "mojibake_fixed": result.mojibake_fixed,
        "fetched_at": doc.fetched_at,
        "ingested_at": ingested_at,
        "pipeline_version": PIPELINE_VERSION,
        "rules_version": rules.version,
    }


def clean_raw_batch(docs: Sequence[RawDocument], rules: RuleSet, ingested_at: datetime,
                    config: CleanConfig | None = None, line_stats: LineStats | None = None,
                    judge: LineJudge | None = None) -> list[dict[str, Any] | Reject]:
    """Clean raw documents into articles rows, or rejects when nothing is left.

    When the batch raises, each document is cleaned on its own, so one document that trips an error becomes a
    ``processing_error`` reject naming it and the error, and the batch's other documents are written as usual:
    the same rows whichever batch a document falls in. A broken setup (a model that does not load) is found
    before any document, by :func:`check_setup` (``process_shard`` runs it), and fails the shard instead.
    """
    try:
        return _clean_raw_batch(docs, rules, ingested_at, config, line_stats, judge)
    except Exception as exc:
        if len(docs) > 1:
            return [row for doc in docs for row in clean_raw_batch([doc], rules, ingested_at, config, line_stats,
                                                                     judge)]
        [doc] = docs
        _LOG.exception("cleaning %s of %s failed", doc.input_id, doc.input_file)
        return [Reject(input_id=doc.input_id, source=doc.source, input_file=doc.input_file,
                       reason_code=RejectReason.PROCESSING_ERROR,
                       reason=f"cleaning this document raised {type(exc).__name__}: {str(exc)[:300]}; the run went on "
                              "without it. This is a bug in boilerstrip: report it with this input",
                       line_no=doc.line_no, n_bytes=doc.n_bytes)]


# A short article any working setup cleans (tests/test_bad_inputs.py).
_SETUP_CHECK_TEXT = ("Council approves the bridge\nThe council voted on Tuesday to rebuild the old bridge, which had "
                     "been closed for two years after the flood.\nWork starts in spring, the mayor said.\n")


def check_setup(rules: RuleSet, config: CleanConfig | None = None, line_stats: LineStats | None = None,
                judge: LineJudge | None = None) -> None:
    """Clean a known-good article with these settings, and raise what that raises: an error that every document
    would hit (a model that does not load, a judge of the wrong shape) fails the shard with its cause, instead of
    turning every input into a ``processing_error`` reject."""
    text = _SETUP_CHECK_TEXT
    probe = RawDocument(input_id="setup-check", source="setup-check.invalid", input_file="(setup check)", text=text,
                        n_bytes=len(text.encode("utf-8")))
    _clean_raw_batch([probe], rules, datetime.now(UTC), config, line_stats, judge)


def _clean_raw_batch(docs: Sequence[RawDocument], rules: RuleSet, ingested_at: datetime,
                     config: CleanConfig | None, line_stats: LineStats | None,
                     judge: LineJudge | None) -> list[dict[str, Any] | Reject]:
    inputs = [DocumentInput(d.text, d.source, d.title, title_declared=not d.title_from_page,
                            declared_metadata={"author": d.author} if d.author else None) for d in docs]
    results = clean_documents(inputs, rules, config=config, line_stats=line_stats, judge=judge)
    out: list[dict[str, Any] | Reject] = []
    for doc, result in zip(docs, results, strict=True):
        if result.text:
            out.append(_article_row(doc, result, rules, ingested_at))
        elif not result.removed_rows:  # only spaces and invisible characters: nothing was there to remove
            out.append(Reject(
                input_id=doc.input_id, source=doc.source, input_file=doc.input_file, reason_code=RejectReason.EMPTY,
                reason="no visible text: only spaces and invisible characters (zero-width, non-breaking)",
                line_no=doc.line_no, n_bytes=doc.n_bytes,
            ))
        else:
            out.append(Reject(
                input_id=doc.input_id, source=doc.source, input_file=doc.input_file,
                reason_code=RejectReason.NOTHING_LEFT,
                reason=f"every line was removed as boilerplate ({len(result.removed_rows)} lines)",
                line_no=doc.line_no, n_bytes=doc.n_bytes,
            ))
    return out


def clean_raw(doc: RawDocument, rules: RuleSet, ingested_at: datetime, config: CleanConfig | None = None,
              line_stats: LineStats | None = None, judge: LineJudge | None = None) -> dict[str, Any] | Reject:
    """One document's articles row or reject (see :func:`clean_raw_batch`)."""
    return clean_raw_batch([doc], rules, ingested_at, config, line_stats, judge)[0]


def count_shard(shard: Shard, store: OutputStore, max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES) -> int:
    """Pass 1: count the shard's short lines per source into ``_state/line_counts``; returns rows written."""
    counter = LineCounter()
    batch: list[tuple[str, str]] = []
    batch_bytes = 0
    for f in shard.files:
        for item in read_file(f, max_doc_bytes):
            if isinstance(item, RawDocument):
                batch.append((item.source, item.text))
                batch_bytes += item.n_bytes
                if len(batch) >= COUNT_BATCH_DOCS or batch_bytes >= BATCH_BYTES:
                    counter.add_many(batch)
                    batch.clear()
                    batch_bytes = 0
    counter.add_many(batch)
    table = counter.to_table()
    store.write_line_counts(shard.shard_id, table)
    return table.num_rows


def _unread(counts: Counter[str]) -> bool:
    """Whether a file's only input was an `unreadable` reject (nothing of it could be read)."""
    return counts["inputs"] == 1 and counts["unreadable"] == 1


def process_shard(shard: Shard, store: OutputStore, rules: RuleSet, ingested_at: datetime, partition: str,
                  fingerprints: dict[str, str], config: CleanConfig | None = None,
                  line_stats: LineStats | None = None, judge: LineJudge | None = None,
                  max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES, batch_docs: int = 256) -> ShardStats:
    """Pass 2: read, clean and write one shard, then commit it with its ledger part.

    Documents are cleaned in batches of ``batch_docs`` (the line classifier is vectorized over a
    batch); memory is bounded by one batch plus the writers' row buffers. ``fingerprints`` maps each
    file's path to its content SHA-256, recorded in the ledger so later runs skip unchanged files.
    """
    started = time.perf_counter()
    check_setup(rules, config, line_stats, judge)  # a broken setup fails here, before any part is written
    stats = ShardStats(shard_id=shard.shard_id, partition=partition)
    # A --reprocess the same day plans the same shard ids: its parts are written over the committed ones, which
    # recovery never sees as superseded; their rows are counted here.
    # Only committed parts (a ledger part beside them): a retried task's own uncommitted parts replace nothing.
    if store.fs.exists(store.ledger_path(partition, shard.shard_id)):
        stats.n_replaced_in_place = rows_in(store, [path for path in (store.articles_path(partition, shard.shard_id),
                                                                      store.rejects_path(partition, shard.shard_id))
                                                    if store.fs.exists(path)])
    removed_by_rule: Counter[str] = Counter()
    removed_lines: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    per_file: dict[str, Counter[str]] = {f.path: Counter() for f in shard.files}
    unread: Counter[str] = Counter()
    sources: set[str] = set()  # those under a site pack
    looked_up: set[str] = set()
    site_packs = [pack for pack in rules.packs if pack.sites]
    pending: list[RawDocument] = []
    pending_bytes = 0

    def emit(outcomes: Iterable[dict[str, Any] | Reject]) -> None:
        nonlocal removed_lines
        for outcome in outcomes:
            source = outcome.source if isinstance(outcome, Reject) else outcome["source"]
            if source not in looked_up and len(sources) < MAX_SOURCES_PER_SHARD:
                looked_up.add(source)
                if any(pack.applies_to(source) for pack in site_packs):
                    sources.add(source)
            if isinstance(outcome, Reject):
                rejects.write(_reject_row(outcome, ingested_at, rules.version))
                reasons[str(outcome.reason_code)] += 1
                per_file[outcome.input_file]["rejects"] += 1
                per_file[outcome.input_file]["unreadable"] += outcome.reason_code is RejectReason.UNREADABLE
                continue
            articles.write(outcome)
            per_file[outcome["input_file"]]["articles"] += 1
            stats.n_low_confidence += outcome["low_confidence"]
            removed = outcome["removed"]
            removed_by_rule.update(map(_RULE_OF, removed))  # Counter.update and map: no Python loop per line
            removed_lines.update(map(_FIRST_200, map(_TEXT_OF, removed)))
            if len(removed_lines) > MAX_TRACKED_REMOVED_LINES:  # bounded memory on huge shards
                removed_lines = Counter(dict(removed_lines.most_common(MAX_TRACKED_REMOVED_LINES // 4)))

    def flush() -> None:
        nonlocal pending_bytes
        if pending:
            emit(clean_raw_batch(pending, rules, ingested_at, config, line_stats, judge))
            pending.clear()
            pending_bytes = 0

    with store.writer(store.articles_path(partition, shard.shard_id), ARTICLES_SCHEMA) as articles, \
         store.writer(store.rejects_path(partition, shard.shard_id), REJECTS_SCHEMA) as rejects:
        for f in shard.files:
            stats.n_bytes += f.size
            for item in read_file(f, max_doc_bytes):
                per_file[f.path]["inputs"] += 1
                if isinstance(item, RawDocument):
                    for key in item.unread_fields:
                        if not unread[key]:
                            _LOG.warning("%r line %s: `%s` is not a date this reader reads (ISO 8601, RFC 2822, a "
                                         "month name with day and year, or epoch seconds or milliseconds); left null. "
                                         "Later ones in this shard are counted in the run summary", item.input_file,
                                         item.line_no, key)
                        unread[key] += 1
                    pending.append(item)
                    pending_bytes += item.n_bytes
                    if len(pending) >= batch_docs or pending_bytes >= BATCH_BYTES:
                        flush()
                else:
                    emit([item])
        flush()
    # A file that could not be read at all (its only input an `unreadable` reject: permissions, a network
    # error) is committed without a content hash, so the next run tries it again (cleaners.ingest.select_changed);
    # its reject row is then replaced like any changed file's rows.
    ledger_rows = [{
        "input_file": f.path, "size": f.size, "mtime_ns": f.mtime_ns,
        "content_sha256": "" if _unread(per_file[f.path]) else fingerprints.get(f.path, ""),
        "shard_id": shard.shard_id,
        "partition": partition, "rules_version": rules.version, "pipeline_version": PIPELINE_VERSION,
        "n_inputs": per_file[f.path]["inputs"], "n_articles": per_file[f.path]["articles"],
        "n_rejects": per_file[f.path]["rejects"], "ingested_at": ingested_at,
    } for f in shard.files]
    store.write_ledger(partition, shard.shard_id, ledger_rows)  # the commit: written last
    stats.n_inputs = sum(row["n_inputs"] for row in ledger_rows)
    stats.n_articles = articles.rows_written
    stats.n_rejects = rejects.rows_written
    stats.removed_by_rule = dict(removed_by_rule)
    stats.reject_reasons = dict(reasons)
    stats.unread_fields = dict(unread)
    stats.sources = sorted(sources)
    stats.top_removed_lines = dict(removed_lines.most_common(TOP_REMOVED_PER_SHARD))
    stats.seconds = time.perf_counter() - started
    return stats
