"""Test helpers: a generated multi-source corpus, free ports, and process handling."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

SITES = ["daily-herald.example", "metro-news.example", "valley-times.example"]
FOOTER = "© 2025 {site}. All rights reserved. | Privacy | Terms"
SHARED_LINE = "Sign in to read more stories from {site} every day"


def write_corpus(root: Path, docs_per_site: int = 12) -> int:
    """Articles over several sources, each with a template line that recurs on every page of its site."""
    count = 0
    for site in SITES:
        folder = root / site
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(docs_per_site):
            body = "\n\n".join(
                f"Paragraph {p} of story {n} on {site}: the council met on day {n} and discussed item {p} "
                f"of the agenda at length before a vote that surprised observers." for p in range(4)
            )
            text = f"Story {n} headline from {site}\n\n{body}\n\n{SHARED_LINE.format(site=site)}\n\n" \
                   f"{FOOTER.format(site=site)}\n"
            (folder / f"story-{n:03d}.txt").write_text(text, encoding="utf-8")
            count += 1
    return count


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{what} not ready after {timeout} s")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM the process group, then SIGKILL what is left."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


def read_articles(path: str | Path, filesystem=None) -> pa.Table:
    return ds.dataset(str(path), format="parquet", partitioning="hive", filesystem=filesystem).to_table()


VOLATILE = {"ingested_at", "ingest_date", "input_file"}


def comparable(table: pa.Table) -> list[dict]:
    """Rows without run timestamps and paths, sorted: what must match between two runs."""
    keep = [name for name in table.column_names if name not in VOLATILE]
    return sorted(table.select(keep).to_pylist(), key=lambda row: row["doc_id"])
