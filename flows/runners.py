"""Task runners by name: a thread pool, a process pool, or a Dask cluster; by default chosen by the work."""

from __future__ import annotations

import os
from typing import Literal

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

RunnerName = Literal["threads", "processes", "dask"]
DEFAULT_RUNNER_ENV = "BOILERSTRIP_TASK_RUNNER"
DASK_ADDRESS_ENV = "BOILERSTRIP_DASK_ADDRESS"
# Below this much input the default is threads: a process pool costs 2-9 s to start (docs/performance.md)
# and small runs (a daily batch, the sample data, tests) finish sooner without it. Above it, processes:
# the cleaner is CPU-bound Python, and two threads under the GIL used 1.2 cores where two processes used
# 1.7 (flow 287 -> 398 documents/s at 10,000 documents, bench/throughput.py).
PROCESSES_FROM_BYTES = 32 * 2**20


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity: a container's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def resolve_runner_name(name: str | None, work_bytes: int, shards: int = 2, dask_address: str | None = None) -> str:
    """The runner a run uses, the run's own choices before the environment's: ``name``, else dask when
    ``dask_address`` is given, else $BOILERSTRIP_TASK_RUNNER, else dask when $BOILERSTRIP_DASK_ADDRESS is set, else
    processes for runs of at least ``PROCESSES_FROM_BYTES`` of input in more than one shard on a machine with more
    than one usable CPU, else threads."""
    if name:
        return _known(name, "--task-runner")
    if dask_address:
        return "dask"
    if os.environ.get(DEFAULT_RUNNER_ENV):
        return _known(os.environ[DEFAULT_RUNNER_ENV], f"${DEFAULT_RUNNER_ENV}")
    if os.environ.get(DASK_ADDRESS_ENV):
        return "dask"
    parallel = usable_cpus() > 1 and shards > 1
    return "processes" if parallel and work_bytes >= PROCESSES_FROM_BYTES else "threads"


def _known(name: str, where: str) -> str:
    if name not in ("threads", "processes", "dask"):
        raise ValueError(f"{where} {name!r}: unknown task runner; use threads, processes or dask")
    return name


def make_task_runner(name: str, dask_address: str | None = None, workers: int | None = None) -> TaskRunner:
    """``threads``, ``processes`` or ``dask`` (the flow picks one with :func:`resolve_runner_name`); Dask
    connects to ``dask_address`` (or $BOILERSTRIP_DASK_ADDRESS) when given, else starts a local cluster of one
    worker per usable CPU."""
    dask_address = dask_address or os.environ.get(DASK_ADDRESS_ENV) or None
    if name == "threads":
        # Cleaning is CPU-bound under the GIL: more threads add memory (one batch each), not speed.
        return ThreadPoolTaskRunner(max_workers=workers or 2)
    if name == "processes":
        return ProcessPoolTaskRunner(max_workers=workers or usable_cpus())
    if name == "dask":
        from prefect_dask import DaskTaskRunner

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        # A local cluster: one single-threaded worker process per usable CPU, as the process pool has.
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers or usable_cpus(), "threads_per_worker": 1,
                                              "dashboard_address": None, "host": "127.0.0.1"})
    raise ValueError(f"unknown task runner {name!r}: use threads, processes or dask")
