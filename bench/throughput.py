"""Throughput, scaling and memory of the cleaner, the flow and the baselines, as ratios measured in one run.

Builds synthetic corpora (default 10,000 and 100,000 documents) from the dev set's ``raw_text``:
records are cycled through, every copy gets a unique last line (``Story ID 12345.``) so that no two
documents are identical (pass 1 counts identical documents once), and they are spread over
``--sources`` sources (default 300) as JSONL files of at most ``--records-per-file`` records under one
folder per source (``src042.example/part-0000.jsonl``). The copies of one dev site land together in
one source per cycle, so site templates stay together; copies of one document never share a source.

On each corpus, every measurement runs in its own subprocess (fresh memory, peak resident memory of
its whole process tree sampled with psutil, CPU seconds from ``getrusage(RUSAGE_CHILDREN)``):

- ``copy``: read the JSONL (line by line, ``json.loads``) and write it unchanged as zstd Parquet with
  pyarrow in batches of 2,000 rows: the floor of our cost.
- ``library``: ``cleaners.shard`` alone, one process, no Prefect: plan shards, ``count_shard`` every
  shard (pass 1), load the line statistics once, ``process_shard`` every shard (pass 2).
- ``flow``: ``boilerstrip run`` (the ``clean-articles`` flow) with the default task runner (no
  ``--task-runner``: processes from 32 MiB of input on a multi-core machine, so at both default sizes).
  The flow ratios and the memory target use this one.
- ``flow-threads`` / ``flow-processes``: the same with ``--task-runner threads|processes`` (for information).
- ``flow-dask2`` / ``flow-dask1``: the flow on a Dask cluster (``dask scheduler`` + ``dask worker
  --nworkers 2|1 --nthreads 1`` on 127.0.0.1, started fresh for each measurement, ``--dask-address``).
- ``datatrove``: datatrove's ``JsonlReader -> C4QualityFilter (line rules, as bench/baselines.py) ->
  ParquetWriter`` with ``LocalPipelineExecutor(tasks=1, workers=1)``; skipped with a note if missing.

Flows run against one Prefect server started for the bench (127.0.0.1, temporary PREFECT_HOME,
telemetry off), so server startup is not timed; a flow's time is the ``seconds`` its manifest records
(from the flow's start to its manifest; the subprocess wall time is reported next to it).

    .venv/bin/python bench/throughput.py [--sizes 10000,100000] [--skip datatrove,dask] [--workdir DIR]
                                         [--keep] [--json out.json] [--sources 300] [--eval-dir DIR]
    .venv/bin/python bench/throughput.py --snapshot ...     # measure a frozen copy of HEAD (git archive)
    .venv/bin/python bench/throughput.py --profile 3000     # cProfile of the library on 3,000 docs
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gzip
import io
import json
import os
import platform
import pstats
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The labelled dev set is not part of the repository: --eval-dir or EVAL_DIR names its folder.
DEFAULT_EVAL_DIR = Path(os.environ["EVAL_DIR"]) if os.environ.get("EVAL_DIR") else None
BIN = Path(sys.executable).parent
MEASUREMENTS = ("copy", "library", "flow", "flow-threads", "flow-processes", "flow-dask2", "flow-dask1",
                "datatrove")
SKIP_ALIASES = {"dask": ("flow-dask2", "flow-dask1"),
                "flows": ("flow", "flow-threads", "flow-processes", "flow-dask2", "flow-dask1"),
                "threads": ("flow-threads",), "copy-through": ("copy",)}
# (name, numerator, denominator, kind, target, comparison); kind: throughput ratio, time ratio, memory ratio
TARGETS = [
    ("flow / copy-through throughput", "flow", "copy", "rate", 0.33, ">="),
    ("flow / datatrove C4 throughput", "flow", "datatrove", "rate", 3.0, ">="),
    ("flow time / library time", "flow", "library", "time", 1.15, "<="),
    ("Dask 2 workers / 1 worker throughput", "flow-dask2", "flow-dask1", "rate", 1.6, ">="),
]
MEMORY_TARGET = 1.25
BATCH_ROWS = 2000
TELEMETRY_OFF = {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "HF_HUB_OFFLINE": "1",
                 "HF_HUB_DISABLE_TELEMETRY": "1", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
LOCAL_ONLY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- corpus ------------------------------------------------------------------------------------------
def load_dev(eval_dir: Path | None) -> list[tuple[str, str]]:
    if eval_dir is None:
        sys.exit("error: no dev set given; pass --eval-dir DIR or set EVAL_DIR to the folder holding the labelled "
                 "dev set's dev.jsonl.gz (see the README's 'Measuring quality')")
    path = eval_dir / "dev.jsonl.gz"
    if not path.exists():
        sys.exit(f"error: {path} not found; pass --eval-dir or set EVAL_DIR to the folder with dev.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [(r["site"], r["raw_text"]) for r in map(json.loads, handle)]


def build_corpus(dev: list[tuple[str, str]], n_docs: int, dest: Path, n_sources: int,
                 per_file: int) -> dict[str, Any]:
    """``n_docs`` records cycled from the dev set, each made unique, in JSONL files under source folders."""
    site_index = {site: i for i, site in enumerate(sorted({site for site, _ in dev}))}
    dest.mkdir(parents=True, exist_ok=True)
    handles: dict[str, Any] = {}
    counts: dict[str, int] = {}
    n_files = 0
    try:
        for n in range(n_docs):
            cycle, i = divmod(n, len(dev))
            site, text = dev[i]
            # 7 is coprime with the default 300 sources: a site's copies move to another source every cycle.
            source = f"src{(site_index[site] + 7 * cycle) % n_sources:03d}.example"
            count = counts.get(source, 0)
            if count % per_file == 0:
                if source in handles:
                    handles[source].close()
                folder = dest / source
                folder.mkdir(exist_ok=True)
                handles[source] = (folder / f"part-{count // per_file:04d}.jsonl").open("w", encoding="utf-8")
                n_files += 1
            counts[source] = count + 1
            record = {"id": f"doc-{n:07d}", "text": f"{text.rstrip()}\n\nStory ID {n}.\n", "source": source}
            handles[source].write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        for handle in handles.values():
            handle.close()
    n_bytes = sum(p.stat().st_size for p in dest.rglob("*.jsonl"))
    return {"docs": n_docs, "bytes": n_bytes, "files": n_files, "sources": len(counts)}


# -- the in-process measurements (run in a subprocess: ``throughput.py _measure KIND CORPUS OUT RESULT``) ---
def measure_copy(corpus: Path, out: Path) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("source", pa.string())])
    started = time.perf_counter()
    docs = 0
    for path in sorted(corpus.rglob("*.jsonl")):
        target = out / path.relative_to(corpus).with_suffix(".parquet")
        target.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(target, schema, compression="zstd") as writer, path.open("rb") as handle:
            batch: list[dict[str, Any]] = []
            for line in handle:
                batch.append(json.loads(line))
                if len(batch) >= BATCH_ROWS:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    docs += len(batch)
                    batch = []
            if batch:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                docs += len(batch)
    return {"docs_out": docs, "seconds": time.perf_counter() - started}


def flow_judge() -> tuple[dict[str, Any], str]:
    """The line judge the flow's clean tasks pass to ``process_shard`` (none in versions without one)."""
    import inspect

    from cleaners.shard import process_shard

    if "judge" not in inspect.signature(process_shard).parameters:
        return {}, "none"
    try:
        from cleaners.linemodel import default_judge
    except ImportError:
        return {}, "none"
    return {"judge": default_judge()}, "default_judge"


