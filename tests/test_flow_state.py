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
        todo, fingerprints, _ = _select_changed(discover([str(tmp_path / "in")]), store, rules.version, False)
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


def test_the_same_files_under_another_path_are_not_ingested_twice(tmp_path: Path) -> None:
    """A copied or moved input tree (same paths below the root, same bytes) is what was ingested already: a run
    over it adds no rows with a doc_id already written. A file changed in the copy is a new input."""
    import shutil
    from datetime import UTC, datetime

    from cleaners.readers import discover
    from cleaners.rulepack import load_rules
    from cleaners.shard import plan_shards, process_shard
    from cleaners.store import partition_of
    from flows.clean import _select_changed

    for name in ("a", "b"):
        (tmp_path / "in" / "site.example").mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / "site.example" / f"{name}.txt").write_text(
            f"Headline {name}\n\nThe body of article {name} is here, long enough to be an article paragraph.\n")
    rules = load_rules()
    store = OutputStore.open(str(tmp_path / "out"))

    def run(*roots: str) -> list[str]:
        todo, fingerprints, _ = _select_changed(discover([str(tmp_path / root) for root in roots]), store,
                                             rules.version, False)
        now = datetime.now(UTC)
        for shard in plan_shards(todo, salt=rules.version):
            process_shard(shard, store, rules, now, partition_of(now), fingerprints)
        return sorted(f.relpath for f in todo)

    assert run("in") == ["site.example/a.txt", "site.example/b.txt"]
    shutil.copytree(tmp_path / "in", tmp_path / "moved")
    assert run("moved") == []  # the same inputs under another path
    (tmp_path / "moved" / "site.example" / "b.txt").write_text("Headline b\n\nA corrected body of article b.\n")
    assert run("moved") == ["site.example/b.txt"]  # changed: a new version
    shutil.copytree(tmp_path / "in", tmp_path / "copy2")
    (tmp_path / "copy2" / "site.example" / "c.txt").write_text("Headline c\n\nAnother article, c, here.\n")
    shutil.copytree(tmp_path / "copy2", tmp_path / "copy3")
    assert run("copy2", "copy3") == ["site.example/c.txt"]  # two copies in one run: once
