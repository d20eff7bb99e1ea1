"""Task runners by name: the default thread pool, a process pool, or a Dask cluster."""

from __future__ import annotations

import os
from typing import Literal

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

RunnerName = Literal["threads", "processes", "dask"]
DEFAULT_RUNNER_ENV = "BOILERSTRIP_TASK_RUNNER"
DASK_ADDRESS_ENV = "BOILERSTRIP_DASK_ADDRESS"


def make_task_runner(name: str | None = None, dask_address: str | None = None,
                     workers: int | None = None) -> TaskRunner:
    """``threads`` (default), ``processes`` or ``dask``; Dask connects to ``dask_address`` when given,
    else starts a temporary local cluster. Environment: BOILERSTRIP_TASK_RUNNER, BOILERSTRIP_DASK_ADDRESS."""
    name = name or os.environ.get(DEFAULT_RUNNER_ENV) or "threads"
    dask_address = dask_address or os.environ.get(DASK_ADDRESS_ENV) or None
    if name == "threads":
        # Cleaning is CPU-bound under the GIL: more threads add memory (one batch each), not speed.
        return ThreadPoolTaskRunner(max_workers=workers or 2)
    if name == "processes":
        return ProcessPoolTaskRunner(max_workers=workers or os.cpu_count() or 2)
    if name == "dask":
        from prefect_dask import DaskTaskRunner

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers or 2, "threads_per_worker": 1,
                                              "dashboard_address": None, "host": "127.0.0.1"})
    raise ValueError(f"unknown task runner {name!r}: use threads, processes or dask")
