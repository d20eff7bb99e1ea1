"""Crash safety: a flow process killed at any moment leaves an output every reader can read, and the
next run recovers to every input exactly once. A run that dies is reported as crashed.

One Prefect server serves the test session (``server`` in tests/conftest.py: ``prefect server start`` on a free
127.0.0.1 port with its own PREFECT_HOME), and every flow runs as a ``boilerstrip run`` subprocess pointed at it: ~2-3 s
per run instead of ~10 s for an ephemeral server. Every process started here is stopped by its
process group in a ``finally``.
"""

from __future__ import annotations

import glob
import json
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from tests.bad_inputs import write_article_corpus
from tests.helpers import PrefectServer, stop_process_group

BIN = Path(sys.executable).parent
N_ARTICLES = 2000          # ~2 KB each, in 6 source folders: ~4 MB
SHARD_MB = 0.1             # ~50 shards: a kill almost always lands between two commits or inside a write
# Kills per run of the random-kill test: 10 took 216 s of an 11.5-minute suite; 6 took 100-157 s, and `make test` in a
# clean checkout 498-665 s, too near the 10 minutes on 2 cores; 4 (one of them, at least, in the write phase). A
# longer soak before a release:
# BOILERSTRIP_TEST_KILLS=100 .venv/bin/python -m pytest tests/test_crash_safety.py
MIN_KILLS = int(os.environ.get("BOILERSTRIP_TEST_KILLS", "4"))
SEED = 20240611


# -- a Prefect server and flow subprocesses -----------------------------------------------------------


def start_run(server: PrefectServer, inputs: list[Path], output: Path, log: Path, *args: str,
              **env: str) -> subprocess.Popen:
    """``boilerstrip run`` as a subprocess leading its own process group (so it can be killed whole)."""
    cmd = [str(BIN / "boilerstrip"), "run", *map(str, inputs), "--output", str(output), "--no-progress", *args]
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        return subprocess.Popen(cmd, env=server.env(**env), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=log.parent, start_new_session=True)


def run_to_end(server: PrefectServer, inputs: list[Path], output: Path, log: Path, *args: str,
               timeout: float = 600) -> float:
    """A run to its end. The timeout is generous: after many killed runs the test's Prefect server once answered
    state changes and heartbeat events minutes late (a run whose shards were done in 1 min took over 5)."""
    started = time.monotonic()
    proc = start_run(server, inputs, output, log, *args)
    try:
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGUSR1)  # the CLI prints its threads' stacks: where it waited
            time.sleep(2)
            raise AssertionError(f"run did not end in {timeout} s:\n{log.read_text(errors='replace')[-6000:]}") \
                from None
    finally:
        stop_process_group(proc)
    assert rc == 0, f"run failed (rc={rc}):\n{log.read_text()[-4000:]}"
    return time.monotonic() - started


# -- checks of an output folder ------------------------------------------------------------------------


def _parquet_files(out: Path) -> list[str]:
    return sorted(glob.glob(f"{out}/**/*.parquet", recursive=True))


def temporaries_visible_to_pyarrow() -> bool:
    """Whether AtomicParquetWriter's temporary files are visible to a folder read.

    pyarrow.dataset (and pandas.read_parquet, which uses it) lists every file of a folder except names
    starting with "." or "_"; a temporary named ``part-<id>.parquet.tmp-<uuid>`` left by a killed run
    makes ``dataset("OUT/articles")`` fail until the next run recovers. Known issue while this is True:
    cleaners/parquet.py should name its temporaries ``.part-<id>.parquet.tmp-<uuid>`` (same folder).
    """
    import pyarrow as pa

    from cleaners.parquet import AtomicParquetWriter

    target = AtomicParquetWriter("/nonexistent/part-0000000000000000.parquet", pa.schema([]))._target
    return not os.path.basename(target).startswith((".", "_"))


TEMPORARIES_VISIBLE = temporaries_visible_to_pyarrow()


