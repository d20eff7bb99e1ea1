"""The declared Parquet schemas of boilerstrip's outputs. Change them only with a version bump.

Every column is documented in the README's data dictionary; ``tests/test_schema.py`` pins them.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "2"

REMOVED_LINE = pa.struct(
    [
        pa.field("line_no", pa.int32(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ]
)

_TS = pa.timestamp("us", tz="UTC")

ARTICLES_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("input_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("input_file", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("title", pa.string()),
        pa.field("author", pa.string()),
        pa.field("published", pa.date32()),
        pa.field("region", pa.string()),
        pa.field("text", pa.string(), nullable=False),
        pa.field("removed", pa.list_(REMOVED_LINE), nullable=False),
        pa.field("kept_ratio", pa.float32(), nullable=False),
        pa.field("low_confidence", pa.bool_(), nullable=False),
        pa.field("n_chars_raw", pa.int64(), nullable=False),
        pa.field("n_chars_clean", pa.int64(), nullable=False),
        pa.field("content_sha256", pa.string(), nullable=False),
        pa.field("encoding", pa.string(), nullable=False),
        pa.field("extractor", pa.string(), nullable=False),
        pa.field("mojibake_fixed", pa.bool_(), nullable=False),
        pa.field("fetched_at", _TS),
        pa.field("ingested_at", _TS, nullable=False),
        pa.field("pipeline_version", pa.string(), nullable=False),
        pa.field("rules_version", pa.string(), nullable=False),
    ],
    metadata={"boilerstrip.schema": "articles", "boilerstrip.schema_version": SCHEMA_VERSION},
)

REJECTS_SCHEMA = pa.schema(
    [
        pa.field("input_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("input_file", pa.string(), nullable=False),
        pa.field("line_no", pa.int64()),
        pa.field("reason_code", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("n_bytes", pa.int64(), nullable=False),
        pa.field("ingested_at", _TS, nullable=False),
        pa.field("pipeline_version", pa.string(), nullable=False),
        pa.field("rules_version", pa.string(), nullable=False),
    ],
    metadata={"boilerstrip.schema": "rejects", "boilerstrip.schema_version": SCHEMA_VERSION},
)
