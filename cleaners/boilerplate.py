"""Learned per-source boilerplate: lines that recur across many documents of one source.

Pass 1 counts, for each source, in how many documents each short normalized line appears
(:func:`count_lines`). The counts are kept as a small Parquet table per shard next to the output, so
later runs (a daily batch of ten articles) still see the history. Pass 2 asks
:meth:`LineStats.evidence` whether a line is a fixture of its source's template.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from cleaners.normalize import normalize_newlines
from cleaners.rulepack import canonical_line

# Template lines (menus, footers, widgets, bylines) are short; long lines are not counted, which also
# keeps the tables small.
MAX_COUNTED_CHARS = 200
# A shard never stores more than this many distinct lines per source (the most frequent are kept).
MAX_LINES_PER_SOURCE = 20_000
LINE_COUNTS_VERSION = "1"
# Fingerprints kept to skip duplicate documents within one shard's count.
MAX_TRACKED_DOCUMENTS = 200_000

LINE_COUNTS_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("line_hash", pa.int64(), nullable=False),
        pa.field("line", pa.string(), nullable=False),
        pa.field("n_docs", pa.int64(), nullable=False),
        pa.field("source_docs", pa.int64(), nullable=False),
    ],
    metadata={"boilerstrip.schema": "line_counts", "boilerstrip.schema_version": LINE_COUNTS_VERSION},
)


def line_hash(canonical: str) -> int:
    """A stable signed 64-bit hash of a canonical line (Python's ``hash`` is salted per process)."""
    digest = hashlib.blake2b(canonical.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def countable_lines(text: str) -> dict[int, str]:
    """The distinct short lines of a normalized text, keyed by hash."""
    out: dict[int, str] = {}
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped and len(stripped) <= MAX_COUNTED_CHARS:
            canonical = canonical_line(stripped)
            out.setdefault(line_hash(canonical), stripped)
    return out


@dataclass(slots=True)
class LineCounter:
    """Accumulates per-source line document counts over a stream of documents (pass 1)."""

    per_source: dict[str, Counter[int]] = field(default_factory=dict)
    samples: dict[int, str] = field(default_factory=dict)
    docs: Counter[str] = field(default_factory=Counter)
    _seen_content: set[tuple[str, bytes]] = field(default_factory=set)

    def add(self, source: str, text: str) -> None:
        # Newlines only: canonical lines fold case and all whitespace (NBSP included), which is what
        # matters for template lines; full normalization here doubled the cost of pass 1.
        normalized = normalize_newlines(text)
        # The same document twice (syndication, re-scrapes) would make its whole text look like template.
        fingerprint = (source, hashlib.blake2b(normalized.encode("utf-8", "surrogatepass"), digest_size=16).digest())
        if fingerprint in self._seen_content:
            return
        self._seen_content.add(fingerprint)
        lines = countable_lines(normalized)
        self.docs[source] += 1
        counts = self.per_source.setdefault(source, Counter())
        counts.update(lines.keys())
        for key, sample in lines.items():
            self.samples.setdefault(key, sample)
        if len(counts) > 4 * MAX_LINES_PER_SOURCE:  # bounded memory: keep the most frequent lines
            self.per_source[source] = Counter(dict(counts.most_common(MAX_LINES_PER_SOURCE)))
            alive = set().union(*(c.keys() for c in self.per_source.values()))
            self.samples = {key: text for key, text in self.samples.items() if key in alive}
        if len(self._seen_content) > MAX_TRACKED_DOCUMENTS:
            self._seen_content.clear()  # duplicates further apart than this are counted twice

    def to_table(self) -> pa.Table:
        rows: dict[str, list] = {name: [] for name in LINE_COUNTS_SCHEMA.names}
        for source in sorted(self.per_source):
            for key, n in sorted(self.per_source[source].most_common(MAX_LINES_PER_SOURCE)):
                rows["source"].append(source)
                rows["line_hash"].append(key)
                rows["line"].append(self.samples[key])
                rows["n_docs"].append(n)
                rows["source_docs"].append(self.docs[source])
        return pa.table(rows, schema=LINE_COUNTS_SCHEMA)


def count_lines(docs: Iterable[tuple[str, str]]) -> pa.Table:
    """Pass 1 over ``(source, text)`` pairs: the line-counts table of these documents."""
    counter = LineCounter()
    for source, text in docs:
        counter.add(source, text)
    return counter.to_table()


@dataclass(frozen=True, slots=True)
class Evidence:
    n_docs: int
    source_docs: int

    @property
    def share(self) -> float:
        return self.n_docs / self.source_docs if self.source_docs else 0.0


@dataclass(frozen=True, slots=True)
class LineStats:
    """Merged line counts of many shards (this run and earlier ones), looked up per source."""

    source_docs: dict[str, int]
    counts: dict[str, dict[int, int]]

    @classmethod
    def empty(cls) -> LineStats:
        return cls({}, {})

    @classmethod
    def from_tables(cls, tables: Iterable[pa.Table], min_n_docs: int = 2,
                    sources: set[str] | None = None) -> LineStats:
        """Sum counts over shard tables; lines seen in fewer than ``min_n_docs`` documents are dropped."""
        parts = [t.select(LINE_COUNTS_SCHEMA.names) for t in tables if t.num_rows]
        if not parts:
            return cls.empty()
        table = pa.concat_tables(parts)
        if sources is not None:
            table = table.filter(pc.is_in(table["source"], value_set=pa.array(sorted(sources), pa.string())))
        # Each shard repeats its per-source document total on every row: take it once per (shard, source).
        docs: Counter[str] = Counter()
        for part in parts:
            per_shard = part.group_by("source").aggregate([("source_docs", "max")])
            for source, n in zip(per_shard["source"].to_pylist(), per_shard["source_docs_max"].to_pylist(),
                                 strict=True):
                docs[source] += n
        summed = table.group_by(["source", "line_hash"]).aggregate([("n_docs", "sum")])
        # Filter in Arrow before making Python objects: most lines occur once, and converting them all
        # was a temporary 449 MB at 10,000 documents (bench/throughput.py), growing with the corpus.
        summed = summed.filter(pc.greater_equal(summed["n_docs_sum"], min_n_docs))
        counts: dict[str, dict[int, int]] = {}
        for source, key, n in zip(summed["source"].to_pylist(), summed["line_hash"].to_pylist(),
                                  summed["n_docs_sum"].to_pylist(), strict=True):
            counts.setdefault(source, {})[key] = n
        return cls(dict(docs), counts)

    @classmethod
    def merge(cls, *parts: LineStats) -> LineStats:
        docs: Counter[str] = Counter()
        counts: dict[str, Counter[int]] = {}
        for part in parts:
            docs.update(part.source_docs)
            for source, per_source in part.counts.items():
                counts.setdefault(source, Counter()).update(per_source)
        return cls(dict(docs), {source: dict(c) for source, c in counts.items()})

    def to_table(self) -> pa.Table:
        """The merged counts as one table (``LINE_COUNTS_SCHEMA``): written once per run for the tasks."""
        rows: dict[str, list] = {name: [] for name in LINE_COUNTS_SCHEMA.names}
        for source in sorted(self.counts):
            for key, n in sorted(self.counts[source].items()):
                rows["source"].append(source)
                rows["line_hash"].append(key)
                rows["line"].append("")
                rows["n_docs"].append(n)
                rows["source_docs"].append(self.source_docs.get(source, 0))
        return pa.table(rows, schema=LINE_COUNTS_SCHEMA)

    def evidence(self, source: str, line: str) -> Evidence | None:
        per_source = self.counts.get(source)
        if not per_source:
            return None
        n = per_source.get(line_hash(canonical_line(line)))
        return Evidence(n, self.source_docs.get(source, 0)) if n else None