def measure_library(corpus: Path, out: Path) -> dict[str, Any]:
    from cleaners.readers import discover
    from cleaners.rulepack import load_rules
    from cleaners.shard import PIPELINE_VERSION, count_shard, plan_shards, process_shard
    from cleaners.store import OutputStore, partition_of

    started = time.perf_counter()
    rules = load_rules()
    judge, judge_name = flow_judge()  # the same cleaning as the flow's tasks, model loading included
    store = OutputStore.open(str(out))
    shards = plan_shards(discover([str(corpus)]), salt=f"{rules.version}|{PIPELINE_VERSION}")
    for shard in shards:
        count_shard(shard, store)
    counted = time.perf_counter()
    line_stats = store.line_stats()
    loaded = time.perf_counter()
    ingested_at = datetime.now(UTC)
    inputs = articles = rejects = 0
    for shard in shards:
        stats = process_shard(shard, store, rules, ingested_at, partition_of(ingested_at), {},
                              line_stats=line_stats, **judge)
        inputs, articles, rejects = inputs + stats.n_inputs, articles + stats.n_articles, rejects + stats.n_rejects
    done = time.perf_counter()
    return {"docs_out": inputs, "articles": articles, "rejects": rejects, "shards": len(shards),
            "seconds": done - started, "pass1_seconds": counted - started,
            "line_stats_seconds": loaded - counted, "pass2_seconds": done - loaded, "judge": judge_name}