def _dataset(out: Path, folder: str) -> ds.Dataset:
    visible_temporaries = [p for p in glob.glob(f"{out}/{folder}/**/*.tmp-*", recursive=True)
                           if not os.path.basename(p).startswith((".", "_"))]
    if visible_temporaries and TEMPORARIES_VISIBLE:  # the known issue: read the *.parquet files only
        files = sorted(glob.glob(f"{out}/{folder}/**/*.parquet", recursive=True))
        return ds.dataset(files, format="parquet", partitioning=ds.partitioning(flavor="hive"),
                          partition_base_dir=str(out / folder))
    return ds.dataset(out / folder, format="parquet", partitioning="hive")


def assert_readable(out: Path) -> dict[str, int]:
    """Every *.parquet under ``out`` is a whole file; pyarrow and DuckDB read both datasets."""
    for path in _parquet_files(out):
        pq.read_metadata(path)  # raises on a partial or corrupt file
    counts: dict[str, int] = {}
    for folder in ("articles", "rejects"):
        if not glob.glob(f"{out}/{folder}/**/*.parquet", recursive=True):
            counts[folder] = 0
            continue
        table = _dataset(out, folder).to_table(columns=["input_file", "ingest_date"])
        [(n,)] = duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}/{folder}/**/*.parquet', "
                            "hive_partitioning = true)").fetchall()
        assert n == table.num_rows, (folder, n, table.num_rows)
        counts[folder] = n
    return counts


def visible_temporaries(out: Path) -> int:
    return sum(1 for folder in ("articles", "rejects")
               for p in glob.glob(f"{out}/{folder}/**/*.tmp-*", recursive=True)
               if not os.path.basename(p).startswith((".", "_")))


def input_counts(out: Path) -> Counter[str]:
    """How often each input file appears across articles and rejects (every input here is one .txt)."""
    seen: Counter[str] = Counter()
    for folder in ("articles", "rejects"):
        if glob.glob(f"{out}/{folder}/**/*.parquet", recursive=True):
            table = _dataset(out, folder).to_table(columns=["input_file"])
            seen.update(table.column("input_file").to_pylist())
    return seen


def _parts_without_ledger(out: Path) -> list[str]:
    committed = {os.path.basename(p) for p in glob.glob(f"{out}/_state/ledger/**/part-*.parquet", recursive=True)}
    return [p for folder in ("articles", "rejects")
            for p in glob.glob(f"{out}/{folder}/**/part-*.parquet", recursive=True)
            if os.path.basename(p) not in committed]


def uncommitted(out: Path) -> list[str]:
    """What a dead run left: temporary files, and parts with rows of shards without a ledger part."""
    left = [p for p in glob.glob(f"{out}/**/*", recursive=True) if ".tmp-" in os.path.basename(p)]
    return left + [p for p in _parts_without_ledger(out) if pq.read_metadata(p).num_rows]


def empty_leftovers(out: Path) -> list[str]:
    """0-row data parts of old shards whose rows were all superseded. Known issue: OutputStore._rewrite_without
    deletes such a shard's ledger part but rewrites its data parts as empty files, which the next run then
    removes as orphans (and logs as a recovery)."""
    return [p for p in _parts_without_ledger(out) if not pq.read_metadata(p).num_rows]


def assert_ledger_consistent(out: Path) -> int:
    """The committed state: the newest ledger entry of every input names a shard whose data parts hold
    exactly one row of that input. Returns the inputs in the ledger.

    Readers of the folders may see more between a crash and the next run (rows of shards that never
    committed, and the old rows of a changed input next to its new ones, until recovery drops them);
    the ledger says which rows are current.
    """
    ledger_files = glob.glob(f"{out}/_state/ledger/**/part-*.parquet", recursive=True)
    if not ledger_files:
        return 0
    ledger = duckdb.sql(f"SELECT input_file, arg_max(shard_id, (ingested_at, shard_id, partition)) AS shard "
                        f"FROM read_parquet({ledger_files!r}) GROUP BY input_file").fetchall()
    rows: Counter[tuple[str, str]] = Counter()
    for folder in ("articles", "rejects"):
        files = glob.glob(f"{out}/{folder}/**/part-*.parquet", recursive=True)
        if files:
            for input_file, filename in duckdb.sql(f"SELECT input_file, filename FROM read_parquet({files!r}, "
                                                   "filename = true)").fetchall():
                rows[(input_file, os.path.basename(filename)[len("part-"):-len(".parquet")])] += 1
    wrong = [(input_file, shard, rows[(input_file, shard)]) for input_file, shard in ledger
             if rows[(input_file, shard)] != 1]
    assert not wrong, f"{len(wrong)} committed inputs without exactly one row in their shard, e.g. {wrong[:3]}"
    return len(ledger)


