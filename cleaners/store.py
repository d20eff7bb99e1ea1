"""The output dataset and the state kept with it: ledger, line counts, manifests, recovery, lock.

Layout under OUTPUT (a local folder or an fsspec URL such as ``s3://bucket/prefix``)::

    articles/ingest_date=YYYY-MM-DD/part-<shard>.parquet   the clean articles (hive-partitioned)
    rejects/ingest_date=YYYY-MM-DD/part-<shard>.parquet    inputs that could not become articles
    _state/ledger/ingest_date=YYYY-MM-DD/part-<shard>.parquet   one row per input file ingested
    _state/line_counts/part-<shard>.parquet                per-source line counts (learned boilerplate)
    _state/identical_inputs.parquet                        inputs touched since ingested, bytes unchanged (a cache)
    _state/removing.json                                   rows being removed (retire, forget); a recovery finishes it
    _manifests/run-<time>-<id>.json                        one small manifest per run

A shard's articles and rejects are written first; its ledger part is written last and is the commit:
files of a shard without a ledger part come from a run that died and are removed by :meth:`recover`.
The state lives with the output, not in Prefect, so it survives a new server or machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import zlib
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import fsspec
import fsspec.asyn
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from cleaners.boilerplate import HISTORY_DOCS_PER_SOURCE, LINE_COUNTS_SCHEMA, LineStats, is_current
from cleaners.parquet import AtomicParquetWriter, uploads_on_close
from cleaners.readers import os_name

STATE_VERSION = "1"
_LOG = logging.getLogger(__name__)
PARTITION_KEY = "ingest_date"
_PART = re.compile(r"(?:^|/)(?:(?P<partition>ingest_date=[0-9-]+)/)?part-(?P<shard>[0-9a-f]{16})\.parquet$")

LEDGER_SCHEMA = pa.schema(
    [
        pa.field("input_file", pa.string(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("mtime_ns", pa.int64(), nullable=False),
        pa.field("content_sha256", pa.string(), nullable=False),
        pa.field("shard_id", pa.string(), nullable=False),
        pa.field("partition", pa.string(), nullable=False),
        pa.field("rules_version", pa.string(), nullable=False),
        pa.field("pipeline_version", pa.string(), nullable=False),
        pa.field("n_inputs", pa.int64(), nullable=False),
        pa.field("n_articles", pa.int64(), nullable=False),
        pa.field("n_rejects", pa.int64(), nullable=False),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ],
    metadata={"boilerstrip.schema": "ledger", "boilerstrip.schema_version": STATE_VERSION},
)


IDENTICAL_INPUTS_SCHEMA = pa.schema(
    [
        pa.field("input_file", pa.string(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("mtime_ns", pa.int64(), nullable=False),
        pa.field("content_sha256", pa.string(), nullable=False),
    ],
    metadata={"boilerstrip.schema": "identical_inputs", "boilerstrip.schema_version": STATE_VERSION},
)


_PLAN = re.compile(r"/shard-(?P<shard>[0-9a-f]+)\.json$")
_TEMPORARY = re.compile(r"\.[^/]+\.parquet\.tmp-[0-9a-f]{32}")


class OutputStateError(RuntimeError):
    """An output folder whose contents this package did not write (or whose state is gone): left untouched."""


# A file of a moved input tree replaces the file of the same name under the old root when this share of the old
# file's word 3-grams is in the new one: a corrected or appended version keeps most of them, another day's articles
# under a reused name share almost none. A big file's 3-grams are sampled (the same sample on both sides) to about
# NEW_VERSION_SAMPLE of them, so that comparing two files of a 16 MB shard holds thousands of values, not millions.
NEW_VERSION_SHARE = 0.5
NEW_VERSION_SAMPLE = 4096


def same_file(path: str, other: str) -> bool:
    """Whether two local input paths name one file (a tree reached through a symlink or a bind mount)."""
    if "://" in path or "://" in other:
        return False
    try:
        return os.path.samefile(os_name(path), os_name(other))
    except OSError:
        return False


def _path_derived(input_id: str, path: str) -> bool:
    """Whether a row's input id comes from its file's path (a text or HTML file's path below the root, or a record
    without an id: that path and its line), not from the record itself."""
    head, _, line = input_id.rpartition(":")
    return any(path == name or path.endswith("/" + name)
               for name in (input_id, *((head,) if head and line.isdigit() else ())))


def _shingles(texts: list[str], every: int) -> set[int]:
    """The word 3-grams of ``texts`` (case-folded), as CRC-32 values, those divisible by ``every`` only."""
    found: set[int] = set()
    for text in texts:
        words = text.casefold().split()
        for gram in zip(words, words[1:], words[2:], strict=False):
            value = zlib.crc32(" ".join(gram).encode("utf-8", "surrogatepass"))
            if value % every == 0:
                found.add(value)
    return found


def _new_version_of(old: tuple[list[str], set[str]], new: tuple[list[str], set[str]], old_path: str = "",
                    new_path: str = "") -> bool:
    """Whether a file's rows (``old``: its articles' texts and its rows' input ids, of file ``old_path``) are an
    earlier version of another's (``new``, of ``new_path``): they share a record by the records' own ids (their rows
    would repeat a ``doc_id``), or most of its text is in the new one, or, with no article text (rejects only, or
    articles too short for a 3-gram), all its input ids are. Ids made from the path ("a.txt", "feed.jsonl:3") are the
    same for another day's file of the same name: they are not evidence."""
    old_texts, old_ids = old
    if any(not (_path_derived(input_id, old_path) or _path_derived(input_id, new_path))
           for input_id in old_ids & new[1]):
        return True
    every = max(1, sum(len(text.split()) for text in old_texts) // NEW_VERSION_SAMPLE)
    old_shingles = _shingles(old_texts, every)
    if old_shingles:
        return len(old_shingles & _shingles(new[0], every)) >= NEW_VERSION_SHARE * len(old_shingles)
    return old_ids <= new[1]


def _with_counts(ledger: pa.Table, files: Collection[str], left: Counter[tuple[str, str]]) -> pa.Table:
    """A ledger part whose rows of ``files`` count the rows those files have left in the shard's parts (``left``:
    (file, "n_articles" or "n_rejects") -> rows): counted from the rows, not by subtracting, so a rewrite that a
    crash cut between a data part and its ledger part is mended by the next one. A file none of whose rows is
    left leaves the part."""
    names = ledger["input_file"].to_pylist()
    columns = {name: ledger[name].to_pylist() for name in ("n_articles", "n_rejects", "n_inputs")}
    for index, name in enumerate(names):
        if name in files:
            columns["n_articles"][index] = left[(name, "n_articles")]
            columns["n_rejects"][index] = left[(name, "n_rejects")]
            columns["n_inputs"][index] = columns["n_articles"][index] + columns["n_rejects"][index]
    for name, values in columns.items():
        ledger = ledger.set_column(ledger.schema.get_field_index(name), ledger.schema.field(name),
                                   pa.array(values, pa.int64()))
    return ledger.filter(pa.array([n > 0 or name not in files for name, n in zip(names, columns["n_inputs"],
                                                                                 strict=True)], pa.bool_()))


def _whole_file_id(input_id: str, path: str) -> bool:
    """Whether an input id is its file's path below the root (a text or HTML file: one document per file)."""
    return path == input_id or path.endswith("/" + input_id)


# A record without an id is the same record in a new version of its file when the estimated resemblance of their
# own word 3-grams (those in no other record of their file: a sign-off or bio every item ends with is not evidence;
# a bottom-k sketch of SKETCH_SIZE values) is at least SAME_RECORD_RESEMBLANCE. Records with fewer than
# MIN_RECORD_SHINGLES own 3-grams must be the same text. High: a record judged the same loses its row, one judged
# different keeps it (a copy at worst); an edited docstring of the same function resembled its original 0.58.
# A record with its own id is the same record when the new record of that id resembles it as much (a corrected
# version): ids restarting at 1 every day name other articles (a daily report on one template among them), which
# keep their rows.
SKETCH_SIZE = 64
SAME_RECORD_RESEMBLANCE = 0.8
MIN_RECORD_SHINGLES = 8
_LINE_NUMBER = re.compile(r"\bline \d+")


def _own_sketches(texts: list[str]) -> list[tuple[int, ...]]:
    """Per text, the SKETCH_SIZE smallest CRC-32 values of its word 3-grams that no other text of the list has."""
    grams = [_shingles([text], 1) for text in texts]
    seen: Counter[int] = Counter()
    for found in grams:
        seen.update(found)
    return [tuple(sorted(value for value in found if seen[value] == 1)[:SKETCH_SIZE]) for found in grams]


def _resemblance(one: tuple[int, ...], other: tuple[int, ...]) -> float:
    """The bottom-k estimate of the Jaccard resemblance of two 3-gram sets from their sketches."""
    union = sorted(set(one) | set(other))[:SKETCH_SIZE]
    both = set(one) & set(other)
    return sum(value in both for value in union) / len(union) if union else 0.0


def _normalized(text: str) -> str:
    return " ".join(text.casefold().split())


Row = tuple[str, str | None, str | None]  # (input id, article text or None, a reject's reason and size or None)


def _rows_replaced(old_rows: list[Row], new_rows: list[Row], old_path: str, new_path: str) -> set[str]:
    """The input ids of an old file's rows that its new version holds again, so that their rows go with the old
    path. A document file's one row goes whole. A record with its own ``id`` goes when the new version's record of
    that id is a version of it (the same text, or its own 3-grams resembling by SAME_RECORD_RESEMBLANCE); a rejected
    one, when the new version has its id. A record without an id goes when a new record has its text (the same test);
    a bad line's reject, when exactly one reject of each file has its reason and size. The others stay: a feed that
    rolls over (day 2 holds some of day 1's records and new ones) keeps the rows of the records it no longer holds."""
    new_articles = [(input_id, text) for input_id, text, _ in new_rows if text is not None]
    new_sketches = _own_sketches([text for _, text in new_articles])
    by_id = {input_id: index for index, (input_id, _) in enumerate(new_articles)}
    exact = {_normalized(text): index for index, (_, text) in enumerate(new_articles)}
    holding: dict[int, list[int]] = {}  # a sketch value -> the new records whose sketches hold it (own 3-grams: few)
    for index, sketch in enumerate(new_sketches):
        if len(sketch) >= MIN_RECORD_SHINGLES:
            for value in sketch:
                holding.setdefault(value, []).append(index)
    new_rejects = Counter(key for input_id, text, key in new_rows if text is None and key is not None
                          and _path_derived(input_id, new_path))
    old_articles = [(input_id, text) for input_id, text, _ in old_rows if text is not None]
    old_sketches = dict(zip((input_id for input_id, _ in old_articles),
                            _own_sketches([text for _, text in old_articles]), strict=True))

    def same_text(text: str, sketch: tuple[int, ...], index: int | None = None) -> bool:
        if index is not None:  # the new record of the same id
            return _normalized(text) == _normalized(new_articles[index][1]) or (
                len(sketch) >= MIN_RECORD_SHINGLES and _resemblance(sketch, new_sketches[index])
                >= SAME_RECORD_RESEMBLANCE)
        if _normalized(text) in exact:
            return True
        if len(sketch) < MIN_RECORD_SHINGLES:
            return False
        candidates = {index for value in sketch for index in holding.get(value, ())}
        return any(_resemblance(sketch, new_sketches[index]) >= SAME_RECORD_RESEMBLANCE for index in candidates)

    new_ids = {input_id for input_id, _, _ in new_rows}
    old_rejects = Counter(key for input_id, text, key in old_rows if text is None and key is not None
                          and _path_derived(input_id, old_path))
    replaced: set[str] = set()
    for input_id, text, key in old_rows:
        own_id = not (_path_derived(input_id, old_path) or _path_derived(input_id, new_path))
        if _whole_file_id(input_id, old_path) or _whole_file_id(input_id, new_path):
            replaced.add(input_id)
        elif own_id and text is None:  # a rejected record: by its id (it may be an article now)
            if input_id in new_ids:
                replaced.add(input_id)
        elif own_id:
            if input_id in by_id and same_text(text, old_sketches[input_id], by_id[input_id]):
                replaced.add(input_id)
        elif text is None:  # a line's reject: by its reason and size, when no other reject of either file has them
            if key is not None and old_rejects[key] == 1 and new_rejects[key] == 1:
                replaced.add(input_id)
        elif same_text(text, old_sketches[input_id]):
            replaced.add(input_id)
    return replaced


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    size: int
    mtime_ns: int
    content_sha256: str
    rules_version: str
    pipeline_version: str
    shard_id: str = ""  # the shard it was ingested in (its line counts are that shard's counts part)
    counted: bool = True  # False: nothing of it could be read, so its shard's line counts hold nothing of it


def _counted(ledger: pa.Table) -> pa.ChunkedArray:
    """Per ledger row, whether its file is in its shard's line counts: not when nothing of it was read (committed
    without a content hash, its one input a reject: cleaners.shard)."""
    unread = pc.and_(pc.and_(pc.equal(ledger["content_sha256"], ""), pc.equal(ledger["n_articles"], 0)),
                     pc.less_equal(ledger["n_inputs"], 1))
    return pc.invert(unread)


@dataclass(slots=True)
class RecoveryReport:
    orphans_removed: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)  # committed-looking parts moved to _state/quarantine
    superseded_rows: int = 0
    rewritten_files: list[str] = field(default_factory=list)


