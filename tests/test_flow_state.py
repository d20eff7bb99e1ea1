"""Per-process state of the flow's tasks: what is cached, and when it is read anew."""

from __future__ import annotations

from pathlib import Path

from cleaners.boilerplate import LineCounter
from cleaners.store import OutputStore
from flows import worker_cache


def _write_counts(output: Path, docs: list[tuple[str, str]]) -> None:
    store = OutputStore.open(str(output))
    counter = LineCounter()
    counter.add_many(docs)
    store.write_line_counts("00000000000000a1", counter.to_table())
    store.write_merged_line_stats()


def test_merged_line_counts_are_read_once_per_run_token(tmp_path: Path) -> None:
    template = "Home | News | Sport\nShare this article\n"
    _write_counts(tmp_path, [("a.example", template + f"Story {i}.") for i in range(6)])
    first = worker_cache.run_line_stats(str(tmp_path), "run-1")
    assert worker_cache.run_line_stats(str(tmp_path), "run-1") is first  # the same run: not read again
    assert first.source_docs == {"a.example": 6}
    _write_counts(tmp_path, [("a.example", template + f"Story {i}.") for i in range(9)])
    second = worker_cache.run_line_stats(str(tmp_path), "run-2")  # the next run's merge is read anew
    assert second is not first and second.source_docs == {"a.example": 9}
    assert worker_cache.held() == [(str(tmp_path), "run-2")]  # one run's counts held at a time


def test_default_runner_is_threads_for_small_runs_and_processes_for_large(monkeypatch) -> None:
    from flows.runners import PROCESSES_FROM_BYTES, resolve_runner_name

    monkeypatch.delenv("BOILERSTRIP_TASK_RUNNER", raising=False)
    monkeypatch.setattr("flows.runners.usable_cpus", lambda: 2)
    assert resolve_runner_name(None, PROCESSES_FROM_BYTES - 1) == "threads"
    assert resolve_runner_name(None, PROCESSES_FROM_BYTES) == "processes"
    assert resolve_runner_name("dask", PROCESSES_FROM_BYTES) == "dask"  # an explicit choice wins
    monkeypatch.setenv("BOILERSTRIP_TASK_RUNNER", "threads")
    assert resolve_runner_name(None, 10 * PROCESSES_FROM_BYTES) == "threads"
    monkeypatch.delenv("BOILERSTRIP_TASK_RUNNER")
    assert resolve_runner_name(None, 10 * PROCESSES_FROM_BYTES, shards=1) == "threads"  # one shard: no pool
    monkeypatch.setattr("flows.runners.usable_cpus", lambda: 1)
    assert resolve_runner_name(None, 10 * PROCESSES_FROM_BYTES) == "threads"  # one core: no pool


def test_a_file_that_could_not_be_read_is_tried_again_on_the_next_run(tmp_path: Path, monkeypatch) -> None:
    """A read error (permissions, a network file system) is a reject, and the ledger commits the file without a
    content hash, so the next run reads it again and its row replaces the reject (no duplicate, nothing lost)."""
    import errno
    from datetime import UTC, datetime

    import pyarrow.dataset as ds

    import cleaners.readers as readers
    from cleaners.readers import discover
    from cleaners.rulepack import load_rules
    from cleaners.shard import plan_shards, process_shard
    from cleaners.store import partition_of
    from flows.clean import _select_changed

    (tmp_path / "in" / "site.example").mkdir(parents=True)
    (tmp_path / "in" / "site.example" / "a.txt").write_text(
        "A headline\n\nThe body of the article is here, long enough to be an article paragraph.\n")
    rules = load_rules()
    store = OutputStore.open(str(tmp_path / "out"))
    readable = readers.open_input

    def failing(path: str):
        raise OSError(errno.EIO, "Input/output error")

    counts = []
    for opener in (failing, readable, readable):
        monkeypatch.setattr(readers, "open_input", opener)
        monkeypatch.setattr("flows.clean.open_input", opener)
        todo, fingerprints, _, _ = _select_changed(discover([str(tmp_path / "in")]), store, rules.version, False)
        now = datetime.now(UTC)
        for shard in plan_shards(todo, salt=rules.version):
            process_shard(shard, store, rules, now, partition_of(now), fingerprints)
        store.recover()  # what the next run does first: rows of a file ingested again are superseded
        articles = ds.dataset(str(tmp_path / "out" / "articles"), partitioning="hive").to_table().num_rows
        rejects = ds.dataset(str(tmp_path / "out" / "rejects"), partitioning="hive").to_table().num_rows
        counts.append((len(todo), articles, rejects))
    assert counts[0] == (1, 0, 1)  # unreadable: a reject
    assert counts[1] == (1, 1, 0)  # tried again: the article, and the reject is gone
    assert counts[2][0] == 0  # then current: not read again


