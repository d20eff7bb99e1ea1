"""Progress reporting for a running flow: a rich bar on a terminal, periodic log lines elsewhere.

The flow reports each finished shard to the process's current reporter. The CLI installs a
terminal bar; under a deployment the default reporter writes a log line at most every few seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Reporter(Protocol):
    def start(self, total_files: int, total_bytes: int) -> None: ...
    def advance(self, docs: int, n_bytes: int) -> None: ...
    def finish(self) -> None: ...


def _mb(n_bytes: int) -> str:
    """Megabytes to show: a small run's 40 KB is 0.040 MB, not 0.0."""
    return f"{n_bytes / 1e6:.1f}" if n_bytes >= 1e6 else f"{n_bytes / 1e6:.3f}"


class LogReporter:
    """Periodic log lines: documents, MB, rate and time left."""

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter, every_seconds: float = 10.0) -> None:
        self.logger = logger
        self.every = every_seconds
        self.total_bytes = 0
        self.docs = 0
        self.done_bytes = 0
        self.started = self.last = time.monotonic()

    def start(self, total_files: int, total_bytes: int) -> None:
        self.total_bytes = total_bytes
        self.started = self.last = time.monotonic()
        self.logger.info("cleaning %d files, %s MB", total_files, _mb(total_bytes))

    def advance(self, docs: int, n_bytes: int) -> None:
        self.docs += docs
        self.done_bytes += n_bytes
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.logger.info("progress: %s", self.line())

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done_bytes / elapsed
        remaining = self.total_bytes - self.done_bytes
        # Nothing done yet (or nothing to do): no rate to estimate from ("~nan s left" said nothing).
        if rate > 0:
            left = f"~{remaining / rate:.0f} s left"
        else:
            left = "nothing left" if remaining <= 0 else "time left unknown"
        return (f"{self.docs} docs, {_mb(self.done_bytes)}/{_mb(self.total_bytes)} MB, "
                f"{self.docs / elapsed:.0f} docs/s, {rate / 1e6:.2f} MB/s, {left}")

    def finish(self) -> None:
        self.logger.info("done: %s", self.line())


class RichReporter:
    """A terminal progress bar (rich): documents, MB, rate and time left."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]cleaning"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TextColumn("{task.fields[docs]} docs"), TimeRemainingColumn(), transient=False,
        )
        self.task_id = None

    def start(self, total_files: int, total_bytes: int) -> None:
        self.progress.start()
        self.task_id = self.progress.add_task("clean", total=total_bytes, docs=0)

    def advance(self, docs: int, n_bytes: int) -> None:
        if self.task_id is not None:
            current = self.progress.tasks[0].fields["docs"]
            self.progress.update(self.task_id, advance=n_bytes, docs=current + docs)

    def finish(self) -> None:
        self.progress.stop()


_current: Reporter | None = None


def current(default: Reporter | None = None) -> Reporter | None:
    return _current or default


@contextmanager
def reporting_to(reporter: Reporter) -> Iterator[None]:
    """Route the progress of flows run in this process to ``reporter`` (the CLI's terminal bar)."""
    global _current
    previous, _current = _current, reporter
    try:
        yield
    finally:
        _current = previous