def assert_exactly_once(out: Path, corpus: list[Path]) -> None:
    seen = input_counts(out)
    expected = {str(p) for p in corpus}
    assert set(seen) == expected, (f"missing {len(expected - set(seen))}, unexpected {len(set(seen) - expected)}: "
                                   f"{sorted(expected - set(seen))[:3]} {sorted(set(seen) - expected)[:3]}")
    twice = {path: n for path, n in seen.items() if n != 1}
    assert not twice, f"{len(twice)} inputs appear more than once, e.g. {list(twice.items())[:3]}"


# -- the tests -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def article_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("articles") / "in"
    return root, write_article_corpus(root, N_ARTICLES, kb=2.0)


def _flow_runs_for(server: PrefectServer, output: Path) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: server.url}), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["clean-articles"])),
                                     sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=200)
    return [r for r in runs if r.parameters.get("output") == str(output)]


def _wait_for_state(server: PrefectServer, output: Path, wanted: set[str], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        runs = _flow_runs_for(server, output)
        if runs and runs[0].state_type is not None and runs[0].state_type.value in wanted:
            return runs[0]
        if time.monotonic() > deadline:
            states = [(r.name, r.state_type, r.state_name) for r in runs]
            raise AssertionError(f"no flow run of {output} reached {wanted} in {timeout} s: {states}")
        time.sleep(0.3)


ZOMBIE_HEARTBEAT_S = 30  # Prefect's minimum heartbeat interval


def create_zombie_automation(server: PrefectServer) -> timedelta:
    """The project's zombie-run automation (flows.zombies) on the test server; returns its window."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.zombies import ensure_zombie_automation

    with temporary_settings(updates={PREFECT_API_URL: server.url}):
        automation = ensure_zombie_automation(ZOMBIE_HEARTBEAT_S)
    return automation.trigger.within


def _heartbeats_of(server: PrefectServer, flow_run_id: Any) -> int:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
    from prefect.settings import PREFECT_API_URL, temporary_settings

    wanted = EventFilter(event=EventNameFilter(name=["prefect.flow-run.heartbeat"]),
                         resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"]))
    with temporary_settings(updates={PREFECT_API_URL: server.url}), get_client(sync_client=True) as client:
        return client.read_events(filter=wanted, limit=10).total


def _first_heartbeat(server: PrefectServer, output: Path, proc: subprocess.Popen, timeout: float) -> Any:
    """The id of ``proc``'s flow run (the newest of ``output``) once the server shows it Running with a heartbeat
    event; None when the process ended first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        runs = _flow_runs_for(server, output)
        if runs and runs[0].state_name == "Running" and _heartbeats_of(server, runs[0].id):
            return runs[0].id
        assert time.monotonic() < deadline, f"no Running run with a heartbeat within {timeout} s"
        time.sleep(0.3)
    return None


@pytest.fixture(scope="module")
def zombie(server: PrefectServer, article_corpus,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, float, float]:
    """A run SIGKILLed after its first heartbeat reached the server, with the zombie automation installed.

    Requested first by the kill-loop test, so the ~50 s until the automation fires overlap that test;
    checked by the last test of the module. Returns (flow run id, monotonic time of the kill, the
    automation's window in seconds).
    """
    root, _ = article_corpus
    within = create_zombie_automation(server)
    base = tmp_path_factory.mktemp("zombie")
    out = base / "out"
    # A run takes ~15 s here, and on a loaded server its state or its first heartbeat once showed only after it had
    # ended: then another run (--reprocess: all of its work again) is killed instead.
    for attempt in range(3):
        proc = start_run(server, [root], out, base / "run.log", "--shard-mb", str(SHARD_MB),
                         *(["--reprocess"] if attempt else []),
                         PREFECT_FLOWS_HEARTBEAT_FREQUENCY=str(ZOMBIE_HEARTBEAT_S))
        try:
            run_id = _first_heartbeat(server, out, proc, timeout=180)
            if run_id is None:
                continue
            os.killpg(proc.pid, signal.SIGKILL)
            assert proc.wait(30) == -signal.SIGKILL
            killed_at = time.monotonic()
            break
        finally:
            stop_process_group(proc)
    else:
        raise AssertionError("three runs in a row ended before the server showed them Running with a heartbeat")
    time.sleep(1)
    [after_kill, *_] = _flow_runs_for(server, out)
    assert after_kill.state_name == "Running"  # nothing on the flow side reports a SIGKILL: the gap
    return run_id, killed_at, within.total_seconds()


# How long a run may take to exit after SIGTERM. It reports Crashed to the server first; Prefect's server on SQLite
# sometimes holds its database lock until SQLite's 60 s busy timeout ("database is locked" in the server log), and the
# report waits for it (seen about once in eight runs of this test: the stacks showed `set_flow_run_state` waiting for
# the server's answer, the run exited right after the 60 s). docs/operations.md tells operators.
SIGTERM_EXIT_S = 90


@pytest.mark.slow
def test_sigterm_marks_the_run_crashed_and_the_next_run_recovers(
        server: PrefectServer, article_corpus, tmp_path: Path) -> None:
    """First of the module's server tests, on a server no run was killed on yet: after the kill loop the server is
    busy crashing its ~10 killed runs (the zombie automation fires 90 s after each one's heartbeat), and its
    SQLite writes contend with this test's runs (triggers drop events as "database is locked")."""
    root, corpus = article_corpus
    out, log = tmp_path / "out", tmp_path / "run.log"
    started = time.time()
    proc = start_run(server, [root], out, log, "--shard-mb", str(SHARD_MB))
    try:
        # Killed once it has committed its first shard: mid-run, ~45 shards still to do. Timed from the output folder,
        # not from the server: under load a query of the run's state once answered after the whole run had ended,
        # and the SIGTERM found a finished process.
        deadline = time.monotonic() + 240  # the start takes seconds; once, on a loaded machine, minutes
        while not _ledger_parts_since(out, started):
            if proc.poll() is not None or time.monotonic() > deadline:
                os.kill(proc.pid, signal.SIGUSR1)  # the CLI prints its threads' stacks: where the start waited
                time.sleep(2)
                raise AssertionError(f"the run committed no shard (exit code {proc.poll()}) in 240 s; run log:\n"
                                     f"{log.read_text(errors='replace')[-6000:]}")
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGTERM)
        try:
            rc = proc.wait(SIGTERM_EXIT_S)
        except subprocess.TimeoutExpired:
            # Not the subject of this test (the Crashed state and the recovery are), so it may take longer; but the
            # stacks of where it waits go into the run log, and the slow exit is reported as a warning with them.
            os.kill(proc.pid, signal.SIGUSR1)
            rc = proc.wait(180)
            warnings.warn(f"the run took over {SIGTERM_EXIT_S} s to exit after SIGTERM; its stacks then:\n"
                          + log.read_text(errors="replace")[-6000:], stacklevel=1)
    finally:
        stop_process_group(proc)
    assert rc != 0, "the run ignored SIGTERM"
    crashed = _wait_for_state(server, out, {"CRASHED"}, timeout=30)
    assert crashed.state_name == "Crashed"
    assert "termination signal" in (crashed.state.message or "").lower(), crashed.state.message
    assert_readable(out)

    run_to_end(server, [root], out, log, "--shard-mb", str(SHARD_MB))
    assert_exactly_once(out, corpus)
    assert not uncommitted(out)
    [latest, *_] = _flow_runs_for(server, out)
    assert latest.state_name == "Completed"


