"""Which input files a run ingests: the ledger's view of the inputs it is given.

A file is known by its path and content; a run ingests the files not yet ingested as they are now (new, changed,
or cleaned with other rules or another pipeline version), and finds the earlier shards whose line counts it
replaces and the earlier paths (a moved input tree) its files replace. The flow (``flows.clean``) calls
:func:`select_changed` before planning its shards.
"""

from __future__ import annotations

import hashlib
import os
from typing import NamedTuple

import fsspec

from cleaners.readers import InputFile, open_input, os_name, printable_name
from cleaners.shard import PIPELINE_VERSION
from cleaners.store import LedgerEntry, OutputStore, same_file


def _sha256_of(path: str) -> str:
    """The SHA-256 of a file's bytes, which the ledger knows it by; "" when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open_input(path) as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return ""  # unreadable: the reader turns it into a reject with the reason
    return digest.hexdigest()


class Selection(NamedTuple):
    todo: list[InputFile]          # the files to ingest
    fingerprints: dict[str, str]   # path -> content SHA-256, for the ledger
    replaced_shards: list[str]     # earlier shards whose line counts this run replaces (all their counted files)
    moved_away: dict[str, str]     # earlier path -> the path of this run that replaces it (its rows go)
    # Inputs ingested with other rules or another pipeline that this run was not given (raw files deleted, dated
    # roots of other days): their rows keep the versions they were cleaned with.
    on_other_versions: int
    # Unchanged files ingested again because a changed file of their shard is (the shard's line counts are one part,
    # counted anew as a whole): in ``todo``, but not changed themselves.
    with_shard_mates: int = 0
    # The output's record of current files whose size or time moved and whose bytes did not (path -> size, mtime_ns,
    # SHA-256) when this run changes it, else None: for OutputStore.write_identical_inputs, so that the next run does
    # not hash them again.
    identical: dict[str, tuple[int, int, str]] | None = None


def select_changed(files: list[InputFile], store: OutputStore, rules_version: str, reprocess: bool) -> Selection:
    """The files not yet ingested as they are now (by path and content hash), with their hashes, the earlier
    shards whose line counts this run replaces (those all of whose counted files it ingests again), and the
    earlier paths this run's files replace.

    A file is known by its path; the same file under another path (a copied, moved or differently mounted input
    tree: the same path below the root and the same bytes as a file already ingested with these rules, or as
    another file of this run) is the same input and is not ingested twice, since its rows would repeat the
    first's ``doc_id``. See :func:`_moved_away` for the changed files of a moved tree."""
    ingested = store.current_entries()
    entries = {} if reprocess else ingested
    # --reprocess hashes every file anew; the record of the other inputs' files is kept for later runs.
    recorded = store.identical_inputs()
    hashed_before = {} if reprocess else recorded
    identical: dict[str, tuple[int, int, str]] = {}
    is_current = {path: bool(entry.content_sha256 and entry.rules_version == rules_version
                             and entry.pipeline_version == PIPELINE_VERSION) for path, entry in entries.items()}
    ingested_as: dict[str, list[str]] = {}  # content hash -> paths ingested with it
    for path, entry in ingested.items():
        if entry.content_sha256:
            ingested_as.setdefault(entry.content_sha256, []).append(path)
    todo: list[InputFile] = []
    fingerprints: dict[str, str] = {}
    taken: set[tuple[str, str]] = set()  # (path below the root, content hash) of this run's files
    moved_roots: dict[str, set[str]] = {}  # a root of this run -> earlier roots its identical files were ingested under
    recorded_as: dict[str, list[str]] = {}  # content hash -> paths skipped as identical by earlier runs
    for path, (_, _, sha) in recorded.items():
        recorded_as.setdefault(sha, []).append(path)
    for f in files:
        entry = entries.get(f.path)
        # No content hash: the file could not be read when it was ingested (cleaners.shard); try it again.
        current = entry is not None and is_current[f.path]
        if current and entry.size == f.size and entry.mtime_ns == f.mtime_ns:
            continue  # unchanged since it was ingested with these rules
        known = hashed_before.get(f.path)
        sha = known[2] if known is not None and known[:2] == (f.size, f.mtime_ns) else _sha256_of(f.path)
        if current and sha and sha == entry.content_sha256:
            identical[f.path] = (f.size, f.mtime_ns, sha)
            continue  # touched but identical
        earlier = [path for path in ingested_as.get(sha, ()) if path != f.path and path.endswith("/" + f.relpath)]
        # The roots this one is a moved copy of: those of the ledger's files it is identical to, and those of the
        # files earlier runs skipped as identical (dated roots: day 2's copy of a static file was never ingested, yet
        # day 3's root replaces day 2's as much as day 1's).
        aliases = [path for path in recorded_as.get(sha, ()) if path != f.path and path not in ingested
                   and path.endswith("/" + f.relpath)]
        for path in (*earlier, *aliases):
            moved_roots.setdefault(f.path[:-len(f.relpath)], set()).add(path[:-len(f.relpath)])
        if sha and ((f.relpath, sha) in taken or any(is_current.get(path, False) for path in earlier)):
            identical[f.path] = (f.size, f.mtime_ns, sha)  # not in the ledger under this path: remembered here
            continue  # the same input under another path
        taken.add((f.relpath, sha))
        fingerprints[f.path] = sha
        todo.append(f)
    # A shard's line counts are one part for all its files: when some are ingested (and counted) again, the others
    # given to this run go with them, so the shard is counted anew as a whole.
    # A file nothing of which could be read is in no counts: retrying it leaves its shard's other files alone.
    changed = len(todo)
    again = {entries[f.path].shard_id for f in todo if f.path in entries and entries[f.path].counted}
    chosen = {f.path for f in todo}
    for f in files:
        entry = entries.get(f.path)
        if entry is not None and entry.shard_id in again and f.path not in chosen and is_current[f.path]:
            fingerprints[f.path] = entry.content_sha256
            todo.append(f)
            chosen.add(f.path)
    # Earlier shards this run counts anew: those all of whose counted files it ingests again. A shard some of whose
    # files this run was not given keeps its counts (they are the only counts of those files); the documents of its
    # files counted again here are counted twice (in its source's total too, so shares stay about right; a document
    # is never counted against its own lines: cleaners.boilerplate.LineStats.copies).
    counted_files: dict[str, set[str]] = {}
    for path, entry in ingested.items():
        if entry.counted:
            counted_files.setdefault(entry.shard_id, set()).add(path)
    replaced = sorted(shard for shard in {ingested[path].shard_id for path in chosen
                                          if path in ingested and ingested[path].counted}
                      if counted_files[shard] <= chosen)
    given = {f.path for f in files}
    older = sum(1 for path, entry in ingested.items() if path not in given and (
        entry.rules_version != rules_version or entry.pipeline_version != PIPELINE_VERSION))
    # This run's files have their entries as found now; the files of other inputs keep theirs while the ledger
    # still knows them (a file deleted, or retired with its old path, leaves the record).
    identical.update((path, known) for path, known in recorded.items() if path not in given and path in ingested)
    moved = _moved_away(files, ingested, chosen, moved_roots)
    moved.update(_renamed(todo[:changed], fingerprints, ingested_as, ingested, given, moved))
    return Selection(todo, fingerprints, replaced, moved, older, len(todo) - changed,
                     identical if identical != recorded else None)


