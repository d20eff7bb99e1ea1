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