def partition_of(moment: datetime) -> str:
    return f"{PARTITION_KEY}={moment.date().isoformat()}"


@dataclass(frozen=True, slots=True)
class OutputStore:
    url: str
    fs: fsspec.AbstractFileSystem
    root: str
    # Ledger parts read by this object, by path: (the listing's version of the file, its table). A run reads the
    # ledger six times (recovery at its start and end, the selection, the history order); with 1,000 shards each
    # read was 1.4 s of parsing 1,000 small files (bench/state_scale.py). Unchanged parts are not read again.
    _ledger_parts: dict[str, tuple[tuple[Any, ...], pa.Table]] = field(default_factory=dict, repr=False,
                                                                       compare=False)

    @classmethod
    def open(cls, url: str) -> OutputStore:
        # No listings cache on object stores: other processes (a process pool, Dask workers) write the state and
        # data files, and a listing cached by this process would hide them (FileNotFoundError on the next read).
        local = "://" not in url or url.startswith("file://")
        fs, root = fsspec.core.url_to_fs(url) if local else fsspec.core.url_to_fs(url, use_listings_cache=False)
        if isinstance(fs, LocalFileSystem):
            root = os.path.abspath(root)
        return cls(url=url, fs=fs, root=root.rstrip("/"))

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def articles_path(self, partition: str, shard_id: str) -> str:
        return self.path("articles", partition, f"part-{shard_id}.parquet")

    def rejects_path(self, partition: str, shard_id: str) -> str:
        return self.path("rejects", partition, f"part-{shard_id}.parquet")

    def ledger_path(self, partition: str, shard_id: str) -> str:
        return self.path("_state", "ledger", partition, f"part-{shard_id}.parquet")

    def line_counts_path(self, shard_id: str) -> str:
        return self.path("_state", "line_counts", f"part-{shard_id}.parquet")

    def writer(self, path: str, schema: pa.Schema) -> AtomicParquetWriter:
        return AtomicParquetWriter(path, schema, fs=self.fs)

    # -- listing and reading -------------------------------------------------------------------
    def _listing(self, *parts: str) -> dict[str, dict[str, Any]]:
        """Every file under a folder, sorted by path, with what the filesystem's listing says of it."""
        base = self.path(*parts)
        if not self.fs.exists(base):
            return {}
        return {str(path): info for path, info in sorted(self.fs.find(base, detail=True).items())}

    def _files(self, *parts: str) -> list[str]:
        return list(self._listing(*parts))

    def _parts(self, *parts: str) -> dict[tuple[str, str], str]:
        """``(partition, shard_id) -> path`` of the committed-looking part files under a folder."""
        found: dict[tuple[str, str], str] = {}
        for path in self._files(*parts):
            match = _PART.search(path)
            if match:
                found[(match["partition"] or "", match["shard"])] = path
        return found

    def read_table(self, path: str, columns: list[str] | None = None) -> pa.Table:
        # ParquetFile, not pq.read_table: over a Python file object, read_table's dataset scan (pyarrow 26) left a
        # thread that aborted the process at exit ("terminate called without an active exception") in 14 of 20
        # runs of a script that read one ledger part; ParquetFile.read in 0 of 20 (tests/test_crash_safety.py).
        with self.fs.open(path, "rb") as handle:
            return pq.ParquetFile(handle).read(columns=columns)

    def ledger(self) -> pa.Table:
        """Every ledger part, concatenated. A part this object read before is read again only when the listing
        shows it changed (another size, modification time, inode or ETag: parts are replaced whole, under a new
        name renamed into place); the others are fetched at once (concurrently on object storage)."""
        listing = {path: info for path, info in self._listing("_state", "ledger").items() if _PART.search(path)}
        versions = {path: _version_of(info) for path, info in listing.items()}
        known = dict(self._ledger_parts)  # a snapshot: threads sharing this object each build their own result
        parts = {path: known[path] for path, version in versions.items()
                 if version is not None and path in known and known[path][0] == version}
        for path, data in self._fetch([path for path in listing if path not in parts]):
            parts[path] = (versions[path], pq.ParquetFile(pa.BufferReader(data)).read())
        self._ledger_parts.clear()  # what another thread sees in between: a smaller cache, never a wrong entry
        self._ledger_parts.update(parts)
        tables = [parts[path][1] for path in listing]
        return pa.concat_tables(tables) if tables else LEDGER_SCHEMA.empty_table()

    def _fetch(self, paths: list[str], batch: int = 64) -> Iterator[tuple[str, bytes]]:
        """The bytes of ``paths``, in order, ``batch`` files at a time: an asynchronous filesystem (an object store's)
        fetches a batch concurrently (one request per file in turn took ~30 ms each). File by file, not ``fs.cat``:
        it expands glob characters, which an output path may hold (``out[1]``)."""
        for start in range(0, len(paths), batch):
            chunk = paths[start:start + batch]
            if uploads_on_close(self.fs):  # an object store's asynchronous filesystem: fetched concurrently
                found = fsspec.asyn.sync(self.fs.loop, _gather, [self.fs._cat_file(path) for path in chunk])
            else:
                found = [self.fs.cat_file(path) for path in chunk]
            yield from zip(chunk, found, strict=True)

    def current_entries(self) -> dict[str, LedgerEntry]:
        """The newest ledger entry of every input file ever ingested into this output."""
        table = _newest_rows(self.ledger())
        columns = [table[name].to_pylist() for name in ("input_file", "size", "mtime_ns", "content_sha256",
                                                         "rules_version", "pipeline_version", "shard_id")]
        return {path: LedgerEntry(size, mtime_ns, sha, rules, pipeline, shard, counted)
                for path, size, mtime_ns, sha, rules, pipeline, shard, counted
                in zip(*columns, _counted(table).to_pylist(), strict=True)}

    def line_stats(self, sources: set[str] | None = None, min_n_docs: int = 2,
                   without_shards: Collection[str] = ()) -> LineStats:
        """All committed and this run's line counts, summed per source (lines on one document dropped).
        ``without_shards``: shards whose counts are left out (their files are being counted again)."""
        parts = {shard: path for (_, shard), path in self._parts("_state", "line_counts").items()
                 if shard not in without_shards}
        tables = (self._read_counts(parts[shard]) for shard in self._newest_first(parts))
        return LineStats.from_tables(tables, min_n_docs=min_n_docs, sources=sources, window=HISTORY_DOCS_PER_SOURCE)

    def sources_of(self, input_file: str, input_id: str | None = None) -> set[str]:
        """The sources this output's rows (articles and rejects) give ``input_file`` (and ``input_id``): how a run
        named them. A file's folder-derived source depends on the input root the run was given, which a file
        path alone does not tell (``boilerstrip explain``)."""
        ledger = self.ledger()
        where = ledger.filter(pc.equal(ledger["input_file"], input_file)).select(["partition", "shard_id"])
        found: set[str] = set()
        for row in where.to_pylist():  # only the file's own shard (the ledger says which): not every part
            for path in (self.articles_path(row["partition"], row["shard_id"]),
                         self.rejects_path(row["partition"], row["shard_id"])):
                if not self.fs.exists(path):
                    continue
                table = self.read_table(path, ["source", "input_file", "input_id"])
                mask = pc.equal(table["input_file"], input_file)
                if input_id is not None:
                    mask = pc.and_(mask, pc.equal(table["input_id"], input_id))
                found.update(table.filter(mask)["source"].to_pylist())
        return found

    def _read_counts(self, path: str) -> pa.Table:
        """A line-counts part without its sample `line` column (the counts do not need it, and it is most of each
        file); a version 2 part has no `kind` column (all its rows are lines)."""
        with self.fs.open(path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            present = set(parquet.schema_arrow.names)
            return parquet.read(columns=[name for name in ("source", "line_hash", "n_docs", "source_docs", "kind")
                                         if name in present])

    def _newest_first(self, shards: Iterable[str]) -> list[str]:
        """Shards by how recent their inputs are, newest first: each shard's latest input modification time, from
        the ledger (committed shards) or from this run's work orders (shards counted, not committed yet). Not by
        when they were ingested: a --reprocess or an upgrade ingests a source's whole history at once. A shard
        known to neither (a library caller's) comes first; ties go by shard id."""
        latest = self.ledger().group_by("shard_id").aggregate([("mtime_ns", "max")])
        newest: dict[str, int] = dict(zip(latest["shard_id"].to_pylist(), latest["mtime_ns_max"].to_pylist(),
                                          strict=True))
        for path in self._files("_state", "plans"):
            if _PLAN.search(path) is None:
                continue
            try:
                plan = self.read_plan(path)
            except (OSError, ValueError):  # a plan being written, or left half-written by a dead run
                continue
            if plan.get("files"):
                newest[plan["shard_id"]] = max(int(f["mtime_ns"]) for f in plan["files"])
        return sorted(shards, key=lambda shard: (shard in newest, -newest.get(shard, 0), shard))

    @property
    def merged_line_stats_path(self) -> str:
        return self.path("_state", "line_stats.parquet")

    def write_merged_line_stats(self, without_shards: Collection[str] = ()) -> str:
        """Merge every shard's counts once per run into one small file the clean tasks read (``without_shards``:
        earlier shards all of whose counted files this run counts again, so that they are not counted twice).

        Without it each task re-read and re-summed every count file of the output's history.
        """
        with self.writer(self.merged_line_stats_path, LINE_COUNTS_SCHEMA) as out:
            out.write_table(self.line_stats(without_shards=without_shards).to_table())
        return self.merged_line_stats_path

    def merged_line_stats(self) -> LineStats:
        if not self.fs.exists(self.merged_line_stats_path):
            return self.line_stats()
        table = self.read_table(self.merged_line_stats_path)
        if not is_current(table):
            return self.line_stats()
        return LineStats.from_table(table)  # each source's total is on its rows

    # -- input files known identical to their ledger entry -----------------------------------------------------
    @property
    def identical_inputs_path(self) -> str:
        return self.path("_state", "identical_inputs.parquet")

    def identical_inputs(self) -> dict[str, tuple[int, int, str]]:
        """Input files whose size or modification time moved since they were ingested while their bytes did not
        (``touch``, a copy without times): path -> (size, mtime_ns, content SHA-256) as last hashed. Without it every
        run hashed them again, serially (a whole corpus after an rsync without -t). A cache: lost, it costs a hash."""
        if not self.fs.exists(self.identical_inputs_path):
            return {}
        try:
            table = self.read_table(self.identical_inputs_path)
        except (OSError, pa.ArrowInvalid):  # damaged: the files are hashed again, and the record written anew
            return {}
        if (table.schema.metadata or {}).get(b"boilerstrip.schema_version") != STATE_VERSION.encode() or \
                table.schema.names != IDENTICAL_INPUTS_SCHEMA.names:
            return {}
        return {path: (size, mtime, sha) for path, size, mtime, sha in zip(
            *(table[name].to_pylist() for name in IDENTICAL_INPUTS_SCHEMA.names), strict=True)}

    def write_identical_inputs(self, known: dict[str, tuple[int, int, str]]) -> None:
        rows = [{"input_file": path, "size": size, "mtime_ns": mtime, "content_sha256": sha}
                for path, (size, mtime, sha) in sorted(known.items())]
        with self.writer(self.identical_inputs_path, IDENTICAL_INPUTS_SCHEMA) as out:
            out.write_rows(rows)

    # -- writing state ----------------------------------------------------------------------------
    def write_ledger(self, partition: str, shard_id: str, rows: list[dict[str, Any]]) -> None:
        with self.writer(self.ledger_path(partition, shard_id), LEDGER_SCHEMA) as out:
            out.write_rows(rows)

    def write_line_counts(self, shard_id: str, table: pa.Table) -> None:
        with self.writer(self.line_counts_path(shard_id), LINE_COUNTS_SCHEMA) as out:
            out.write_table(table)

    def write_plan(self, run_id: str, shard_id: str, plan: dict[str, Any]) -> str:
        """A shard's work order (its files and their hashes), so tasks and subflows take a path, not data:
        Prefect stores flow-run parameters and refuses more than 512 KB of them."""
        path = self.path("_state", "plans", run_id, f"shard-{shard_id}.json")
        self.fs.makedirs(self.path("_state", "plans", run_id), exist_ok=True)
        with self.fs.open(path, "w") as handle:
            json.dump(plan, handle)
        return path

    def read_plan(self, path: str) -> dict[str, Any]:
        with self.fs.open(path, "r") as handle:
            return json.load(handle)

    def remove_plans(self, run_id: str) -> None:
        folder = self.path("_state", "plans", run_id)
        if self.fs.exists(folder):
            self.fs.rm(folder, recursive=True)

    def write_manifest(self, name: str, manifest: dict[str, Any]) -> str:
        path = self.path("_manifests", name)
        self.fs.makedirs(self.path("_manifests"), exist_ok=True)
        tmp = f"{path}.tmp"
        with self.fs.open(tmp if self.is_local else path, "w") as handle:
            json.dump(manifest, handle, indent=2, sort_keys=True, default=str)
        if self.is_local:
            os.replace(tmp, path)
        return path if self.is_local else self.fs.unstrip_protocol(path)  # s3://..., not a bare bucket path

    # -- recovery -----------------------------------------------------------------------------------
    def recover(self, quarantine: bool = True) -> RecoveryReport:
        """Remove what a dead run left behind and rows superseded by newer versions of their input.

        Run under :meth:`lock`. Orphans: temporary files, article/reject parts without a ledger part whose shard
        a dead run's work order names (the shard never committed), and line-count parts of shards without a
        ledger part. Superseded: rows of an input file that a later run ingested again (changed content or
        rules); their old part files are rewritten without them (or deleted when nothing is left).
        ``quarantine``: move other parts without a ledger part to ``_state/quarantine`` (at the start of a run;
        at its end, after its own plans are gone, they are left alone: on object storage, without a lock, they
        may be another run's, in flight).
        """
        report = RecoveryReport()
        ours = self.fs.exists(self.path("_state", "ledger")) or self.fs.exists(self.path("_state", "plans"))
        if not ours and (self._parts("articles") or self._parts("rejects")):
            raise OutputStateError(
                f"{self.root} holds article or reject Parquet files but no ledger (_state/ledger): it is not an "
                "output of this version of boilerstrip, or its _state was removed. Nothing was changed; give another "
                "--output, or move those files away (a run would treat them as a dead run's leftovers)")
        for path in self._files():
            # Only this package's temporary names: a hidden Parquet file being written (cleaners.parquet), a
            # manifest or plan being written.
            if _TEMPORARY.fullmatch(path.rsplit("/", 1)[-1]) or path.endswith(".json.tmp"):
                self.fs.rm(path)
                report.orphans_removed.append(path)
        # A part without a ledger part is a dead run's leftover when that run's work order (plan) for its shard is
        # still here (runs remove their plans when they end): deleted. Any other such part may hold committed rows
        # that lost their ledger part: quarantined, never deleted.
        dead_shards = {match["shard"] for path in self._files("_state", "plans")
                       if (match := _PLAN.search(path)) is not None}
        committed = set(self._parts("_state", "ledger"))
        moved_at = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")  # one folder per recovery
        for folder in ("articles", "rejects"):
            for key, path in self._parts(folder).items():
                if key in committed:
                    continue
                if key[1] in dead_shards:
                    self.fs.rm(path)
                    report.orphans_removed.append(path)
                elif quarantine:
                    # Moved out of the dataset, not deleted: a part whose ledger part was removed by hand, or one
                    # a pool worker wrote after its run died and this output was recovered. Its inputs are not in
                    # the ledger, so a run given them ingests them again; the part is kept for whoever checks, in a
                    # folder of this recovery's own (a later part of the same shard never overwrites it).
                    target = self.path("_state", "quarantine", moved_at, path[len(self.root) + 1:])
                    self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                    self.fs.mv(path, target)
                    report.quarantined.append(target)
        if self.fs.exists(self.path("_state", "plans")):  # work orders of runs that died: their leftovers are gone
            self.fs.rm(self.path("_state", "plans"), recursive=True)
        report.superseded_rows += self._finish_removing()  # rows a run that died was removing (retire, forget)
        self._drop_superseded(report)
        # After the superseded rows went: a shard all of whose counted files were ingested again has no ledger part
        # left, or only rows of files nothing of which was read (in no counts), and its counts go now (not at the
        # next run), so no reader of the counts sees those files twice (cleaners.ingest.select_changed left it out of
        # the run's merge).
        ledger = self.ledger()
        counted_shards = set(pc.unique(ledger.filter(_counted(ledger))["shard_id"]).to_pylist())
        for (_, shard), path in self._parts("_state", "line_counts").items():
            if shard not in counted_shards:
                self.fs.rm(path)
                report.orphans_removed.append(path)
        return report

    def _drop_superseded(self, report: RecoveryReport) -> None:
        ledger = self.ledger()
        if not ledger.num_rows:
            return
        stale: dict[tuple[str, str], set[str]] = {}
        older = _older_rows(ledger).select(["input_file", "shard_id", "partition"])
        for path, shard_id, partition in zip(*(older[name].to_pylist() for name in older.column_names), strict=True):
            stale.setdefault((partition, shard_id), set()).add(path)
        for (partition, shard_id), files in sorted(stale.items()):
            report.superseded_rows += self._rewrite_without(partition, shard_id, files, report)

    def forget(self, files: Mapping[str, set[str] | None]) -> tuple[int, list[str]]:
        """Remove the rows of input files (``files``: path -> None for all its rows, or the input ids of the rows to
        remove), from the articles, the rejects and the ledger: an article retracted or taken down, a file ingested
        by mistake. A file all of whose rows go leaves the ledger (a later run given it ingests it again); one that
        keeps rows keeps its ledger entry, with its counts. Its shard's line counts stay, as when a run retires a
        file. Returns the article and reject rows removed, and the paths the ledger does not know."""
        located = self._located(files)
        unknown = sorted(path for path in files if path not in located)
        removed = self._remove_rows({path: (sorted(ids) if ids is not None else None) for path, ids in files.items()
                                     if path in located}, located)
        return removed, unknown

    def retire(self, replaced_by: dict[str, str]) -> int:
        """Remove every row of the input files named as keys of ``replaced_by``, ledger entries included, when the
        file that replaces each (its value) is committed and was read; returns the article and reject rows
        removed. For the old paths of a moved input tree whose files were ingested under their new path
        (cleaners.ingest._moved_away): the same inputs, so their rows would repeat the new rows' ``doc_id``. An old
        path whose replacement could not be read keeps its rows. The shards' line counts stay: an old version
        counted next to the new one weighs one document more in its source's counts, where dropping the shard's
        counts would lose its other files' counts."""
        if not replaced_by:
            return 0
        entries = self.current_entries()
        wanted = {old for old, new in replaced_by.items() if new in entries and entries[new].counted}
        if not wanted:
            return 0
        located = self._located({*wanted, *(replaced_by[old] for old in wanted)})
        # A file that was read (counted) is replaced only by a new version of itself, judged by its rows: dated input
        # roots reuse file names for other articles, and one identical file beside them looks like a moved tree. The
        # same file under another name (a symlink) is its own new version.
        read = {old for old in wanted if old in entries and entries[old].counted
                and not same_file(old, replaced_by[old])}
        # Per old path whose new version holds only some of its rows (a feed that rolled over): the input ids of
        # the rows that go. Its other rows stay, under its ledger entry with their counts.
        only: dict[str, set[str]] = {}
        if read:
            # Each file's current rows only: a version a run ingested again keeps its old rows until the run's end.
            current = {path: {place for place in located.get(path, ()) if place[1] == entries[path].shard_id}
                       for old in read for path in (old, replaced_by[old])}
            contents = self._contents(set(current), current)

            def summary(path: str) -> tuple[list[str], set[str]]:
                rows = contents.get(path, [])
                return [text for _, text, _ in rows if text], {input_id for input_id, _, _ in rows}

            # The same bytes under a new name (a renamed file) are its new version, whatever its rows' ids say.
            renamed = {old for old in read if entries[old].content_sha256
                       and entries[old].content_sha256 == entries[replaced_by[old]].content_sha256}
            kept = {old for old in read - renamed if not _new_version_of(summary(old), summary(replaced_by[old]), old,
                                                                         replaced_by[old])}
            for old in sorted(kept):
                _LOG.info("%r was not replaced by %r: the same name under a moved input tree, but other content (its "
                          "rows stay)", old, replaced_by[old])
            wanted -= kept
            for old in sorted(wanted & read - renamed):  # a renamed file's rows all go
                rows = contents.get(old, [])
                going = _rows_replaced(rows, contents.get(replaced_by[old], []), old, replaced_by[old])
                if len(going) < len({input_id for input_id, _, _ in rows}):
                    only[old] = going
                    _LOG.info("%r is replaced by %r for %d of its %d rows; the records the new version does not hold "
                              "keep their rows", old, replaced_by[old], len(going), len(rows))
        return self._remove_rows({path: (sorted(only[path]) if path in only else None) for path in wanted}, located)

    @property
    def removing_path(self) -> str:
        return self.path("_state", "removing.json")

    def _remove_rows(self, files: Mapping[str, list[str] | None], located: dict[str, set[tuple[str, str]]]) -> int:
        """Remove rows of ``files`` (path -> None for all, or the input ids of the rows to remove) from their shards'
        parts, ledger parts included. What is to go is written first (``_state/removing.json``) and removed once
        done: a run that dies in between leaves it, and the next recovery removes those rows again (each shard's
        data parts are rewritten before its ledger part, whose counts are counted from the rows left). A removal
        left pending is finished first, so no record of one is written over."""
        pending = self.fs.exists(self.removing_path)
        removed = self._finish_removing() if pending else 0
        if pending and files:
            located = self._located(files)  # the ledger as the pending removal left it
        return removed + self._apply_removal(files, located)

    def _apply_removal(self, files: Mapping[str, list[str] | None], located: dict[str, set[tuple[str, str]]]) -> int:
        if not files:
            return 0
        with self.fs.open(self.removing_path, "w") as handle:
            json.dump({"files": dict(files)}, handle)
        only = {path: set(ids) for path, ids in files.items() if ids is not None}
        where: dict[tuple[str, str], set[str]] = {}
        for path in files:
            for place in located.get(path, ()):
                where.setdefault(place, set()).add(path)
        report = RecoveryReport()
        removed = sum(self._rewrite_without(partition, shard_id, paths, report, only)
                      for (partition, shard_id), paths in sorted(where.items()))
        self.fs.rm_file(self.removing_path)
        return removed

    def _located(self, paths: Collection[str]) -> dict[str, set[tuple[str, str]]]:
        """Per input file of ``paths``: the (partition, shard id) of every ledger row it has."""
        located: dict[str, set[tuple[str, str]]] = {}
        for row in self.ledger().select(["input_file", "shard_id", "partition"]).to_pylist():
            if row["input_file"] in paths:
                located.setdefault(row["input_file"], set()).add((row["partition"], row["shard_id"]))
        return located

    def _finish_removing(self) -> int:
        """Remove the rows a run that died was removing (``_state/removing.json``), if any."""
        if not self.fs.exists(self.removing_path):
            return 0
        try:
            with self.fs.open(self.removing_path, "r") as handle:
                files = json.load(handle)["files"]
        except (OSError, ValueError, KeyError, TypeError):  # cut while being written: nothing was removed yet
            self.fs.rm_file(self.removing_path)
            return 0
        return self._apply_removal(files, self._located(files))

    def _contents(self, paths: set[str], located: dict[str, set[tuple[str, str]]]) -> dict[str, list[Row]]:
        """Per input file of ``paths``: its rows, as (input id, article text, None) and, for a reject,
        (input id, None, its reason code, size and reason without line numbers)."""
        found: dict[str, list[Row]] = {path: [] for path in paths}
        wanted = pa.array(sorted(paths), pa.string())
        for partition, shard_id in sorted({place for path in paths for place in located.get(path, ())}):
            for part, columns in ((self.articles_path(partition, shard_id), ["input_file", "input_id", "text"]),
                                  (self.rejects_path(partition, shard_id),
                                   ["input_file", "input_id", "reason_code", "n_bytes", "reason"])):
                if not self.fs.exists(part):
                    continue
                table = self.read_table(part, columns)
                table = table.filter(pc.is_in(table["input_file"], value_set=wanted))
                if "text" in columns:
                    for path, input_id, text in zip(*(table[name].to_pylist() for name in columns), strict=True):
                        found[path].append((input_id, text or "", None))
                    continue
                for path, input_id, code, size, reason in zip(*(table[name].to_pylist() for name in columns),
                                                              strict=True):
                    found[path].append((input_id, None, f"{code}|{size}|{_LINE_NUMBER.sub('line', reason or '')}"))
        return found

    def _rewrite_without(self, partition: str, shard_id: str, files: set[str], report: RecoveryReport,
                         only: Mapping[str, set[str]] | None = None) -> int:
        """Rewrite a shard's parts without the rows of ``files``. Its line counts stay while it keeps a counted file:
        they are the only counts of its other files (dropping them lost those files' counts for good when a run
        was given only the changed file). The files ingested again are then counted twice, in the totals as in
        the lines, so shares stay about right, and a document is never counted against itself
        (cleaners.boilerplate.LineStats.copies). With no counted file left, its counts go in :meth:`recover`."""
        only = {path: ids for path, ids in (only or {}).items() if path in files}
        removed = 0
        drop = pa.array(sorted(files - only.keys()), pa.string())
        left: Counter[tuple[str, str]] = Counter()  # (file of ``only``, "n_articles" or "n_rejects") -> rows kept
        # Data files first, the ledger part last: a crash in between leaves stale ledger rows that the
        # next recovery finds again, never data rows without a ledger entry.
        for path, counted_as in ((self.articles_path(partition, shard_id), "n_articles"),
                                 (self.rejects_path(partition, shard_id), "n_rejects"),
                                 (self.ledger_path(partition, shard_id), "")):
            if not self.fs.exists(path):
                continue
            table = self.read_table(path)
            going = pc.is_in(table["input_file"], value_set=drop)
            if only and counted_as:  # some rows of these files: by input id
                partly = np.array([name in only and input_id in only[name] for name, input_id
                                   in zip(table["input_file"].to_pylist(), table["input_id"].to_pylist(), strict=True)],
                                  bool)
                going = pc.or_(going, pa.array(partly))
            kept = table.filter(pc.invert(going))
            if only and counted_as:
                left.update((name, counted_as) for name in kept["input_file"].to_pylist() if name in only)
            if not counted_as and only:
                kept = _with_counts(kept, only.keys(), left)
            unchanged = kept.num_rows == table.num_rows if counted_as else kept.equals(table)
            if unchanged and kept.num_rows:
                continue
            if counted_as:
                removed += table.num_rows - kept.num_rows
            if kept.num_rows == 0:
                self.fs.rm(path)
            else:
                with self.writer(path, table.schema) as out:
                    out.write_table(kept)
            report.rewritten_files.append(path)
        return removed

    # -- locking ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, on_wait: Callable[[str], None] | None = None) -> Iterator[bool]:
        """Exclusive lock on a local output for a whole run: concurrent runs queue, never interleave.
        ``on_wait``: told (once, with a message) when another run holds the lock and this one waits for it.

        Object stores have no lock; there, run one writer per output (yields False).
        """
        if not self.is_local:
            yield False
            return
        os.makedirs(self.path("_state"), exist_ok=True)
        with open(self.path("_state", "lock"), "a+") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait(f"another run is writing {self.root} (it holds {self.path('_state', 'lock')}); "
                            "waiting for it to finish")
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield True
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


async def _gather(coroutines: list[Any]) -> list[Any]:
    return list(await asyncio.gather(*coroutines))


def _version_of(info: dict[str, Any]) -> tuple[Any, ...] | None:
    """What tells a listed file's versions apart: size with modification time, inode or ETag (whichever the
    filesystem gives); None when it gives none of them (the file is then always read)."""
    marks = tuple(info.get(name) for name in ("mtime", "ino", "LastModified", "ETag", "etag", "generation"))
    return None if all(mark is None for mark in marks) else (info.get("size"), *marks)


_NEWEST_FIRST = [("input_file", "ascending"), ("ingested_at", "descending"), ("shard_id", "descending"),
                 ("partition", "descending")]


def _by_file_newest_first(ledger: pa.Table) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """``ledger`` sorted by input file, newest row first (by ingestion time, then shard and partition); a mask of
    each file's first (newest) row; and a mask of the rows of that same version (a row repeated in one part)."""
    ordered = ledger.sort_by(_NEWEST_FIRST)
    files = ordered["input_file"].to_numpy(zero_copy_only=False)
    first = np.ones(len(files), bool)
    first[1:] = files[1:] != files[:-1]
    newest_of_file = np.flatnonzero(first)[np.cumsum(first) - 1]
    current = np.ones(len(files), bool)
    for name in ("ingested_at", "shard_id", "partition"):
        values = ordered[name].to_numpy(zero_copy_only=False)
        current &= values == values[newest_of_file]
    return ordered, first, current


def _newest_rows(ledger: pa.Table) -> pa.Table:
    """Each input file's newest ledger row: its current version."""
    ordered, first, _ = _by_file_newest_first(ledger)
    return ordered.filter(pa.array(first))


def _older_rows(ledger: pa.Table) -> pa.Table:
    """The ledger rows of input files that a later row supersedes."""
    ordered, _, current = _by_file_newest_first(ledger)
    return ordered.filter(pa.array(~current))


def rows_in(store: OutputStore, paths: Iterable[str]) -> int:
    total = 0
    for path in paths:
        with store.fs.open(path, "rb") as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total
