"""State a worker process keeps between the tasks of one run: the run's merged line counts.

Its own module, referenced from the tasks as ``worker_cache.run_line_stats``: task runners that pickle
the flow's functions by value (the process pool) would otherwise try to pickle the lock.
"""

from __future__ import annotations

import threading

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