def _renamed(changed: list[InputFile], fingerprints: dict[str, str], ingested_as: dict[str, list[str]],
             ingested: dict[str, LedgerEntry], given: set[str], moved: dict[str, str]) -> dict[str, str]:
    """Earlier paths that a file of this run renames: ``{old path: new path}``. A file new to the ledger with the
    bytes of an ingested file of the same folder whose path is gone (and not given to this run) is that file under
    a new name (a log rotated to a dated name, a file renamed by hand): it is ingested under its new name and the
    old name's rows go once it commits, or they would repeat its records (and their ``doc_id`` when they carry
    their own ids). Only the same folder: dated roots deleted after ingestion hold files identical from day to day
    under other folders, each day's rows its own."""
    renamed: dict[str, str] = {}
    # (content hash, folder) -> the earlier paths there that are gone, each looked up once, taken in name order.
    gone: dict[tuple[str, str], list[str]] = {}
    for f in changed:
        sha = fingerprints.get(f.path, "")
        if not sha or f.path in ingested:
            continue
        key = (sha, f.path.rsplit("/", 1)[0])
        if key not in gone:
            gone[key] = sorted((old for old in ingested_as.get(sha, ()) if old.rsplit("/", 1)[0] == key[1]
                                and old not in given and old not in moved and not _exists(old)), reverse=True)
        if gone[key]:
            renamed[gone[key].pop()] = f.path
    return renamed


