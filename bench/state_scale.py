"""How a run's bookkeeping grows with the output's history: the state work of one run on outputs of N shards.

A daily deployment adds shards for ever, and every run reads the state they leave: the ledger (one part per
shard: which input files are ingested) and the line counts (one part per shard). This builds outputs of
``--shards`` committed shards (default 100 and 1,000; ``--files-per-shard`` ledger rows and one counts part
each, written with the store's own writers, so files are the size and shape a run leaves), then times the
state steps the ``clean-articles`` flow runs around its shards, in its order, on one ``OutputStore``:

- ``recover``: the start-of-run recovery (orphans, superseded rows, counts of uncounted shards);
- ``select``: the newest ledger entry of every input file (``current_entries``, what the selection reads);
- ``merge``: the run's merged line counts (``write_merged_line_stats``: the history order, every counts part);
- ``recover-end``: the end-of-run recovery.

Each size is built once and measured ``--repeat`` times (best kept; each repeat on a fresh ``OutputStore``, as
a new run is). To compare two versions of the code in one sitting, run the same command with another checkout
first on the path: ``PYTHONPATH=/path/to/other/checkout python bench/state_scale.py``.

    .venv/bin/python bench/state_scale.py [--shards 100,1000] [--files-per-shard 30] [--repeat 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cleaners
from cleaners.boilerplate import count_lines
from cleaners.store import OutputStore

SOURCES = 7  # sources the synthetic files are spread over


def build_output(root: Path, n_shards: int, files_per_shard: int) -> None:
    """An output holding ``n_shards`` committed shards, three a day: ledger and counts parts only (the steps
    measured read no article part)."""
    store = OutputStore.open(str(root))
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for index in range(n_shards):
        shard_id = hashlib.sha256(f"shard {index}".encode()).hexdigest()[:16]
        day = start + timedelta(days=index // 3)
        partition = f"ingest_date={day.date().isoformat()}"
        rows, docs = [], []
        for number in range(files_per_shard):
            source = f"site{number % SOURCES}.example"
            text = (f"Home | News | Sport | Contact\nStory {index}-{number}: a long enough first line of the article.\n"
                    f"Its second line, {number} and {index}.\nCopyright 2025 {source}")
            rows.append({"input_file": f"/data/raw/{source}/{day:%Y-%m-%d}/{index}-{number}.txt",
                         "size": len(text), "mtime_ns": int(day.timestamp() * 1e9) + number,
                         "content_sha256": hashlib.sha256(text.encode()).hexdigest(), "shard_id": shard_id,
                         "partition": partition, "rules_version": "bench", "pipeline_version": "bench",
                         "n_inputs": 1, "n_articles": 1, "n_rejects": 0, "ingested_at": day})
            docs.append((source, text))
        store.write_line_counts(shard_id, count_lines(docs))
        store.write_ledger(partition, shard_id, rows)


def measure(root: Path) -> dict[str, float]:
    """Seconds of each state step of one run, in the flow's order, on one store object."""
    store = OutputStore.open(str(root))
    steps: list[tuple[str, Callable[[], object]]] = [
        ("recover", store.recover), ("select", store.current_entries), ("merge", store.write_merged_line_stats),
        ("recover-end", lambda: store.recover(quarantine=False))]
    seconds: dict[str, float] = {}
    for name, step in steps:
        began = time.perf_counter()
        step()
        seconds[name] = time.perf_counter() - began
    seconds["total"] = sum(seconds.values())
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", default="100,1000", help="comma-separated output sizes, in shards")
    parser.add_argument("--files-per-shard", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="where the outputs are built (default: a temp dir)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.shards.split(",")]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="boilerstrip-state-"))
    print(f"code: {Path(cleaners.__file__).parent.parent}")
    results: dict[int, dict[str, float]] = {}
    try:
        for size in sizes:
            root = workdir / f"output-{size}"
            if not root.exists():
                build_output(root, size, args.files_per_shard)
            runs = [measure(root) for _ in range(args.repeat)]
            results[size] = min(runs, key=lambda run: run["total"])
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    names = list(next(iter(results.values())))
    print(f"\n| shards | {' | '.join(names)} |\n|---:|{'---:|' * len(names)}")
    for size, seconds in results.items():
        print(f"| {size:,} | {' | '.join(f'{seconds[name]:.2f}' for name in names)} |")
    if len(sizes) > 1:
        small, large = results[sizes[0]]["total"], results[sizes[-1]]["total"]
        print(f"\ntotal at {sizes[-1]:,} / at {sizes[0]:,} shards: {large / small:.1f}x "
              f"(shards {sizes[-1] / sizes[0]:.0f}x)")


if __name__ == "__main__":
    main()