def test_retrying_an_unreadable_file_leaves_its_shard_mates_alone(tmp_path: Path, monkeypatch) -> None:
    """Nothing of an unreadable file was counted, so retrying it (every run, until it reads) neither ingests the
    other files of its shard again (new ingested_at every day) nor drops that shard's line counts."""
    import errno
    from datetime import UTC, datetime

    import cleaners.readers as readers
    from cleaners.readers import discover
    from cleaners.rulepack import load_rules
    from cleaners.shard import count_shard, plan_shards, process_shard
    from cleaners.store import partition_of
    from flows.clean import _select_changed

    folder = tmp_path / "in" / "site.example"
    folder.mkdir(parents=True)
    for name in ("a", "b", "c"):
        (folder / f"{name}.txt").write_text(f"Headline {name}\n\nThe body of article {name} is here, long enough.\n")
    readable = readers.open_input

    def failing_for_a(path: str):
        if path.endswith("/a.txt"):
            raise OSError(errno.EACCES, "Permission denied")
        return readable(path)

    monkeypatch.setattr(readers, "open_input", failing_for_a)
    monkeypatch.setattr("flows.clean.open_input", failing_for_a)
    rules = load_rules()
    store = OutputStore.open(str(tmp_path / "out"))
    selected = []
    for _ in range(2):
        selection = _select_changed(discover([str(tmp_path / "in")]), store, rules.version, False)
        selected.append((sorted(f.relpath for f in selection.todo), selection.replaced_shards))
        now = datetime.now(UTC)
        for shard in plan_shards(selection.todo, salt=str(now)):
            count_shard(shard, store)
            process_shard(shard, store, rules, now, partition_of(now), selection.fingerprints)
        store.recover()
    assert selected[0][0] == ["site.example/a.txt", "site.example/b.txt", "site.example/c.txt"]
    assert selected[1] == (["site.example/a.txt"], [])  # only the unreadable file, and no counts replaced
    assert store.line_stats().source_docs["site.example"] == 2  # b and c, counted once


def test_the_same_files_under_another_path_are_not_ingested_twice(tmp_path: Path) -> None:
    """A copied or moved input tree (same paths below the root, same bytes) is what was ingested already: a run
    over it adds no rows with a doc_id already written. A file changed in the copy is a new input; in a tree that
    was moved (the old paths gone), its new version replaces the old path's rows."""
    import shutil
    from datetime import UTC, datetime

    import pyarrow.dataset as ds

    from cleaners.readers import discover
    from cleaners.rulepack import load_rules
    from cleaners.shard import doc_id_of, plan_shards, process_shard
    from cleaners.store import partition_of
    from flows.clean import _select_changed

    for name in ("a", "b"):
        (tmp_path / "in" / "site.example").mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / "site.example" / f"{name}.txt").write_text(
            f"Headline {name}\n\nThe body of article {name} is here, long enough to be an article paragraph.\n")
    rules = load_rules()
    store = OutputStore.open(str(tmp_path / "out"))

    def run(*roots: str) -> list[str]:
        todo, fingerprints, _, moved_away = _select_changed(discover([str(tmp_path / root) for root in roots]),
                                                             store, rules.version, False)
        now = datetime.now(UTC)
        for shard in plan_shards(todo, salt=rules.version):
            process_shard(shard, store, rules, now, partition_of(now), fingerprints)
        store.retire(moved_away)  # as the flow does once the shards committed
        store.recover()
        return sorted(f.relpath for f in todo)

    def doc_ids() -> list[str]:
        return ds.dataset(str(tmp_path / "out" / "articles"), partitioning="hive").to_table()["doc_id"].to_pylist()

    assert run("in") == ["site.example/a.txt", "site.example/b.txt"]
    shutil.copytree(tmp_path / "in", tmp_path / "moved")
    assert run("moved") == []  # the same inputs under another path
    (tmp_path / "moved" / "site.example" / "b.txt").write_text("Headline b\n\nA corrected body of article b.\n")
    assert run("moved") == ["site.example/b.txt"]  # changed: a new version
    shutil.copytree(tmp_path / "in", tmp_path / "copy2")
    (tmp_path / "copy2" / "site.example" / "c.txt").write_text("Headline c\n\nAnother article, c, here.\n")
    shutil.copytree(tmp_path / "copy2", tmp_path / "copy3")
    assert run("copy2", "copy3") == ["site.example/c.txt"]  # two copies in one run: once
    assert len(doc_ids()) == 4  # a, b, c and b's new version (both trees still exist: both rows stay)
    c_id = doc_id_of("site.example", "site.example/c.txt")
    assert doc_ids().count(c_id) == 1
    # The tree c was ingested from, moved away (its old paths gone), with c changed: c's new version replaces it.
    shutil.move(tmp_path / "copy2", tmp_path / "moved2")
    (tmp_path / "moved2" / "site.example" / "c.txt").write_text("Headline c\n\nA corrected article, c, here.\n")
    assert run("moved2") == ["site.example/c.txt"]
    assert len(doc_ids()) == 4 and doc_ids().count(c_id) == 1
    articles = ds.dataset(str(tmp_path / "out" / "articles"), partitioning="hive").to_table().to_pylist()
    assert [row["input_file"].rsplit("/", 3)[-3] for row in articles if row["doc_id"] == c_id] == ["moved2"]
