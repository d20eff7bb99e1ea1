"""Learned per-source boilerplate: lines that recur across many documents of one source.

Pass 1 counts, for each source, in how many documents each short line appears (:class:`LineCounter`).
The counts are kept as a small Parquet table per shard next to the output, so later runs (a daily batch
of ten articles) still see the history. Pass 2 asks :meth:`LineStats.n_docs` how often each line of a
document is on its source's pages.

Lines are identified by :func:`line_keys`: a 64-bit hash of the line's canonical form (case-folded,
whitespace runs as one space, stripped). Both passes key the text with only its newlines normalized, so
the keys agree without normalizing twice.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cleaners import kernels, textbytes
from cleaners.normalize import normalize_newlines
from cleaners.rulepack import canonical_line

# Template lines (menus, footers, widgets, bylines) are short; long lines are not counted, which also
# keeps the tables small.
MAX_COUNTED_CHARS = 200
# A shard never stores more than this many distinct lines per source (the most frequent are kept).
MAX_LINES_PER_SOURCE = 20_000
# Tables of another version are not used (see is_current).
# 2: keys by cleaners.kernels.canonical_line_keys (1: BLAKE2b). 3: adds `kind` and one row per counted document
# (its fingerprint), so a document counted in several shards or runs is known as copied (LineStats.copies);
# version 2 tables are read as lines only. 4: adds `top` rows (on how many documents a line stands among their first
# TOP_LINES lines: a masthead is at the top of most pages it is on, a headline linked from "Most read" at the top of
# its own page only); version 2 and 3 tables are read without them.
LINE_COUNTS_VERSION = "4"
READABLE_LINE_COUNTS_VERSIONS = ("2", "3", "4")
# The `kind` of a counts row: a line (line_hash: its key), a counted document (line_hash: its fingerprint), or a line
# at the top of documents (line_hash: its key; n_docs: on how many documents it is among their first TOP_LINES lines).
KIND_LINE, KIND_DOCUMENT, KIND_TOP = "line", "document", "top"
# A document's top: its first countable lines (non-blank, at most MAX_COUNTED_CHARS), where a masthead and the
# headline stand, under a few lines of "Skip to content", menu buttons and the like (pass 1 does not know which lines
# the rules remove: under more than TOP_LINES of them a masthead is not counted at its top); above its first line of
# prose (over TOP_PROSE_BYTES bytes, stripped). The prose bound keeps a short page's "Most read" list under its article
# out of its top; a long line above the masthead on every page (a cookie notice) leaves the source without tops.
TOP_LINES = 8
TOP_PROSE_BYTES = 120
# Documents keyed together in pass 1 (one set of numpy passes per batch; memory: one batch of texts).
COUNT_BATCH_DOCS = 256
# The history a source's template is learned from: the counts of its shards with the newest inputs (by file
# modification time: cleaners.store.OutputStore._newest_first), newest first, until they hold this many of its
# documents. All-time counts missed a redesign: in 181 simulated daily runs, a source's new footer
# was on all its 354 new pages after 81 days, 43% of its 817 documents, below the template share (docs/operations.md).
HISTORY_DOCS_PER_SOURCE = 500
# Fingerprints kept to skip duplicate documents within one shard's count.
MAX_TRACKED_DOCUMENTS = 200_000
# A counts table keeps at most this many document fingerprints per source (a shard of more documents of one source
# forgets some: their copies elsewhere are then not known as copies).
MAX_DOCUMENTS_PER_SOURCE = 200_000

LINE_COUNTS_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("line_hash", pa.int64(), nullable=False),
        pa.field("line", pa.string(), nullable=False),
        pa.field("n_docs", pa.int64(), nullable=False),
        pa.field("source_docs", pa.int64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
    ],
    metadata={"boilerstrip.schema": "line_counts", "boilerstrip.schema_version": LINE_COUNTS_VERSION},
)


def fingerprint(piece: bytes) -> int:
    """A document's identity in the counts: a signed 64-bit BLAKE2b digest of its text (newlines normalized,
    UTF-8), the bytes both passes key. Byte-identical documents of one source are one document."""
    return int.from_bytes(hashlib.blake2b(piece, digest_size=8).digest(), "little", signed=True)


def line_hash(canonical: str) -> int:
    """A stable signed 64-bit hash of a canonical line (Python's ``hash`` is salted per process)."""
    if "\n" in canonical:
        raise ValueError("a canonical line has no newline in it")
    return int(key_buffer(textbytes.encode(canonical), max_chars=len(canonical)).keys[0])


@dataclass(frozen=True, slots=True)
class KeyedLines:
    """The lines of a UTF-8 buffer (newline-separated) with their keys: see :func:`key_buffer`."""

    buf: bytes
    keys: np.ndarray       # int64 per line; 0 for lines that are not countable
    countable: np.ndarray  # bool per line
    starts: np.ndarray     # byte offsets of each line in buf
    ends: np.ndarray

    def line(self, index: int) -> str:
        """Line ``index``, stripped, as text."""
        return self.buf[self.starts[index]:self.ends[index]].decode("utf-8", "surrogatepass").strip()


def key_buffer(buf: bytes, max_chars: int = MAX_COUNTED_CHARS) -> KeyedLines:
    """Key every line of ``buf`` (UTF-8, lines separated by ``\\n``): the 64-bit key of the canonical form
    (:func:`~cleaners.rulepack.canonical_line`) of each line, stripped, and whether it is countable (not blank,
    at most ``max_chars`` characters; the others get key 0).

    One compiled pass over the bytes (:func:`cleaners.kernels.canonical_line_keys`); only lines with a
    character that case folding changes (non-ASCII capitals, "ß") are folded by Python. Measured on the
    dev set (3,092 documents, both passes): splitting, canonical forms and BLAKE2b per line in Python took
    2.3 s; this takes ~0.3 s.
    """
    data = np.frombuffer(buf, np.uint8)
    starts, ends = textbytes.line_bounds(data)
    n = len(starts)
    keys = np.zeros(n, np.int64)
    countable = np.zeros(n, bool)
    needs_python = np.zeros(n, bool)
    kernels.canonical_line_keys(data, max_chars, kernels.CHAR_CLASSES, False, keys, starts, ends, countable,
                                needs_python)
    keyed = KeyedLines(buf, keys, countable, starts, ends)
    folded = np.flatnonzero(needs_python)
    if len(folded):
        lines = [keyed.line(i) for i in folded.tolist()]
        countable[folded] = [0 < len(line) <= max_chars for line in lines]
        canonical = np.frombuffer("\n".join(map(canonical_line, lines)).encode("utf-8", "surrogatepass"), np.uint8)
        m = len(lines)
        folded_keys = np.zeros(m, np.int64)
        kernels.canonical_line_keys(canonical, len(canonical) + 1, kernels.CHAR_CLASSES, True, folded_keys,
                                    *textbytes.line_bounds(canonical), np.zeros(m, bool), np.zeros(m, bool))
        keys[folded] = np.where(countable[folded], folded_keys, 0)
    return keyed


def line_keys(lines: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """For lines (without newlines in them): each one's key and whether it is countable (:func:`key_buffer`)."""
    if not lines:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    if any("\n" in line for line in lines):
        raise ValueError("line_keys takes lines without newlines in them; key whole texts with KeyedTexts.of")
    keyed = key_buffer(textbytes.join(lines))
    return keyed.keys, keyed.countable


def _first_lines(keyed: KeyedLines, pieces: Sequence[bytes]) -> np.ndarray:
    """The index of each piece's first line in ``keyed`` (the pieces joined by newlines), and the line count
    at the end: found from the byte offsets (counting newlines per text in Python took 0.08 s of the dev set)."""
    lengths = np.fromiter(map(len, pieces), np.int64, len(pieces))
    piece_starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
    return np.append(np.searchsorted(keyed.starts, piece_starts), len(keyed.keys))


@dataclass(frozen=True, slots=True)
class KeyedTexts:
    """A batch of texts keyed line by line in one pass (:func:`key_buffer` over the texts joined by newlines):
    what pass 1 counts and pass 2 looks up."""

    pieces: list[bytes]      # each text, newlines normalized, as UTF-8
    keyed: KeyedLines        # the lines of all of them
    first_lines: np.ndarray  # the index of each text's first line in ``keyed``, and the line count at the end

    @classmethod
    def of(cls, texts: Sequence[str]) -> KeyedTexts:
        """The texts' lines keyed, their newlines normalized first (:func:`normalize_newlines`)."""
        pieces = [textbytes.encode(normalize_newlines(text)) for text in texts]
        keyed = key_buffer(b"\n".join(pieces))
        return cls(pieces, keyed, _first_lines(keyed, pieces))

    def fingerprints(self) -> np.ndarray:
        """Each text's :func:`fingerprint` (int64)."""
        return np.fromiter(map(fingerprint, self.pieces), np.int64, len(self.pieces))

    def per_text(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(keys, countable) of each text's lines."""
        bounds = self.first_lines.tolist()
        return [(self.keyed.keys[a:b], self.keyed.countable[a:b]) for a, b in itertools.pairwise(bounds)]


@dataclass(slots=True)
class _Samples:
    """Each counted line's text as first seen (stripped UTF-8 bytes), by key: for whoever reads the counts
    tables. Held as numpy arrays and turned into an Arrow column without a Python string per line: a dict
    of strings, built and read per line, was 0.6 s of pass 1 on the dev set (3,092 documents)."""

    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))   # sorted
    data: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))    # the lines end to end
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # per key, in data
    ends: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def __len__(self) -> int:
        self._settle()
        return len(self.keys)

    def has(self, keys: np.ndarray) -> np.ndarray:
        self._settle()
        return np.isin(keys, self.keys, assume_unique=True) if len(self.keys) else np.zeros(len(keys), bool)

    def add(self, keys: np.ndarray, buf: bytes, starts: np.ndarray, ends: np.ndarray) -> None:
        """Keep the lines ``buf[starts[i]:ends[i]]`` (stripped here) for ``keys``, none of them held yet."""
        data = np.frombuffer(buf, np.uint8)
        first, last = kernels.strip_whitespace(data, starts, ends, kernels.CHAR_CLASSES)
        lines, offsets = kernels.gather_lines(data, first, last, np.arange(len(keys)))
        self._pending.append((keys, lines, offsets[:-1], offsets[1:]))

    def keep_only(self, held: np.ndarray) -> None:
        self._settle()
        kept = np.isin(self.keys, held)
        self.keys, self.starts, self.ends = self.keys[kept], self.starts[kept], self.ends[kept]
        self._compact()

    def lines(self, keys: np.ndarray) -> pa.Array:
        """The samples of ``keys`` (each one held) as an Arrow string column."""
        self._settle()
        at = np.searchsorted(self.keys, keys)
        if len(keys) and (at.max() >= len(self.keys) or not np.array_equal(self.keys[at], keys)):
            raise KeyError("a line count without its sample")
        buffer, offsets = kernels.gather_lines(self.data, self.starts, self.ends, at)
        column = textbytes.arrow_strings(buffer, offsets)
        try:
            column.validate(full=True)
        except pa.ArrowInvalid:  # not UTF-8 (lone surrogates from a library caller): decoded leniently
            raw = [buffer[a:b].tobytes() for a, b in itertools.pairwise(offsets.tolist())]
            column = pa.array([line.decode("utf-8", "replace") for line in raw], pa.string())
        return column

    def _settle(self) -> None:
        """Fold the pending additions in (sorted by key)."""
        if not self._pending:
            return
        base = len(self.data)
        keys = [self.keys]
        starts = [self.starts]
        ends = [self.ends]
        datas = [self.data]
        for piece_keys, lines, piece_starts, piece_ends in self._pending:
            keys.append(piece_keys)
            starts.append(piece_starts + base)
            ends.append(piece_ends + base)
            datas.append(lines)
            base += len(lines)
        self._pending.clear()
        self.data = np.concatenate(datas)
        all_keys = np.concatenate(keys)
        order = np.argsort(all_keys, kind="stable")
        self.keys, self.starts, self.ends = all_keys[order], np.concatenate(starts)[order], np.concatenate(ends)[order]

    def _compact(self) -> None:
        """Drop the bytes of samples no longer held."""
        lines, offsets = kernels.gather_lines(self.data, self.starts, self.ends, np.arange(len(self.keys)))
        self.data, self.starts, self.ends = lines, offsets[:-1], offsets[1:]