def _moved_away(files: list[InputFile], ingested: dict[str, LedgerEntry], chosen: set[str],
                moved_roots: dict[str, set[str]]) -> dict[str, str]:
    """Earlier paths that files of this run replace: ``{old path: new path}``, their rows to go once the new ones
    are committed (:meth:`cleaners.store.OutputStore.retire`).

    - A tree that was moved: a root of this run holds files identical to files ingested under an earlier root
      (same path below both), so it is that tree, moved. A file of it that is ingested now (changed, new rules,
      ``--reprocess``) or was ingested before replaces the same path under the earlier root, when that path no
      longer exists and this run was not given it, and when it is a version of the old file
      (:meth:`cleaners.store.OutputStore.retire` checks).
      Without such evidence nothing is replaced: dated input roots whose raw files are deleted after ingestion hold
      different articles under the same names.
    - The same file under another name (a symlink, a bind mount): a changed file read under one name replaces the
      other's rows.
    - A folder that could not be listed (an `unreadable` reject under the folder's path), now listed: this run's
      files below it replace that reject.
    """
    given = {f.path for f in files}
    moved: dict[str, str] = {}
    for f in files:
        if f.path not in chosen and f.path not in ingested:
            continue
        for old_root in moved_roots.get(f.path[:-len(f.relpath)], ()):
            old = old_root + f.relpath
            if old in ingested and old not in given and not _exists(old):
                moved[old] = f.path
    # The same file under another name (a tree reached through a symlink or a bind mount): a changed file read under
    # one name replaces the rows of the other, given to this run (and skipped as the same input) or not.
    by_name: dict[str, list[str]] = {}
    for path in ingested:
        by_name.setdefault(path.rsplit("/", 1)[-1], []).append(path)
    for f in files:
        if f.path not in chosen:
            continue
        for old in by_name.get(f.path.rsplit("/", 1)[-1], ()):
            if old != f.path and old not in chosen and old not in moved and same_file(old, f.path):
                moved[old] = f.path
    # A symlink to a file of this run, ingested under its own name before such links were read once
    # (cleaners.readers: a link to a file the run reads is left out): its rows go, the file's own rows stay.
    roots = tuple({f.path[:len(f.path) - len(f.relpath)] for f in files if "://" not in f.path})
    of_size: dict[int, list[InputFile]] = {}
    for f in files:
        of_size.setdefault(f.size, []).append(f)
    for path in ingested:
        if path in given or path in moved or "://" in path or not path.startswith(roots) \
                or not os.path.islink(os_name(path)):
            continue
        target = printable_name(os.path.realpath(os_name(path)))
        if target not in given:  # the root reached through a symlinked folder: by the file itself
            size = os.path.getsize(os_name(path)) if os.path.exists(os_name(path)) else -1
            target = next((f.path for f in of_size.get(size, ()) if same_file(path, f.path)), "")
        if target:
            moved[path] = target
    unlisted = [path for path, entry in ingested.items() if not entry.counted and "://" not in path
                and os.path.isdir(os_name(path))]
    for folder in unlisted:
        below = next((f.path for f in files if f.path.startswith(folder + "/")), None)
        if below is not None:
            moved[folder] = below
    return moved


def _exists(path: str) -> bool:
    """Whether an input path (local, or an fsspec URL) is still there; an error reading it counts as there."""
    try:
        if "://" not in path:
            return os.path.lexists(os_name(path))
        fs, inner = fsspec.core.url_to_fs(path)
        return bool(fs.exists(inner))
    except Exception:
        return True