def _ledger_parts_since(out: Path, since: float) -> list[str]:
    """The ledger parts (shard commits) written at or after ``since`` (a time.time())."""
    return [path for path in glob.glob(f"{out}/_state/ledger/**/part-*.parquet", recursive=True)
            if os.path.getmtime(path) >= since]


def _update_line(path: Path, n: int) -> str:
    return f"Update {n} to {path.stem}, filed after the first version of this story."


@pytest.mark.slow
def test_sigkill_at_random_moments_never_leaves_a_corrupt_or_duplicated_output(
        zombie, server: PrefectServer, article_corpus, tmp_path: Path) -> None:
    root, corpus = article_corpus
    out, log = tmp_path / "out", tmp_path / "runs.log"
    args = ("--shard-mb", str(SHARD_MB))
    # A complete first run: how long the whole corpus takes here; then a no-op re-run: the fixed cost
    # of a run (process start, Prefect, discovery) before any shard is written.
    full = run_to_end(server, [root], out, log, *args)
    assert_exactly_once(out, corpus)
    startup = run_to_end(server, [root], out, log, *args)

    rng = random.Random(SEED)
    updates: dict[Path, int] = {}
    kills = finished = mid_write = temp_visible = 0
    history: list[str] = []
    started = time.monotonic()
    # At least MIN_KILLS kills, and enough of them in the write phase (the window the test is about: with a
    # fast cleaner it is a small part of a run, so a fixed number of kills sometimes drew too few hits).
    while kills < MIN_KILLS or mid_write < MIN_KILLS // 4:
        assert kills + finished < 3 * MIN_KILLS, (f"after {kills} kills and {finished} finished runs, only {mid_write} "
                                                  f"hit the write phase: {history}")
        # Every run has work in flight: either everything again (--reprocess: shards are rewritten in
        # place), or a changed subset (their old rows are superseded and dropped by recovery).
        if rng.random() < 0.5:
            extra, share, what = ["--reprocess"], 1.0, "reprocess"
        else:
            share = rng.uniform(0.25, 0.75)
            for path in rng.sample(corpus, int(share * len(corpus))):
                updates[path] = updates.get(path, 0) + 1
                with path.open("a") as handle:
                    handle.write(f"\n{_update_line(path, updates[path])}\n")
            extra, what = [], f"{share:.0%} changed"
        # A random moment of the run, weighted towards its write phase (the first 90% of the fixed
        # cost are process start, imports and loading the compiled kernels: nothing to break there; with a
        # faster cleaner the write phase is a smaller part of the run, and half of it drew too few hits).
        delay = rng.uniform(0.9 * startup, startup + share * (full - startup))
        proc = start_run(server, [root], out, log, *args, *extra)
        try:
            try:
                rc = proc.wait(delay)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                rc = proc.wait(30)
        finally:
            stop_process_group(proc)
        if rc == -signal.SIGKILL:
            kills += 1
        else:
            assert rc == 0, f"run failed (rc={rc}):\n{log.read_text()[-4000:]}"
            finished += 1
        left = uncommitted(out)
        temp_visible += bool(visible_temporaries(out))
        # The output right after the crash, before any recovery: readable, and its committed state whole.
        counts = assert_readable(out)
        assert assert_ledger_consistent(out) == len(corpus)  # the first complete run committed them all
        twice = sum(1 for n in input_counts(out).values() if n > 1)
        mid_write += bool(left or twice)
        history.append(f"{'kill' if rc else 'done'} at {delay:.1f} s ({what}): {counts['articles']} articles + "
                       f"{counts['rejects']} rejects visible, {len(left)} uncommitted files, {twice} inputs "
                       "visible twice until recovery")

    # A final complete run recovers: every input exactly once, in its latest version, nothing uncommitted.
    run_to_end(server, [root], out, log, *args)
    assert_readable(out)
    assert_exactly_once(out, corpus)
    assert_ledger_consistent(out)
    assert not uncommitted(out)
    # Every changed input's row is of its latest version (by its raw size: independent of what cleaning keeps).
    raw_chars = dict(zip(*_dataset(out, "articles").to_table(columns=["input_file", "n_chars_raw"]).to_pydict()
                         .values(), strict=True))
    stale = [p for p in updates if raw_chars[str(p)] != len(p.read_text())]
    assert not stale, f"{len(stale)} changed inputs keep an old version, e.g. {stale[:3]}"
    last = json.loads(sorted((out / "_manifests").glob("run-*.json"))[-1].read_text())
    assert last["accounting_ok"] and last["files_seen"] == len(corpus)
    assert not list(out.glob("_manifests/*.tmp"))
    summary = (f"{kills} kills, {finished} runs finished before their kill, {mid_write} crashes hit a run in its "
               "write phase (uncommitted files, or inputs visible twice until recovery); "
               f"full run {full:.1f} s, no-op run {startup:.1f} s, loop {time.monotonic() - started:.0f} s; "
               f"{len(empty_leftovers(out))} empty data parts of superseded shards left after the final run")
    print(summary, *history, sep="\n  ")
    # The kills must have hit the interesting window: shards being written, committed but not yet recovered.
    assert mid_write >= MIN_KILLS // 4, summary
    if temp_visible:
        assert TEMPORARIES_VISIBLE  # else the folder read above failed already
        pytest.xfail(f"known issue: after {temp_visible} of the crashes a temporary part-*.parquet.tmp-* file "
                     "was left in articles/ or rejects/, and pyarrow.dataset('OUT/articles') (and pandas) fail on "
                     "it until the next run recovers; fix: hidden temporary names in cleaners/parquet.py")