@dataclass(slots=True)
class LineCounter:
    """Accumulates per-source line document counts over a stream of documents (pass 1).

    Counted per batch in numpy: each document's distinct line keys go into its source's running sum
    (:class:`_SourceSum`, the same as the merge's), which a source with more than four caps of distinct
    lines keeps at four caps by :func:`_misra_gries`; the table
    keeps each source's ``MAX_LINES_PER_SOURCE`` most frequent lines (ties: the smaller key). Python
    Counters updated per document were a third of pass 1 on the dev set.

    Each counted document's :func:`fingerprint` is counted too (the table's ``document`` rows): a document this
    counter saw twice counts once here, but only the merge of all shards (:meth:`LineStats.from_tables`) sees
    the same document in two shards or two runs (``LineStats.copies``).
    """

    docs: Counter[str] = field(default_factory=Counter)
    # False: no samples are kept (in-memory cleaning never writes the table; :meth:`to_stats` needs none).
    keep_samples: bool = True
    samples: _Samples = field(default_factory=lambda: _Samples())  # each line as first seen, stripped
    _sums: dict[str, _SourceSum] = field(default_factory=dict)
    _documents: dict[str, _SourceSum] = field(default_factory=dict)  # per source: fingerprints counted
    _tops: dict[str, _SourceSum] = field(default_factory=dict)  # per source: lines among documents' first TOP_LINES
    _seen_content: set[tuple[str, int]] = field(default_factory=set)

    def add_many(self, docs: Sequence[tuple[str, str]]) -> None:
        """Count a batch of ``(source, text)`` documents; the line keys are computed for all at once."""
        sources = [source for source, _ in docs]
        self.add_keyed(sources, KeyedTexts.of([text for _, text in docs]))

    def add_keyed(self, sources: Sequence[str], texts: KeyedTexts) -> None:
        """Count a batch of documents already keyed (:class:`KeyedTexts`), ``sources[i]`` the source of text i:
        for callers that use the same keys again (:func:`cleaners.batch.clean_batch` cleans with them)."""
        selected: list[int] = []
        fingerprints = texts.fingerprints().tolist()
        for index, identity in enumerate(zip(sources, fingerprints, strict=True)):
            # The same document twice (syndication, re-scrapes) would make its whole text look like template.
            if identity in self._seen_content:
                continue
            self._seen_content.add(identity)
            selected.append(index)
        if len(self._seen_content) > MAX_TRACKED_DOCUMENTS:
            self._seen_content.clear()  # duplicates further apart than this are counted twice
        if not selected:
            return
        keyed = texts.keyed
        sources = [sources[index] for index in selected]
        line_doc = np.repeat(np.arange(len(texts.pieces)), np.diff(texts.first_lines))
        rank = np.full(len(texts.pieces), -1, np.int64)
        rank[selected] = np.arange(len(selected))
        at = np.flatnonzero(keyed.countable & (rank[line_doc] >= 0))  # countable lines of counted documents
        keys = keyed.keys[at]
        doc_of = rank[line_doc[at]]
        samples = self.samples
        if self.keep_samples:
            # Each line's sample: its first occurrence in the stream (np.unique returns first indices).
            distinct, first = np.unique(keys, return_index=True)
            unseen = np.flatnonzero(~samples.has(distinct))
            if len(unseen):
                positions = at[first[unseen]]
                samples.add(distinct[unseen], keyed.buf, keyed.starts[positions], keyed.ends[positions])
        # Each document's distinct keys (doc_of ascends: a document's lines are together), and those of its top: its
        # first TOP_LINES countable lines above its first line of prose.
        doc_starts = np.searchsorted(doc_of, np.arange(len(sources) + 1))
        prose = np.flatnonzero(keyed.ends - keyed.starts > TOP_PROSE_BYTES)  # long before stripping, then after it
        if len(prose):
            first, last = kernels.strip_whitespace(np.frombuffer(keyed.buf, np.uint8), keyed.starts[prose],
                                                   keyed.ends[prose], kernels.CHAR_CLASSES)
            prose = prose[last - first > TOP_PROSE_BYTES]
        first_line = texts.first_lines[selected]
        first_prose = prose[np.minimum(np.searchsorted(prose, first_line), len(prose) - 1)] if len(prose) else None
        above_prose = np.full(len(selected), np.iinfo(np.int64).max, np.int64)
        if first_prose is not None:
            in_document = (first_prose >= first_line) & (first_prose < texts.first_lines[np.asarray(selected) + 1])
            above_prose[in_document] = first_prose[in_document]
        at_top = (np.arange(len(doc_of)) - doc_starts[doc_of] < TOP_LINES) & (at < above_prose[doc_of])
        top_keys, top_bounds = kernels.distinct_per_group(
            keys[at_top], np.searchsorted(doc_of[at_top], np.arange(len(sources) + 1)))
        keys, bounds = kernels.distinct_per_group(keys, doc_starts)
        bounds, top_bounds = bounds.tolist(), top_bounds.tolist()
        reduced = False
        documents: dict[str, list[int]] = {}
        tops: dict[str, list[np.ndarray]] = {}
        for index, source in enumerate(sources):
            self.docs[source] += 1
            documents.setdefault(source, []).append(fingerprints[selected[index]])
            piece = keys[bounds[index]:bounds[index + 1]]
            summed = self._sums.setdefault(source, _SourceSum(reduce_to_caps=4))
            reduced |= summed.add(piece, np.ones(len(piece), np.int64))
            tops.setdefault(source, []).append(top_keys[top_bounds[index]:top_bounds[index + 1]])
        for source, counted in documents.items():
            self._documents.setdefault(source, _SourceSum(limit=MAX_DOCUMENTS_PER_SOURCE)).add(
                np.asarray(counted, np.int64), np.ones(len(counted), np.int64))
        for source, pieces in tops.items():  # one piece per source and batch (the keys are distinct per document)
            top = np.concatenate(pieces)
            self._tops.setdefault(source, _SourceSum(reduce_to_caps=4)).add(top, np.ones(len(top), np.int64))
        if reduced and self.keep_samples:  # bounded memory: the samples of lines reduced away go with them
            self.samples.keep_only(np.concatenate([summed.held_keys() for summed in self._sums.values()]))

    def counts(self, source: str) -> tuple[np.ndarray, np.ndarray]:
        """The source's (sorted line keys, document counts) so far."""
        summed = self._sums.get(source)
        return summed.fold() if summed is not None else _NO_LINES

    def top_counts(self, source: str) -> tuple[np.ndarray, np.ndarray]:
        """The source's (sorted line keys, on how many documents each is among their first ``TOP_LINES`` lines)."""
        summed = self._tops.get(source)
        return summed.fold() if summed is not None else _NO_LINES

    def document_counts(self, source: str) -> tuple[np.ndarray, np.ndarray]:
        """The source's (sorted fingerprints, times counted) so far: 1 each, unless a document came again after
        ``MAX_TRACKED_DOCUMENTS`` others."""
        summed = self._documents.get(source)
        return summed.fold() if summed is not None else _NO_LINES

    def to_stats(self, min_n_docs: int = 2) -> LineStats:
        """The counts as :class:`LineStats`: the same as ``LineStats.from_tables([self.to_table()])`` without
        building the table (its line samples were 0.2 s of the in-memory cleaning of the dev set)."""
        docs: dict[str, int] = {}
        per_source: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        copies: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        tops: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in sorted(self.docs):
            if self.docs[name] < min(min_n_docs, 2):
                # A source of one document has no line or top counted min_n_docs times and no copy (counted twice);
                # its document row makes it known to the table: its folds were a third of this.
                docs[name] = self.docs[name]
                continue
            keys, counts = _cap(*self.counts(name))
            documents, times = _cap(*self.document_counts(name), limit=MAX_DOCUMENTS_PER_SOURCE)
            if not len(keys) and not len(documents):
                continue  # no row in the table: the source is unknown to the stats, as from_tables has it
            # counts() is folded (sorted, distinct keys) and _cap keeps the order: no second fold, as
            # from_tables needs for several tables (one per source was 0.08 s of the dev set's cleaning).
            frequent = counts >= min_n_docs
            if frequent.any():
                per_source[name] = (keys[frequent], counts[frequent])
            again = times >= 2
            if again.any():
                copies[name] = (documents[again], times[again])
            top_keys, top_counts = _cap(*self.top_counts(name))
            if (at_tops := top_counts >= min_n_docs).any():
                tops[name] = (top_keys[at_tops], top_counts[at_tops])
            docs[name] = self.docs[name]
        return LineStats(docs, per_source, copies, tops)

    def to_table(self) -> pa.Table:
        """One ``line`` row per (source, line), at most ``MAX_LINES_PER_SOURCE`` per source, sorted by source and
        key; then one ``document`` row per (source, counted document), at most ``MAX_DOCUMENTS_PER_SOURCE``; then one
        ``top`` row per (source, line at the top of a document), at most ``MAX_LINES_PER_SOURCE``."""
        if not self.keep_samples:
            raise ValueError("this LineCounter keeps no line samples (keep_samples=False): use to_stats()")
        names = sorted(self.docs)
        totals = [self.docs[name] for name in names]
        lines = [_cap(*self.counts(name)) for name in names]
        documents = [_cap(*self.document_counts(name), limit=MAX_DOCUMENTS_PER_SOURCE) for name in names]
        tops = [_cap(*self.top_counts(name)) for name in names]
        samples = self.samples.lines(np.concatenate([np.zeros(0, np.int64), *[keys for keys, _ in lines]]))
        return pa.concat_tables([_counts_rows(KIND_LINE, names, lines, totals, samples),
                                 _counts_rows(KIND_DOCUMENT, names, documents, totals),
                                 _counts_rows(KIND_TOP, names, tops, totals)])