def measure_datatrove(corpus: Path, out: Path) -> dict[str, Any]:
    from bench.baselines import _c4_line_filter  # the C4 line-rule configuration of the quality bench

    c4, _ = _c4_line_filter()
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import ParquetWriter

    started = time.perf_counter()
    executor = LocalPipelineExecutor(
        [JsonlReader(str(corpus), glob_pattern="**/*.jsonl", recursive=True), c4,
         ParquetWriter(str(out / "data"), compression="zstd")],
        tasks=1, workers=1, logging_dir=str(out / "logs"), skip_completed=False,
    )
    executor.run()
    seconds = time.perf_counter() - started
    docs_out = None
    with contextlib.suppress(OSError, ValueError, KeyError, IndexError, TypeError):
        for step in json.loads((out / "logs" / "stats.json").read_text()):
            if "reader" in step.get("name", "").lower():
                docs_out = step["stats"]["documents"]["total"]
    return {"docs_out": docs_out, "seconds": seconds}


IN_PROCESS = {"copy": measure_copy, "library": measure_library, "datatrove": measure_datatrove}


# -- running and watching subprocesses ------------------------------------------------------------------
class TreeMemory:
    """Peak summed RSS of some process trees, sampled every ``interval`` seconds in a thread."""

    def __init__(self, pids: list[int], interval: float = 0.2) -> None:
        import psutil

        self._psutil = psutil
        self.roots = [psutil.Process(pid) for pid in pids]
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def add(self, pid: int) -> None:
        self.roots.append(self._psutil.Process(pid))

    def sample(self) -> None:
        total = 0
        for root in list(self.roots):
            try:
                procs = [root, *root.children(recursive=True)]
            except self._psutil.Error:
                continue
            for proc in procs:
                with contextlib.suppress(self._psutil.Error):
                    total += proc.memory_info().rss
        self.peak = max(self.peak, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds used so far by these live processes and their descendants."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            procs = [psutil.Process(pid)]
            procs += procs[0].children(recursive=True)
        except psutil.Error:
            continue
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Any, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.5)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s")


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Stop a process this bench started (it leads its own session) and everything in its group."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait()


class PrefectServer:
    """One local Prefect API server for the whole bench, so no flow run pays for server startup."""

    def __init__(self, home: Path, log: Path) -> None:
        self.home, self.log = home, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        return {**os.environ, **TELEMETRY_OFF, "PREFECT_HOME": str(self.home), "PYTHONPATH": str(ROOT)}

    def __enter__(self) -> PrefectServer:
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(self.port),
                 "--no-ui", "--analytics-off"],
                env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
        wait_until(lambda: LOCAL_ONLY.open(f"{self.url}/health", timeout=2).status == 200, 180,
                   "prefect server", self.proc)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop(self.proc)


