"""State a worker process keeps between the tasks of one run: the run's merged line counts.

Its own module, referenced from the tasks as ``worker_cache.run_line_stats``: task runners that pickle
the flow's functions by value (the process pool) would otherwise try to pickle the lock.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

from cleaners.boilerplate import LineStats
from cleaners.store import OutputStore

# Loaded once per worker process rather than once per shard: re-reading and re-indexing the counts for
# each of ~160 shards was most of the flow's extra time over the library at 100,000 documents
# (bench/throughput.py). Keyed by output and run token; one run's counts at a time.
_lock = threading.Lock()
_loaded: dict[tuple[str, str], LineStats] = {}


def run_line_stats(output: str, stats_token: str) -> LineStats:
    """The merged line counts the run named ``stats_token`` wrote into ``output``, loaded once."""
    with _lock:
        stats = _loaded.get((output, stats_token))
        if stats is None:
            _loaded.clear()
            stats = _loaded[(output, stats_token)] = OutputStore.open(output).merged_line_stats()
        return stats


def held() -> list[tuple[str, str]]:
    """The (output, token) of the counts this process holds."""
    with _lock:
        return list(_loaded)


def forget() -> None:
    """Drop this process's copy (worker processes drop theirs when the next run's token arrives)."""
    with _lock:
        _loaded.clear()


_watching = False
# How often a pool worker checks that the process that started it is alive.
PARENT_CHECK_SECONDS = 1.0


def exit_with_parent() -> None:
    """In a pool worker process (not the flow's own process): exit when the process that started it is gone.

    A flow run killed outright (SIGKILL, the OOM killer) left its process-pool workers running, idle, forever: they
    hold the run's stdout, so ``serve()`` never saw the run end and kept one of its run slots taken (two such kills
    and a served deployment runs nothing). Called by each task; starts one daemon thread per worker process."""
    global _watching
    starter = multiprocessing.parent_process()
    with _lock:
        if _watching or starter is None:
            return
        _watching = True

    def watch() -> None:
        # Its sentinel (the read end of a pipe the parent holds open), not a pid: under forkserver os.getppid() is
        # the fork server, and a parent that died before the first task has left this process adopted already.
        while starter.is_alive():
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(70)  # the run is gone: nothing of this process's work can be committed by it any more

    threading.Thread(target=watch, name="boilerstrip-exit-with-parent", daemon=True).start()