def _counts_rows(kind: str, names: Sequence[str], parts: Sequence[tuple[np.ndarray, np.ndarray]],
                 totals: Sequence[int], samples: pa.Array | None = None) -> pa.Table:
    """Rows of a counts table (``LINE_COUNTS_SCHEMA``) of one ``kind``: per source ``names[i]``, its (sorted keys,
    counts) ``parts[i]`` and its document total ``totals[i]``; ``samples``: each line's text (else empty)."""
    sizes = [len(keys) for keys, _ in parts]
    n = sum(sizes)
    return pa.Table.from_arrays([
        pa.array(names, pa.string()).take(pa.array(np.repeat(np.arange(len(names)), sizes))),
        pa.array(np.concatenate([np.zeros(0, np.int64), *[keys for keys, _ in parts]]), pa.int64()),
        samples if samples is not None else pa.repeat(pa.scalar("", pa.string()), n),
        pa.array(np.concatenate([np.zeros(0, np.int64), *[counts for _, counts in parts]]), pa.int64()),
        pa.array(np.repeat(np.asarray(totals, np.int64), sizes), pa.int64()),
        pa.repeat(pa.scalar(kind, pa.string()), n),
    ], schema=LINE_COUNTS_SCHEMA)


def count_lines(docs: Iterable[tuple[str, str]]) -> pa.Table:
    """Pass 1 over ``(source, text)`` pairs: the line-counts table of these documents."""
    counter = LineCounter()
    batch: list[tuple[str, str]] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= COUNT_BATCH_DOCS:
            counter.add_many(batch)
            batch.clear()
    counter.add_many(batch)
    return counter.to_table()