class DaskCluster:
    """``dask scheduler`` + ``dask worker --nworkers N --nthreads 1`` on 127.0.0.1."""

    def __init__(self, n_workers: int, env: dict[str, str], workdir: Path, log: Path) -> None:
        self.n_workers, self.env, self.workdir, self.log = n_workers, env, workdir, log
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> DaskCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log.open("w") as log:
            scheduler = subprocess.Popen(
                [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
            self.procs.append(scheduler)
            try:
                wait_until(lambda: socket.create_connection(("127.0.0.1", self.port), 1).close() is None, 60,
                           "dask scheduler", scheduler)
                self.procs.append(subprocess.Popen(
                    [str(BIN / "dask"), "worker", self.address, "--nworkers", str(self.n_workers), "--nthreads",
                     "1", "--host", "127.0.0.1", "--no-dashboard", "--local-directory", str(self.workdir)],
                    env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT))
                from distributed import Client

                with Client(self.address, timeout=60) as client:
                    client.wait_for_workers(self.n_workers, timeout=120)
            except BaseException:
                self.__exit__()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.procs):
            stop(proc)


def run_in_process_measurement(kind: str, corpus: Path, out: Path, logs: Path) -> dict[str, Any]:
    result_file = out.parent / f"{out.name}.result.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "_measure", kind, str(corpus), str(out), str(result_file)]
    env = {**os.environ, **TELEMETRY_OFF, "PYTHONPATH": str(ROOT)}
    cpu0, wall0 = children_cpu(), time.perf_counter()
    with (logs / f"{out.name}.log").open("w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        with TreeMemory([proc.pid]) as memory:
            code = proc.wait()
    wall = time.perf_counter() - wall0
    if code != 0:
        tail = (logs / f"{out.name}.log").read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{kind} exited with code {code}: {' | '.join(tail)}")
    result = json.loads(result_file.read_text())
    result_file.unlink()
    return {**result, "wall_seconds": wall, "cpu_seconds": children_cpu() - cpu0, "peak_rss": memory.peak}


def run_flow_measurement(kind: str, corpus: Path, out: Path, logs: Path, server: PrefectServer) -> dict[str, Any]:
    env = {**server.env(), "PREFECT_API_URL": server.url}
    cmd = [sys.executable, "-m", "flows.cli", "run", str(corpus), "--output", str(out), "--no-progress"]
    cpu0 = children_cpu()
    with contextlib.ExitStack() as stack:
        roots: list[int] = []
        if kind.startswith("flow-dask"):
            n_workers = int(kind.removeprefix("flow-dask"))
            cluster = stack.enter_context(DaskCluster(n_workers, env, out.parent / f"{out.name}-dask",
                                                      logs / f"{out.name}-dask.log"))
            roots = [p.pid for p in cluster.procs]
            cpu0 += tree_cpu(roots)  # the cluster's startup is not the flow's work
            cmd += ["--task-runner", "dask", "--dask-address", cluster.address]
        elif kind != "flow":
            cmd += ["--task-runner", kind.removeprefix("flow-")]
        wall0 = time.perf_counter()
        with (logs / f"{out.name}.log").open("w") as log:
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
            with TreeMemory([proc.pid, *roots]) as memory:
                code = proc.wait()
        wall = time.perf_counter() - wall0
    cpu = children_cpu() - cpu0  # the Dask cluster's processes count too (stopped and reaped above), minus startup
    if code != 0:
        tail = (logs / f"{out.name}.log").read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{kind} exited with code {code}: {' | '.join(tail)}")
    [manifest] = sorted((out / "_manifests").glob("run-*.json"))
    summary = json.loads(manifest.read_text())
    if not summary["accounting_ok"]:
        raise RuntimeError(f"{kind}: accounting failed: {summary['inputs']} != {summary['articles']} + "
                           f"{summary['rejects']}")
    return {"docs_out": summary["inputs"], "articles": summary["articles"], "rejects": summary["rejects"],
            "shards": summary["shards"], "seconds": summary["seconds"], "wall_seconds": wall,
            "cpu_seconds": cpu, "peak_rss": memory.peak, "task_runner": summary.get("task_runner")}


# -- the bench ---------------------------------------------------------------------------------------
def parse_skip(value: str) -> set[str]:
    skip: set[str] = set()
    for name in filter(None, (v.strip() for v in value.split(","))):
        if name in SKIP_ALIASES:
            skip.update(SKIP_ALIASES[name])
        elif name in MEASUREMENTS:
            skip.add(name)
        else:
            raise argparse.ArgumentTypeError(f"unknown measurement {name!r}: use {', '.join(MEASUREMENTS)} "
                                             f"or {', '.join(SKIP_ALIASES)}")
    return skip


def datatrove_available() -> str | None:
    try:
        import datatrove  # noqa: F401
    except ImportError as exc:
        return f"datatrove is not installed ({exc}); install it with: pip install 'boilerstrip[bench]'"
    return None


def ratio_rows(results: dict[int, dict[str, dict[str, Any]]], sizes: list[int]) -> list[dict[str, Any]]:
    """Every target on the largest size; the memory target between the largest and smallest sizes."""
    rows = []

    def rate(size: int, name: str) -> float | None:
        r = results.get(size, {}).get(name)
        return r["docs"] / r["seconds"] if r and "seconds" in r else None

    for size in sizes:
        for label, num, den, kind, target, op in TARGETS:
            a, b = rate(size, num), rate(size, den)
            value = None if a is None or b is None else (a / b if kind == "rate" else b / a)
            rows.append({"size": size, "ratio": label, "value": value, "target": f"{op} {target:g}",
                         "judged": size == sizes[-1], "pass": None if value is None else
                         (value >= target if op == ">=" else value <= target)})
    for size in sizes:  # for information: the default flow runs two processes, the library one
        lib = results.get(size, {}).get("library")
        for label, name, field in (("flow-threads time / library time", "flow-threads", "seconds"),
                                   ("flow CPU seconds / library CPU seconds", "flow", "cpu_seconds")):
            r = results.get(size, {}).get(name)
            value = r[field] / lib[field] if r and lib and field in r and field in lib else None
            rows.append({"size": size, "ratio": label, "value": value, "target": "info", "judged": False,
                         "pass": None})
    if len(sizes) > 1:
        for name in ("flow", "flow-threads", "library", "flow-dask2"):
            big = results.get(sizes[-1], {}).get(name, {}).get("peak_rss")
            small = results.get(sizes[0], {}).get(name, {}).get("peak_rss")
            value = big / small if big and small else None
            rows.append({"size": sizes[-1], "ratio": f"peak memory {sizes[-1]:,} / {sizes[0]:,} docs ({name})",
                         "value": value, "target": f"<= {MEMORY_TARGET:g}", "judged": name == "flow",
                         "pass": None if value is None else value <= MEMORY_TARGET})
    return rows


def print_report(corpora: dict[int, dict[str, Any]], results: dict[int, dict[str, dict[str, Any]]],
                 ratios: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    out.write(f"{'docs':>8} {'measurement':<13} {'seconds':>8} {'docs/s':>8} {'MB/s':>7} {'peak MB':>8} "
              f"{'cpu s':>7} {'wall s':>7} {'cores':>5} {'load':>5}  note\n")
    for size, per_size in results.items():
        mb = corpora[size]["bytes"] / 1e6
        for name in MEASUREMENTS:
            r = per_size.get(name)
            if r is None:
                continue
            if "error" in r or "skipped" in r:
                dashes = " ".join(f"{'-':>{w}}" for w in (8, 8, 7, 8, 7, 7, 5, 5))
                out.write(f"{size:>8} {name:<13} {dashes}  {r.get('error') or r.get('skipped')}\n")
                continue
            note = []
            if name == "library":
                note.append(f"pass1 {r['pass1_seconds']:.1f}s, line stats {r['line_stats_seconds']:.1f}s, "
                            f"pass2 {r['pass2_seconds']:.1f}s, {r['shards']} shards, judge {r.get('judge', '?')}")
            elif name.startswith("flow"):
                note.append(f"{r['shards']} shards, runner {r.get('task_runner', '?')}")
            if r.get("docs_out") not in (None, size):
                note.append(f"read {r['docs_out']} docs!")
            out.write(f"{size:>8} {name:<13} {r['seconds']:8.1f} {size / r['seconds']:8.0f} "
                      f"{mb / r['seconds']:7.2f} {r['peak_rss'] / 2**20:8.0f} {r['cpu_seconds']:7.1f} "
                      f"{r['wall_seconds']:7.1f} {r['cpu_seconds'] / r['wall_seconds']:5.2f} {r['load']:5.1f}  "
                      f"{'; '.join(note)}\n")
    out.write("\nratios (PASS/FAIL judged on the largest size; smaller sizes for information)\n")
    for row in ratios:
        value = "-" if row["value"] is None else f"{row['value']:.2f}"
        verdict = "n/a" if row["pass"] is None else "PASS" if row["pass"] else "FAIL"
        if not row["judged"]:
            verdict = f"({verdict})"
        out.write(f"{row['size']:>8}  {row['ratio']:<52} {value:>6}  target {row['target']:<7} {verdict}\n")
    text = out.getvalue()
    print(text)
    return text


def run_bench(args: argparse.Namespace) -> None:
    sizes = sorted(args.sizes)
    skip = set(args.skip)
    notes: list[str] = []
    if "datatrove" not in skip and (missing := datatrove_available()):
        skip.add("datatrove")
        notes.append(f"datatrove skipped: {missing}")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="boilerstrip-throughput-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    started = datetime.now(UTC)
    code_at_start = revision()
    print(f"workdir {workdir} ({'kept' if args.keep else 'removed at the end'}); logs in {logs}", flush=True)
    print(f"measuring code {code_at_start} from {ROOT}", flush=True)
    dev = load_dev(args.eval_dir)
    corpora: dict[int, dict[str, Any]] = {}
    results: dict[int, dict[str, dict[str, Any]]] = {}
    try:
        with contextlib.ExitStack() as stack:
            server = None
            if any(m.startswith("flow") and m not in skip for m in MEASUREMENTS):
                t0 = time.perf_counter()
                server = stack.enter_context(PrefectServer(workdir / "prefect-home", logs / "prefect-server.log"))
                print(f"prefect server {server.url} ready in {time.perf_counter() - t0:.0f} s", flush=True)
            t0 = time.perf_counter()  # numba compiles the kernels once per installation: not measured
            subprocess.run([sys.executable, "-c", "from cleaners.batch import warm_up; warm_up()"], cwd=ROOT,
                           check=True)
            print(f"kernels compiled or loaded from numba's cache in {time.perf_counter() - t0:.0f} s", flush=True)
            for size in sizes:
                corpus = workdir / f"corpus-{size}"
                t0 = time.perf_counter()
                corpora[size] = build_corpus(dev, size, corpus, args.sources, args.records_per_file)
                print(f"corpus {size:,} docs: {corpora[size]['bytes'] / 1e6:.0f} MB in {corpora[size]['files']} "
                      f"files over {corpora[size]['sources']} sources ({time.perf_counter() - t0:.0f} s)", flush=True)
                results[size] = {}
                for name in MEASUREMENTS:
                    if name in skip:
                        continue
                    out = workdir / f"out-{size}-{name}"
                    load = os.getloadavg()[0]
                    print(f"  {name:<13} ...", end=" ", flush=True)
                    try:
                        if name.startswith("flow"):
                            result = run_flow_measurement(name, corpus, out, logs, server)
                        else:
                            result = run_in_process_measurement(name, corpus, out, logs)
                        result.update(docs=size, bytes=corpora[size]["bytes"], load=load)
                        print(f"{result['seconds']:.1f} s, {size / result['seconds']:.0f} docs/s, "
                              f"peak {result['peak_rss'] / 2**20:.0f} MB", flush=True)
                    except Exception as exc:  # one failed measurement should not lose the others
                        result = {"error": str(exc)[:300]}
                        print(f"FAILED: {result['error']}", flush=True)
                    results[size][name] = result
                    if not args.keep:
                        shutil.rmtree(out, ignore_errors=True)
                        shutil.rmtree(out.parent / f"{out.name}-dask", ignore_errors=True)
                if not args.keep:
                    shutil.rmtree(corpus, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    code_at_end = revision()
    if code_at_end != code_at_start:
        notes.append(f"the code changed during the run ({code_at_start} -> {code_at_end}): the measurements mix "
                     "versions; re-run, or use --snapshot to measure a frozen copy of HEAD")
    print()
    print(f"code: {code_at_start}")
    for note in notes:
        print(f"note: {note}")
    ratios = ratio_rows(results, sizes)
    table = print_report(corpora, results, ratios)
    if args.json:
        document = {
            "date": started.isoformat(timespec="seconds"), "revision": code_at_start,
            "command": os.environ.get("BOILERSTRIP_BENCH_COMMAND")
            or " ".join([os.path.relpath(sys.executable, ROOT), *sys.argv]),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                        "versions": versions()},
            "corpora": corpora, "results": results, "ratios": ratios, "notes": notes, "table": table,
            "seconds_total": (datetime.now(UTC) - started).total_seconds(),
        }
        Path(args.json).write_text(json.dumps(document, indent=2, default=str))
        print(f"results written to {args.json}")


def revision() -> str:
    """The code measured: BOILERSTRIP_BENCH_REVISION (set by --snapshot), else git HEAD (+ a digest of
    uncommitted changes to tracked files)."""
    if os.environ.get("BOILERSTRIP_BENCH_REVISION"):
        return os.environ["BOILERSTRIP_BENCH_REVISION"]
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        diff = subprocess.run(["git", "-C", str(ROOT), "diff", "HEAD", "--", "cleaners", "flows"],
                              capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    import hashlib

    return f"{head}+dirty-{hashlib.sha256(diff).hexdigest()[:8]}" if diff else head


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("boilerstrip", "prefect", "prefect-dask", "dask", "distributed", "pyarrow", "datatrove"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def run_profile(args: argparse.Namespace) -> None:
    """cProfile of the library measurement (both passes) on a corpus of ``--profile`` documents."""
    dev = load_dev(args.eval_dir)
    with tempfile.TemporaryDirectory(prefix="boilerstrip-profile-") as tmp:
        corpus = Path(tmp) / "corpus"
        build_corpus(dev, args.profile, corpus, args.sources, args.records_per_file)
        profiler = cProfile.Profile()
        profiler.enable()
        result = measure_library(corpus, Path(tmp) / "out")
        profiler.disable()
    print(f"library on {args.profile:,} docs under cProfile: {result['seconds']:.1f} s (pass1 "
          f"{result['pass1_seconds']:.1f} s, line stats {result['line_stats_seconds']:.1f} s, pass2 "
          f"{result['pass2_seconds']:.1f} s)\n")
    if args.profile_out:
        profiler.dump_stats(args.profile_out)
    for key in ("tottime", "cumulative"):
        stats = pstats.Stats(profiler)
        stats.sort_stats(key).print_stats(args.profile_top)


def run_snapshot(args: argparse.Namespace) -> int:
    """Measure a frozen copy of the committed HEAD (plus this bench file): commits and edits made in the
    checkout while the bench runs do not change what is measured."""
    import tarfile

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="boilerstrip-throughput-")).resolve()
    src = workdir / "src"
    src.mkdir(parents=True, exist_ok=True)
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                         text=True, check=True).stdout.strip()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD"], capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(src, filter="data")
    (src / "bench").mkdir(exist_ok=True)
    shutil.copy2(Path(__file__).resolve(), src / "bench" / "throughput.py")
    argv, skip_next = [], False
    for arg in sys.argv[1:]:
        if skip_next:
            skip_next = False
        elif arg in ("--snapshot", "--keep") or arg.startswith("--workdir=") or arg.startswith("--eval-dir="):
            continue
        elif arg in ("--workdir", "--eval-dir"):
            skip_next = True
        else:
            argv.append(arg)
    if args.eval_dir is None:
        load_dev(None)  # says what to pass, before the snapshot is started
    argv += ["--workdir", str(workdir / "run"), "--keep", "--eval-dir", str(args.eval_dir.resolve())]
    print(f"snapshot of HEAD {rev} in {src}", flush=True)
    env = {**os.environ, "BOILERSTRIP_BENCH_REVISION": f"{rev} (snapshot of HEAD)",
           "BOILERSTRIP_BENCH_COMMAND": " ".join([os.path.relpath(sys.executable, ROOT), "bench/throughput.py",
                                                  *sys.argv[1:]])}
    try:
        return subprocess.call([sys.executable, str(src / "bench" / "throughput.py"), *argv], env=env)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_measure":  # internal: one measurement in this process
        kind, corpus, out, result_file = sys.argv[2:6]
        result = IN_PROCESS[kind](Path(corpus), Path(out))
        Path(result_file).write_text(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="measurements: " + ", ".join(MEASUREMENTS) + "; --skip also takes "
                                            + ", ".join(SKIP_ALIASES))
    parser.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",") if x.strip()],
                        default=[10_000, 100_000], help="corpus sizes in documents (default 10000,100000)")
    parser.add_argument("--skip", type=parse_skip, default=set(), help="comma-separated measurements to skip")
    parser.add_argument("--workdir", help="where corpora and outputs go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the workdir (corpora, outputs, logs)")
    parser.add_argument("--json", help="write all results to this JSON file")
    parser.add_argument("--sources", type=int, default=300, help="number of sources (default 300)")
    parser.add_argument("--records-per-file", type=int, default=1000, help="JSONL records per file (default 1000)")
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR, help="folder with dev.jsonl.gz")
    parser.add_argument("--snapshot", action="store_true", help="measure a frozen copy of the committed HEAD "
                        "(git archive) instead of the live checkout, which others may change during the run")
    parser.add_argument("--profile", type=int, metavar="N", help="only profile the library on N documents")
    parser.add_argument("--profile-top", type=int, default=25, help="entries of the profile to print")
    parser.add_argument("--profile-out", help="also write the cProfile stats to this file")
    args = parser.parse_args()
    if args.snapshot:
        sys.exit(run_snapshot(args))
    if args.profile:
        run_profile(args)
    else:
        run_bench(args)


if __name__ == "__main__":
    main()