@pytest.mark.slow
def test_ctrl_c_stops_a_run_on_the_temporary_server_at_once(article_corpus, tmp_path: Path) -> None:
    """Ctrl-C reaches the terminal's whole process group: the CLI, Prefect's temporary server and the workers. The
    run went on without its server, then waited minutes at exit to send its events; now it ends at once, says
    what to do, and leaves a readable output (a later run finishes it, as after any crash)."""
    root, _ = article_corpus
    out, log = tmp_path / "out", tmp_path / "run.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_LOGGING_COLOR="false")
    cmd = [str(BIN / "boilerstrip"), "run", str(root), "--output", str(out), "--no-progress", "--shard-mb",
           str(SHARD_MB)]
    with log.open("wb") as handle:
        proc = subprocess.Popen(cmd, env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while "task runner:" not in log.read_text(errors="replace"):
            assert proc.poll() is None, f"the run ended before its shards:\n{log.read_text(errors='replace')}"
            assert time.monotonic() < deadline, f"no shards after 240 s:\n{log.read_text(errors='replace')}"
            time.sleep(0.2)
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        rc = proc.wait(60)
    finally:
        stop_process_group(proc)
    text = log.read_text(errors="replace")
    assert rc == 130, text[-3000:]
    assert "interrupted: the shards committed so far are kept; run the same command again" in text
    assert_readable(out)


@pytest.mark.slow
def test_sigkilled_run_is_marked_crashed_by_the_zombie_automation(server: PrefectServer, zombie) -> None:
    """SIGKILL leaves a directly-run flow Running; with 30 s heartbeats and the project's zombie
    automation on the server, it becomes Crashed once its heartbeats are missing for the window."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    flow_run_id, killed_at, within = zombie
    deadline = killed_at + within + 90
    with temporary_settings(updates={PREFECT_API_URL: server.url}), get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            if run.state_name != "Running" or time.monotonic() > deadline:
                break
            time.sleep(1)
    waited = time.monotonic() - killed_at
    assert run.state_name == "Crashed", f"still {run.state_name} {waited:.0f} s after the SIGKILL"
    assert "heartbeat" in (run.state.message or "").lower(), run.state.message
    print(f"SIGKILLed run marked Crashed by the automation, seen {waited:.0f} s after the kill")


# -- two former bugs, deterministically (fast) -------------------------------------------------------------


def test_a_write_in_progress_is_invisible_to_folder_readers(tmp_path: Path) -> None:
    import pyarrow as pa

    from cleaners.parquet import AtomicParquetWriter

    schema = pa.schema([("x", pa.int64())])
    folder = tmp_path / "articles" / "ingest_date=2024-01-01"
    with AtomicParquetWriter(str(folder / "part-0000000000000001.parquet"), schema) as done:
        done.write({"x": 1})
    writing = AtomicParquetWriter(str(folder / "part-0000000000000002.parquet"), schema)
    writing.__enter__()
    try:
        writing.write_rows([{"x": 2}] * 3)
        writing.flush()  # a row group is out, the footer is not: what a kill leaves behind
        table = ds.dataset(tmp_path / "articles", format="parquet", partitioning="hive").to_table()
        assert table.column("x").to_pylist() == [1]
    finally:
        writing.__exit__(None, None, None)


def test_parts_whose_ledger_was_removed_by_hand_are_quarantined_not_deleted(tmp_path: Path, rules) -> None:
    """Only a dead run's leftovers are deleted: a part without a ledger part whose shard has a plan of a run that died.
    A committed part whose ledger part someone removed (or one a pool worker wrote after its run died and the output
    was recovered) is moved out of the dataset into _state/quarantine, never deleted, and the run goes on."""
    from datetime import UTC, datetime

    from cleaners.readers import discover
    from cleaners.shard import Shard, process_shard, shard_id_of
    from cleaners.store import OutputStore, partition_of
    from tests.bad_inputs import ARTICLE

    source = tmp_path / "in"
    source.mkdir()
    (source / "a.txt").write_text(ARTICLE)
    store = OutputStore.open(str(tmp_path / "out"))
    files = discover([str(source)])
    shard = Shard(shard_id_of(files), tuple(files))

    def ingest_without_ledger() -> None:
        moment = datetime.now(UTC)
        process_shard(shard, store, rules, moment, partition_of(moment), {f.path: "" for f in files})
        Path(store.ledger_path(partition_of(moment), shard.shard_id)).unlink()

    ingest_without_ledger()  # with a plan of a run that died: that run's leftovers, deleted
    store.write_plan("20260101T000000000000Z-dead0000", shard.shard_id, {"shard_id": shard.shard_id})
    report = store.recover()
    assert len(report.orphans_removed) >= 2 and not report.quarantined
    assert _parts_without_ledger(tmp_path / "out") == [] and not (tmp_path / "out" / "_state" / "plans").exists()
    ingest_without_ledger()  # no plan: kept aside
    report = store.recover()
    assert len(report.quarantined) == 2 and _parts_without_ledger(tmp_path / "out") == []
    kept = sorted((tmp_path / "out" / "_state" / "quarantine").rglob("part-*.parquet"))
    assert [p.parent.parent.name for p in kept] == ["articles", "rejects"]
    assert len({p.parent.parent.parent for p in kept}) == 1  # one folder per recovery
    assert pq.read_table(kept[0]).num_rows == 1
    ingest_without_ledger()  # the same shard again: quarantined beside the first, never over it
    assert len(store.recover().quarantined) == 2
    assert len(list((tmp_path / "out" / "_state" / "quarantine").rglob("part-*.parquet"))) == 4
    ingest_without_ledger()  # the recovery at a run's end leaves such parts alone (another writer's, in flight)
    assert not store.recover(quarantine=False).quarantined and len(_parts_without_ledger(tmp_path / "out")) == 2



def test_a_fully_superseded_shard_leaves_no_files(tmp_path: Path, rules) -> None:
    from datetime import UTC, datetime

    from cleaners.readers import discover
    from cleaners.shard import Shard, process_shard, shard_id_of
    from cleaners.store import OutputStore, partition_of
    from tests.bad_inputs import ARTICLE

    source = tmp_path / "in"
    source.mkdir()
    article = source / "a.txt"
    store = OutputStore.open(str(tmp_path / "out"))

    def ingest(text: str) -> None:
        article.write_text(text)
        files = discover([str(source)])
        moment = datetime.now(UTC)
        process_shard(Shard(shard_id_of(files), tuple(files)), store, rules, moment, partition_of(moment),
                      {f.path: "" for f in files})

    ingest(ARTICLE)
    ingest(ARTICLE + "\nA paragraph added in a later edit of the story.\n")
    report = store.recover()
    assert report.superseded_rows == 1
    assert input_counts(tmp_path / "out") == Counter({str(article): 1})
    assert _parts_without_ledger(tmp_path / "out") == []


def test_a_process_that_read_the_output_state_exits_cleanly(tmp_path: Path) -> None:
    """Reading the state tables (ledger, counts) leaves no native thread behind: pyarrow's read_table over a file
    object aborted the interpreter at exit in most runs (exit 134, "terminate called without an active
    exception"), which a script or a worker would see as a crash after its work was done."""
    from datetime import UTC, datetime

    from cleaners.store import OutputStore

    store = OutputStore.open(str(tmp_path / "out"))
    now = datetime.now(UTC)
    store.write_ledger("ingest_date=2026-01-01", "00000000000000a1", [{
        "input_file": "/in/a.txt", "size": 1, "mtime_ns": 1, "content_sha256": "x", "shard_id": "00000000000000a1",
        "partition": "ingest_date=2026-01-01", "rules_version": "r", "pipeline_version": "p", "n_inputs": 1,
        "n_articles": 1, "n_rejects": 0, "ingested_at": now}])
    output = str(tmp_path / "out")
    script = f"from cleaners.store import OutputStore; print(OutputStore.open({output!r}).ledger().num_rows)"
    root = Path(__file__).resolve().parents[1]
    codes = [subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60)
             for _ in range(6)]
    assert [(done.returncode, done.stdout.strip()) for done in codes] == [(0, "1")] * 6, codes[0].stderr[-500:]


def test_recovery_leaves_files_it_did_not_write(tmp_path: Path) -> None:
    """An output folder with Parquet parts but no ledger is not ours (an older layout, someone else's data): the
    run refuses and names it, nothing is deleted. In our output, only our temporary names are cleaned up."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pytest

    from cleaners.store import OutputStateError, OutputStore

    foreign = tmp_path / "foreign" / "articles" / "part-0123456789abcdef.parquet"
    foreign.parent.mkdir(parents=True)
    pq.write_table(pa.table({"x": [1]}), foreign)
    with pytest.raises(OutputStateError, match="no ledger"):
        OutputStore.open(str(tmp_path / "foreign")).recover()
    assert foreign.exists()

    ours = OutputStore.open(str(tmp_path / "ours"))
    ours.write_ledger("ingest_date=2026-01-01", "00000000000000a1", [])
    kept = tmp_path / "ours" / "articles" / "notes.tmp-1"
    kept.parent.mkdir(parents=True)
    kept.write_text("someone's file")
    leftover = tmp_path / "ours" / "articles" / f".part-00000000000000a2.parquet.tmp-{'0' * 32}"
    leftover.write_bytes(b"half a file")
    ours.recover()
    assert kept.exists() and not leftover.exists()


def test_a_run_that_waits_for_the_output_lock_says_so(tmp_path: Path) -> None:
    import threading

    from cleaners.store import OutputStore

    store = OutputStore.open(str(tmp_path / "out"))
    told: list[str] = []
    with store.lock(on_wait=told.append):
        waiter = threading.Thread(target=lambda: store.lock(on_wait=told.append).__enter__())
        waiter.start()
        waiter.join(timeout=0.5)
        assert waiter.is_alive()  # queued behind the first
    waiter.join(timeout=5)
    assert not waiter.is_alive()
    assert len(told) == 1 and "another run is writing" in told[0]


def test_pool_workers_exit_when_the_run_that_started_them_is_killed(tmp_path: Path) -> None:
    """A flow run killed outright (SIGKILL, the OOM killer) left its process-pool workers running forever, holding
    its stdout, so serve() never saw the run end and kept a run slot taken. A worker that ran a task exits within
    seconds of its parent's death; the flow's own process (no multiprocessing parent) starts no watch."""
    import signal
    import subprocess
    import sys

    script = tmp_path / "parent.py"
    script.write_text(
        "import multiprocessing, sys, time\n"
        "from flows import worker_cache\n"
        "def work():\n"
        "    worker_cache.exit_with_parent()\n"
        "    time.sleep(120)\n"
        "if __name__ == '__main__':\n"
        "    worker_cache.exit_with_parent()  # the flow's own process: no parent process of multiprocessing\n"
        "    child = multiprocessing.get_context('spawn').Process(target=work)\n"
        "    child.start()\n"
        "    print(child.pid, flush=True)\n"
        "    time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[1])
    try:
        worker = int(parent.stdout.readline())
        time.sleep(1.0)  # the worker's watch is running
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.kill(worker, signal.SIGKILL)
            raise AssertionError("the pool worker outlived the killed run")
    finally:
        if parent.poll() is None:
            parent.kill()