def is_current(table: pa.Table) -> bool:
    """Whether a stored counts table has this version's line keys (older keys can never match: the
    history of earlier versions is not used, and rebuilds as inputs are processed again)."""
    metadata = table.schema.metadata or {}
    version = metadata.get(b"boilerstrip.schema_version", LINE_COUNTS_VERSION.encode()).decode("utf-8", "replace")
    return version in READABLE_LINE_COUNTS_VERSIONS


@dataclass(frozen=True, slots=True)
class Evidence:
    n_docs: int
    source_docs: int

    @property
    def share(self) -> float:
        return self.n_docs / self.source_docs if self.source_docs else 0.0


_NO_LINES = (np.zeros(0, np.int64), np.zeros(0, np.int64))


def _sum_keys(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum the counts of equal keys: (sorted distinct keys, int64 sums)."""
    if not len(keys):
        return _NO_LINES
    order = np.argsort(keys, kind="stable")
    keys, counts = keys[order], counts[order]
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return keys[starts], np.add.reduceat(counts, starts)


def _misra_gries(keys: np.ndarray, counts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reduce summed (keys, counts) to at most ``k`` lines the Misra-Gries way: subtract the (k+1)-th
    largest count from every line and drop those left at zero (Agarwal et al., "Mergeable summaries").

    Over any number of such reductions a line's count falls short of its true count by at most N/(k+1),
    N being the source's (document, line) pairs counted: with k = 20,000 and ~150 lines a document, under
    1% of the source's documents, so a line on half of them always stays. Cutting to the k most frequent at
    each fold instead could drop a line seen on one document per shard at every fold, so it never added up.
    Keys stay sorted."""
    if len(keys) <= k:
        return keys, counts
    threshold = np.partition(counts, len(counts) - k - 1)[len(counts) - k - 1]
    kept = counts > threshold
    return keys[kept], counts[kept] - threshold


def _cap(keys: np.ndarray, counts: np.ndarray, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A source's ``limit`` (default ``MAX_LINES_PER_SOURCE``) most frequent lines (ties: the smaller key), still
    sorted by key: the same lines in any order of the shards."""
    limit = MAX_LINES_PER_SOURCE if limit is None else limit
    if len(keys) <= limit:
        return keys, counts
    top = np.sort(np.lexsort((keys, -counts))[:limit])
    return keys[top], counts[top]


# The kinds of a counts table's rows as small integers (_by_source), in the order of the table's parts.
_KIND_CODES = {KIND_LINE: 0, KIND_DOCUMENT: 1, KIND_TOP: 2}


def _by_source(table: pa.Table) -> Iterator[tuple[str, np.ndarray, np.ndarray, int, np.ndarray]]:
    """A counts table's rows per source, as numpy: (source, keys, n_docs, largest ``source_docs``, each row's kind as
    ``_KIND_CODES`` has it (all lines in a version 2 table; a kind this version does not know reads as -1)).

    Sorts the dictionary codes of the source column, not the strings: Arrow's sort and group_by over the
    string column held several copies of the table (1.6 GB peak for 6 million rows at 100,000 documents).
    """
    encoded = table["source"].combine_chunks().dictionary_encode()
    codes = encoded.indices.to_numpy()
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(encoded.dictionary) + 1)).tolist()
    keys = table["line_hash"].to_numpy()[order]
    counts = table["n_docs"].to_numpy()[order].astype(np.int64, copy=False)
    totals = (np.maximum.reduceat(table["source_docs"].to_numpy()[order], bounds[:-1]).tolist()
              if "source_docs" in table.column_names else [0] * (len(bounds) - 1))
    if "kind" in table.column_names:
        kinds = table["kind"].combine_chunks().dictionary_encode()
        # Each dictionary entry's code, and -1 (last) for a null or a kind this version does not know.
        codes = np.array([*(_KIND_CODES.get(kind, -1) for kind in kinds.dictionary.to_pylist()), -1], np.int8)
        kind = codes[np.asarray(pc.fill_null(kinds.indices, len(codes) - 1), np.int64)][order]
    else:
        kind = np.zeros(len(order), np.int8)
    for name, a, b, total in zip(encoded.dictionary.to_pylist(), bounds[:-1], bounds[1:], totals, strict=True):
        yield name, keys[a:b].copy(), counts[a:b].copy(), total, kind[a:b]


@dataclass(slots=True)
class _SourceSum:
    """One source's running sum of line counts: folded arrays (summed, kept at ``reduce_to_caps`` x
    ``MAX_LINES_PER_SOURCE`` lines by :func:`_misra_gries`) plus pieces not yet folded in. Folding once
    the pieces pass the cap bounds a source at that many caps, plus one cap, plus one piece."""

    reduce_to_caps: int = 1
    limit: int | None = None  # the cap (default MAX_LINES_PER_SOURCE, read when used: tests change it)
    keys: np.ndarray = field(default_factory=lambda: _NO_LINES[0])
    counts: np.ndarray = field(default_factory=lambda: _NO_LINES[1])
    pieces: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    pending: int = 0

    def add(self, keys: np.ndarray, counts: np.ndarray) -> bool:
        """Add a piece; returns whether a fold dropped lines."""
        self.pieces.append((keys, counts))
        self.pending += len(keys)
        if self.pending > self._limit():
            return self._fold()
        return False

    def _limit(self) -> int:
        return MAX_LINES_PER_SOURCE if self.limit is None else self.limit

    def fold(self) -> tuple[np.ndarray, np.ndarray]:
        self._fold()
        return self.keys, self.counts

    def held_keys(self) -> np.ndarray:
        return np.concatenate([self.keys, *(k for k, _ in self.pieces)])

    def _fold(self) -> bool:
        if not self.pieces:
            return False
        keys, counts = _sum_keys(np.concatenate([self.keys, *(k for k, _ in self.pieces)]),
                                 np.concatenate([self.counts, *(n for _, n in self.pieces)]))
        self.keys, self.counts = _misra_gries(keys, counts, self.reduce_to_caps * self._limit())
        self.pieces, self.pending = [], 0
        return len(self.keys) < len(keys)


@dataclass(frozen=True, slots=True)
class LineStats:
    """Merged line counts of many shards (this run and earlier ones), looked up per source.

    Held as numpy arrays per source (sorted line keys, document counts), never as Python objects per
    line: at 10,000 documents the counts are ~100,000 lines, and Python dicts of them were most of the
    growth of the flow's memory with the corpus (docs/performance.md).

    A document counted more than once (byte-identical copies in two shards, or fetched again by a later run)
    is in ``copies``: :func:`cleaners.document.template_counts` takes its extra copies off its own lines' counts,
    so a repeated article is never its own source's template. Totals (``source_docs``) count every copy, as the
    line counts do: a share stays about right when a whole file is counted twice (its documents weigh double),
    where a distinct total made lines shared by that file's documents look like template.
    """

    source_docs: dict[str, int]                           # documents counted per source (copies included)
    per_source: dict[str, tuple[np.ndarray, np.ndarray]]  # source -> (sorted keys, n_docs)
    copies: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # -> (sorted fingerprints,
    #                                                       times counted, 2 or more)
    tops: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # -> (sorted keys, on how many
    #                                                       documents the line is among their first TOP_LINES)

    @classmethod
    def empty(cls) -> LineStats:
        return cls({}, {})

    @classmethod
    def from_table(cls, table: pa.Table, source_docs: dict[str, int] | None = None) -> LineStats:
        """From a merged table (:meth:`to_table`): one row per (source, line_hash, kind) with ``n_docs`` and
        ``source_docs``, each source's total. ``source_docs`` (the argument) replaces those totals."""
        docs: dict[str, int] = {}
        held: tuple[dict[str, tuple[np.ndarray, np.ndarray]], ...] = ({}, {}, {})  # by kind: lines, copies, tops
        if table.num_rows:
            for name, keys, counts, total, kind in _by_source(table):
                for code, into in enumerate(held):
                    mask = kind == code
                    if mask.any():
                        order = np.argsort(keys[mask], kind="stable")
                        into[name] = (keys[mask][order], counts[mask][order])
                docs[name] = total
        return cls(dict(docs if source_docs is None else source_docs), *held)

    @classmethod
    def from_tables(cls, tables: Iterable[pa.Table], min_n_docs: int = 2,
                    sources: set[str] | None = None, window: int | None = None) -> LineStats:
        """Sum counts over shard tables; lines seen in fewer than ``min_n_docs`` documents are dropped.
        ``window``: given the tables newest first, a source's counts stop at the first table that brings it to at
        least this many documents (its recent history; see ``HISTORY_DOCS_PER_SOURCE``).

        Each table is split by source into numpy arrays (16 bytes a line) and folded into that source's
        running sum, reduced to ``MAX_LINES_PER_SOURCE`` lines by :func:`_misra_gries`: memory is
        bounded by sources x cap however many shards there are, and a count falls short by at most
        1/(cap+1) of the source's (document, line) pairs, so template lines always stay. The previous
        merge (Arrow group_by/sort over a running table with a string source column) peaked at 0.43 GB of
        RSS at 10,000 documents and 1.6 GB at 100,000 (6 million rows held), for a result of 2 to 18 MB
        (docs/performance.md).

        The tables' document rows are summed the same way (capped at ``MAX_DOCUMENTS_PER_SOURCE``): a fingerprint
        counted twice or more is a document counted in several shards (or runs), kept in ``copies``.
        """
        docs: Counter[str] = Counter()
        sums: dict[str, _SourceSum] = {}
        document_sums: dict[str, _SourceSum] = {}
        top_sums: dict[str, _SourceSum] = {}
        wanted = pa.array(sorted(sources), pa.string()) if sources is not None else None
        for table in tables:
            if not table.num_rows or not is_current(table):
                continue
            if wanted is not None:
                table = table.filter(pc.is_in(table["source"], value_set=wanted))
                if not table.num_rows:
                    continue
            for name, keys, counts, total, kind in _by_source(table):
                if window is not None and docs[name] >= window:
                    continue  # older history of a source whose recent shards hold enough documents
                # Each shard repeats its per-source document total on every row: taken once per (shard, source).
                docs[name] += total
                lines = kind == _KIND_CODES[KIND_LINE]
                sums.setdefault(name, _SourceSum()).add(keys[lines], counts[lines])
                if (documents := kind == _KIND_CODES[KIND_DOCUMENT]).any():
                    document_sums.setdefault(name, _SourceSum(limit=MAX_DOCUMENTS_PER_SOURCE)).add(
                        keys[documents], counts[documents])
                if (tops := kind == _KIND_CODES[KIND_TOP]).any():
                    top_sums.setdefault(name, _SourceSum()).add(keys[tops], counts[tops])
        per_source: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        at_top: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for summed, into in ((sums, per_source), (top_sums, at_top)):
            for name in sorted(summed):
                keys, counts = summed.pop(name).fold()
                frequent = counts >= min_n_docs
                if frequent.any():
                    into[name] = (keys[frequent], counts[frequent])
        copies: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in sorted(document_sums):
            fingerprints, times = document_sums.pop(name).fold()
            again = times >= 2
            if again.any():
                copies[name] = (fingerprints[again], times[again])
        return cls(dict(docs), per_source, copies, at_top)

    @classmethod
    def merge(cls, *parts: LineStats) -> LineStats:
        """The sum of stats of different documents (a document in two parts, once in each, counts twice)."""
        docs: Counter[str] = Counter()
        pieces: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        copy_pieces: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        top_pieces: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for part in parts:
            docs.update(part.source_docs)
            for held, into in ((part.per_source, pieces), (part.copies, copy_pieces), (part.tops, top_pieces)):
                for source, arrays in held.items():
                    into.setdefault(source, []).append(arrays)

        def summed(arrays: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
            return _sum_keys(np.concatenate([k for k, _ in arrays]),
                             np.concatenate([n for _, n in arrays]).astype(np.int64, copy=False))

        return cls(dict(docs), {source: summed(arrays) for source, arrays in pieces.items()},
                   {source: summed(arrays) for source, arrays in copy_pieces.items()},
                   {source: summed(arrays) for source, arrays in top_pieces.items()})

    def to_table(self) -> pa.Table:
        """The merged counts as one table (``LINE_COUNTS_SCHEMA``): written once per run for the tasks. Unlike a
        shard's table, its ``source_docs`` are the sums over the shards and its document rows only those counted
        more than once."""
        names, repeated, topped = sorted(self.per_source), sorted(self.copies), sorted(self.tops)
        return pa.concat_tables([
            _counts_rows(KIND_LINE, names, [self.per_source[name] for name in names],
                         [self.source_docs.get(name, 0) for name in names]),
            _counts_rows(KIND_DOCUMENT, repeated, [self.copies[name] for name in repeated],
                         [self.source_docs.get(name, 0) for name in repeated]),
            _counts_rows(KIND_TOP, topped, [self.tops[name] for name in topped],
                         [self.source_docs.get(name, 0) for name in topped])])

    def times_counted(self, source: str, fingerprint: int) -> int:
        """How many times the document of this fingerprint is in ``source``'s counts (1 if not known as copied)."""
        known, times = self.copies.get(source, _NO_LINES)
        if len(known):
            at = int(np.searchsorted(known, fingerprint))
            if at < len(known) and known[at] == fingerprint:
                return int(times[at])
        return 1

    def n_docs(self, source: str, keys: np.ndarray) -> np.ndarray:
        """For each line key: on how many of ``source``'s documents the line is (0: unknown)."""
        return _look_up(self.per_source.get(source, _NO_LINES), keys)

    def top_docs(self, source: str, keys: np.ndarray) -> np.ndarray:
        """For each line key: on how many of ``source``'s documents the line is among the first ``TOP_LINES`` (0:
        unknown, or counted by a version that did not count tops)."""
        return _look_up(self.tops.get(source, _NO_LINES), keys)

    def evidence(self, source: str, line: str) -> Evidence | None:
        """One line's evidence (for single lookups; :meth:`n_docs` does a document at once)."""
        keys, countable = line_keys([line.strip()])
        n = int(self.n_docs(source, keys)[0]) if countable[0] else 0
        return Evidence(n, self.source_docs.get(source, 0)) if n else None


def _look_up(held: tuple[np.ndarray, np.ndarray], keys: np.ndarray) -> np.ndarray:
    """Each key's count in ``held`` (sorted keys, counts), 0 for a key not in it."""
    known, counted = held
    out = np.zeros(len(keys), np.int64)
    if len(known) and len(keys):
        at = np.minimum(np.searchsorted(known, keys), len(known) - 1)
        hit = known[at] == keys
        out[hit] = counted[at[hit]]
    return out
