"""Atomic, batched Parquet writing: readers see a whole file or none, memory stays bounded."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

COMPRESSION = "zstd"


class AtomicParquetWriter:
    """Write row batches to ``path`` through a temporary file renamed into place on success.

    The temporary name does not end in ``.parquet``, so ``*.parquet`` globs (DuckDB, Polars, Spark)
    never pick up a half-written file. On error the temporary file is removed and ``path`` is untouched.
    An empty result still produces a valid file with the schema and zero rows.
    """

    def __init__(self, path: str, schema: pa.Schema, batch_rows: int = 2000) -> None:
        self.path = path
        self.schema = schema
        self.batch_rows = batch_rows
        self.rows_written = 0
        self._tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        self._pending: list[Mapping[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> AtomicParquetWriter:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self._writer = pq.ParquetWriter(self._tmp, self.schema, compression=COMPRESSION)
        return self

    def write(self, row: Mapping[str, Any]) -> None:
        self._pending.append(row)
        if len(self._pending) >= self.batch_rows:
            self.flush()

    def write_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            self.write(row)

    def flush(self) -> None:
        if self._pending and self._writer is not None:
            self._writer.write_table(pa.Table.from_pylist(self._pending, schema=self.schema))
            self.rows_written += len(self._pending)
            self._pending = []

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self.flush()
            if self._writer is not None:
                self._writer.close()
        finally:
            if exc_type is None:
                _fsync(self._tmp)
                os.replace(self._tmp, self.path)
            elif os.path.exists(self._tmp):
                os.remove(self._tmp)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
