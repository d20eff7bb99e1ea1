"""Test helpers: a generated multi-source corpus, free ports, process handling, and a local Prefect server."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
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


@dataclass
class PrefectServer:
    url: str
    home: Path
    log: Path

    def env(self, **extra: str) -> dict[str, str]:
        """Environment of a flow subprocess: this server, telemetry off, its own PREFECT_HOME."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(PREFECT_API_URL=self.url, PREFECT_HOME=str(self.home / "client"), DO_NOT_TRACK="1",
                   PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_COLOR="false")
        env.update(extra)
        return env


def stop_process_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group ``proc`` leads, then SIGKILL it if it is still there after ``grace``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    with contextlib.suppress(ProcessLookupError):  # children left in the group, if any
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


@contextlib.contextmanager
def prefect_server(base: Path, timeout: float = 180.0) -> Iterator[PrefectServer]:
    home = base / "prefect-server"
    home.mkdir(parents=True)
    port = free_port()
    log = home / "server.log"
    server = PrefectServer(url=f"http://127.0.0.1:{port}/api", home=home, log=log)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    with log.open("wb") as out:
        prefect = str(Path(sys.executable).parent / "prefect")
        proc = subprocess.Popen([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port),
                                 "--no-ui", "--analytics-off"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{server.url}/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prefect server not ready (rc={proc.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield server
    finally:
        stop_process_group(proc)


def read_articles(path: str | Path, filesystem=None) -> pa.Table:
    return ds.dataset(str(path), format="parquet", partitioning="hive", filesystem=filesystem).to_table()


VOLATILE = {"ingested_at", "ingest_date", "input_file"}


def comparable(table: pa.Table) -> list[dict]:
    """Rows without run timestamps and paths, sorted: what must match between two runs."""
    keep = [name for name in table.column_names if name not in VOLATILE]
    return sorted(table.select(keep).to_pylist(), key=lambda row: row["doc_id"])
