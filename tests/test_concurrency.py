"""Concurrency: two runs started at once into the same output queue on its lock instead of interleaving,
and every input ends up exactly once.

The output's lock (``_state/lock``, an exclusive ``fcntl.flock`` held for the whole run) makes the second
run wait; when it gets the lock it sees what the first committed and skips it. Both runs are
``boilerstrip run`` subprocesses against the session's Prefect server (``server`` in tests/conftest.py).
"""

from __future__ import annotations

import glob
import json
import os
import time
from pathlib import Path

import duckdb
import pytest

from tests.bad_inputs import write_article_corpus
from tests.helpers import PrefectServer, stop_process_group
from tests.test_crash_safety import (
    assert_exactly_once,
    assert_ledger_consistent,
    assert_readable,
    start_run,
    uncommitted,
)

pytestmark = pytest.mark.slow

N_PER_SOURCE = 300


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Three source folders of N_PER_SOURCE articles each."""
    root = tmp_path_factory.mktemp("concurrency") / "in"
    paths = write_article_corpus(root, 3 * N_PER_SOURCE, n_sources=3, kb=2.0, seed=11)
    by_source: dict[str, list[Path]] = {}
    for path in paths:
        by_source.setdefault(path.parent.name, []).append(path)
    return by_source


def _shard_times(out: Path) -> dict[str, list[float]]:
    """Per run (its ingested_at, from the ledger): the modification times of its data parts."""
    ledger = glob.glob(f"{out}/_state/ledger/**/part-*.parquet", recursive=True)
    shards = duckdb.sql(f"SELECT DISTINCT shard_id, CAST(ingested_at AS VARCHAR) FROM read_parquet({ledger!r})")
    times: dict[str, list[float]] = {}
    for shard_id, ingested_at in shards.fetchall():
        for path in glob.glob(f"{out}/*/ingest_date=*/part-{shard_id}.parquet"):
            times.setdefault(ingested_at, []).append(os.path.getmtime(path))
    return times


@pytest.mark.parametrize("overlap", ["overlapping", "identical"])
def test_two_runs_at_once_queue_and_ingest_every_input_once(
        server: PrefectServer, sources: dict[str, list[Path]], tmp_path: Path, overlap: str) -> None:
    a, b, c = (sources[name] for name in sorted(sources))
    folders = {name: paths[0].parent for name, paths in sources.items()}
    first, second, third = (folders[name] for name in sorted(folders))
    if overlap == "overlapping":  # A+B and B+C: B is asked for twice
        inputs = ([first, second], [second, third])
        expected = a + b + c
    else:  # the very same inputs twice
        inputs = ([first, second], [first, second])
        expected = a + b
    out = tmp_path / "out"
    logs = [tmp_path / "run-1.log", tmp_path / "run-2.log"]
    procs = []
    started = time.monotonic()
    try:
        procs = [start_run(server, paths, out, log, "--shard-mb", "0.1") for paths, log in zip(inputs, logs,
                                                                                             strict=True)]
        codes = [proc.wait(300) for proc in procs]
    finally:
        for proc in procs:
            stop_process_group(proc)
    elapsed = time.monotonic() - started
    assert codes == [0, 0], "\n".join(log.read_text()[-3000:] for log in logs)

    assert_readable(out)
    assert_exactly_once(out, expected)
    assert_ledger_consistent(out)
    assert not uncommitted(out)

    manifests = [json.loads(p.read_text()) for p in sorted((out / "_manifests").glob("run-*.json"))]
    assert len(manifests) == 2 and all(m["accounting_ok"] for m in manifests)
    early, late = sorted(manifests, key=lambda m: m["ingested_at"])
    # The run that got the lock first processed all its files; the other skipped what it found ingested.
    assert early["files_skipped"] == 0 and early["files_processed"] == 2 * N_PER_SOURCE
    assert late["files_skipped"] == (N_PER_SOURCE if overlap == "overlapping" else 2 * N_PER_SOURCE)
    assert early["files_processed"] + late["files_processed"] == len(expected)
    assert sum(m["inputs"] for m in manifests) == len(expected)

    # Queued, not interleaved: every part of the later run was written after every part of the earlier one.
    times = _shard_times(out)
    if overlap == "overlapping":
        assert len(times) == 2, times.keys()
        earlier, later = (times[key] for key in sorted(times))
        assert max(earlier) <= min(later), "the two runs wrote shards at the same time"
    else:
        assert len(times) == 1  # the second run had nothing left to do
    print(f"{overlap}: two runs at once in {elapsed:.1f} s; processed {early['files_processed']} + "
          f"{late['files_processed']}, skipped {late['files_skipped']}")
