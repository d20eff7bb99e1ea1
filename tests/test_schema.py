"""The Parquet schemas are a contract with analysts: changing them must be deliberate."""

from __future__ import annotations

import pytest

from cleaners.schema import ARTICLES_SCHEMA, REJECTS_SCHEMA, SCHEMA_VERSION
from tests.conftest import ROOT

ARTICLES = [
    ("doc_id", "string", False), ("input_id", "string", False), ("source", "string", False),
    ("input_file", "string", False), ("url", "string", True), ("title", "string", True),
    ("author", "string", True), ("published", "date32[day]", True), ("region", "string", True),
    ("text", "string", False),
    ("removed", "list<item: struct<line_no: int32 not null, text: string not null, rule: string not null, "
                "reason: string not null>>", False),
    ("kept_ratio", "float", False), ("low_confidence", "bool", False),
    ("n_chars_raw", "int64", False), ("n_chars_clean", "int64", False), ("content_sha256", "string", False),
    ("encoding", "string", False), ("extractor", "string", False), ("mojibake_fixed", "bool", False),
    ("fetched_at", "timestamp[us, tz=UTC]", True), ("ingested_at", "timestamp[us, tz=UTC]", False),
    ("pipeline_version", "string", False), ("rules_version", "string", False),
]
REJECTS = [
    ("input_id", "string", False), ("source", "string", False), ("input_file", "string", False),
    ("line_no", "int64", True), ("reason_code", "string", False), ("reason", "string", False),
    ("n_bytes", "int64", False), ("ingested_at", "timestamp[us, tz=UTC]", False),
    ("pipeline_version", "string", False), ("rules_version", "string", False),
]


def _shape(schema) -> list[tuple[str, str, bool]]:
    return [(f.name, str(f.type), f.nullable) for f in schema]


def test_articles_schema_is_pinned() -> None:
    assert SCHEMA_VERSION == "2", "bump the pinned columns below together with SCHEMA_VERSION"
    assert _shape(ARTICLES_SCHEMA) == ARTICLES


def test_rejects_schema_is_pinned() -> None:
    assert _shape(REJECTS_SCHEMA) == REJECTS


# How the README's data dictionary writes each Arrow type.
_README_TYPES = {"string": "string", "int64": "int64", "int32": "int32", "float": "float32", "bool": "bool",
                 "date32[day]": "date", "timestamp[us, tz=UTC]": "timestamp", "list": "list of struct"}


def _dictionary(heading: str) -> dict[str, str]:
    """``column -> type`` as the README's data-dictionary table under ``heading`` writes them (a row naming
    several columns with an empty type: "as for articles")."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(heading, 1)[1].split("\n#", 1)[0]
    columns: dict[str, str] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`"):
            for name in re.findall(r"`([^`]+)`", cells[0]):
                columns[name] = cells[1]
    return columns


@pytest.mark.parametrize(("heading", "schema", "extra"),
                         [("### Data dictionary: `articles`", ARTICLES, {"ingest_date"}),
                          ("### Data dictionary: `rejects`", REJECTS, set())])
def test_the_data_dictionary_documents_every_column_with_its_type(heading: str, schema, extra: set[str]) -> None:
    documented = _dictionary(heading)
    assert set(documented) == {name for name, _, _ in schema} | extra, "columns and the README table differ"
    for name, arrow_type, nullable in schema:
        written = documented[name]
        if not written:  # "as for articles"
            continue
        word = _README_TYPES["list" if arrow_type.startswith("list") else arrow_type]
        assert written.startswith(word), f"{name}: {arrow_type} documented as {written!r}"
        assert written.endswith(", null") == nullable, f"{name}: nullable={nullable}, documented as {written!r}"


def test_state_schemas_are_pinned() -> None:
    """The ledger and the line counts are read back by later runs (and by analysts, for the ledger)."""
    from cleaners.boilerplate import KIND_DOCUMENT, KIND_LINE, KIND_TOP, LINE_COUNTS_SCHEMA, LINE_COUNTS_VERSION
    from cleaners.store import LEDGER_SCHEMA, STATE_VERSION

    assert (STATE_VERSION, LINE_COUNTS_VERSION) == ("1", "4"), "bump the pinned columns below with the version"
    assert (KIND_LINE, KIND_DOCUMENT, KIND_TOP) == ("line", "document", "top")
    assert _shape(LEDGER_SCHEMA) == [
        ("input_file", "string", False), ("size", "int64", False), ("mtime_ns", "int64", False),
        ("content_sha256", "string", False), ("shard_id", "string", False), ("partition", "string", False),
        ("rules_version", "string", False), ("pipeline_version", "string", False), ("n_inputs", "int64", False),
        ("n_articles", "int64", False), ("n_rejects", "int64", False),
        ("ingested_at", "timestamp[us, tz=UTC]", False)]
    assert _shape(LINE_COUNTS_SCHEMA) == [
        ("source", "string", False), ("line_hash", "int64", False), ("line", "string", False),
        ("n_docs", "int64", False), ("source_docs", "int64", False), ("kind", "string", False)]


def test_removed_line_fields_are_in_the_order_of_the_parquet_struct() -> None:
    # Rows carry RemovedLine tuples straight to pyarrow, which fills the struct by position.
    from cleaners.schema import REMOVED_LINE
    from cleaners.types import RemovedLine

    assert RemovedLine._fields == tuple(field.name for field in REMOVED_LINE)


def test_the_writer_builds_the_same_table_as_from_pylist(tmp_path) -> None:
    # AtomicParquetWriter fills its batches column by column; rows as the flow writes them (removed lines as
    # plain tuples, a column missing from one row) must come out as Table.from_pylist makes them.
    from datetime import UTC, datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    from cleaners.parquet import AtomicParquetWriter

    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    rows = [{"doc_id": f"d{i}", "input_id": str(i), "source": "example.com", "input_file": "in.jsonl",
             "title": None if i % 2 else f"Title {i}", "text": f"Text {i}\n\nmore",
             "removed": [(1, "Home | News", "nav.pipe-menu", "a menu"), (3, "Share", "share.prompt", "why")][: i % 3],
             "kept_ratio": 0.5, "low_confidence": bool(i % 2), "n_chars_raw": 30, "n_chars_clean": 14,
             "content_sha256": "0" * 64, "encoding": "utf-8", "extractor": "none", "mojibake_fixed": False,
             "ingested_at": now, "pipeline_version": "1", "rules_version": "r1"} for i in range(7)]
    del rows[3]["title"]
    path = tmp_path / "part.parquet"
    with AtomicParquetWriter(str(path), ARTICLES_SCHEMA, batch_rows=3) as writer:
        writer.write_rows(rows)
    written = pq.read_table(path)
    assert written.equals(pa.Table.from_pylist(rows, schema=ARTICLES_SCHEMA))
    assert written.column("removed").to_pylist()[2][1] == {"line_no": 3, "text": "Share", "rule": "share.prompt",
                                                           "reason": "why"}


@pytest.mark.parametrize("filesystem", ["file", "memory"])
def test_a_failed_rewrite_keeps_the_committed_file(tmp_path, filesystem: str) -> None:
    """A writer that fails while replacing a part (a --reprocess the same day, recovery rewriting a part) leaves
    the committed version whole and no temporary file beside it: on a local disk, and on a filesystem that is
    neither local nor an object store (fsspec's in-memory one replaces a file as soon as it is opened)."""
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cleaners.parquet import AtomicParquetWriter

    fs = fsspec.filesystem(filesystem)
    folder = str(tmp_path) if filesystem == "file" else f"/bucket-{tmp_path.name}/out[1]"  # not read as a glob
    path = f"{folder}/part.parquet"
    schema = pa.schema([pa.field("n", pa.int64())])
    with AtomicParquetWriter(path, schema, fs=fs) as writer:
        writer.write_rows([{"n": 1}, {"n": 2}])
    with pytest.raises(RuntimeError, match="disk full"), AtomicParquetWriter(path, schema, fs=fs, batch_rows=1) as w:
        w.write_rows([{"n": 3}, {"n": 4}])
        raise RuntimeError("disk full")
    with fs.open(path, "rb") as handle:
        assert pq.ParquetFile(handle).read().column("n").to_pylist() == [1, 2]
    assert [name.rsplit("/", 1)[-1] for name in fs.ls(folder, detail=False)] == ["part.parquet"]


@pytest.mark.slow
def test_a_failed_rewrite_on_s3_keeps_the_committed_object(monkeypatch) -> None:
    """On an object store the failed upload is cancelled: closing it would upload the half-written file over the
    committed one, and removing the key afterwards (what the writer did) deleted the committed version."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    from cleaners.parquet import AtomicParquetWriter
    from tests.helpers import free_port, http_ok, wait_for

    s3fs = pytest.importorskip("s3fs")
    moto = Path(sys.executable).parent / "moto_server"
    if shutil.which("moto_server", path=str(moto.parent)) is None:
        pytest.skip("moto[server] is not installed")
    port = free_port()
    server = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/"), 60, "moto server")
        for key, value in {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "not-a-real-secret",
                           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}.items():
            monkeypatch.setenv(key, value)
        # A new instance: fsspec reuses a filesystem made with the same arguments, and an earlier test's instance
        # points at its own (stopped) server.
        fs = s3fs.S3FileSystem(use_listings_cache=False, skip_instance_cache=True)
        fs.mkdir("lake")
        schema = pa.schema([pa.field("n", pa.int64())])
        with AtomicParquetWriter("lake/part.parquet", schema, fs=fs) as writer:
            writer.write_rows([{"n": 1}, {"n": 2}])
        with pytest.raises(RuntimeError, match="network down"), \
             AtomicParquetWriter("lake/part.parquet", schema, fs=fs, batch_rows=1) as failing:
            failing.write_rows([{"n": 3}, {"n": 4}])
            raise RuntimeError("network down")
        del failing
        with fs.open("lake/part.parquet", "rb") as handle:
            assert pq.ParquetFile(handle).read().column("n").to_pylist() == [1, 2]
        assert fs.ls("lake", detail=False) == ["lake/part.parquet"]
    finally:
        server.terminate()
        server.wait(timeout=30)


# Each classifier file shipped, by digest, and the PIPELINE_VERSION it first shipped with. Add a line per retraining,
# never edit one: a new file needs a version above every earlier one, PIPELINE_VERSION included (other changes to the
# cleaning bump it too: 0.10.0 was the uncertain-evidence valve, with the v7 file).
CLASSIFIER_RELEASES = {
    "sha256:0c8024ce0db1": "0.8.0",  # v6
    "sha256:4f7c419221b6": "0.9.0",  # v7
}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_a_new_line_classifier_comes_with_a_new_pipeline_version() -> None:
    """The shipped classifier decides most removals, so a retrained file changes rows; only a new PIPELINE_VERSION
    makes runs reprocess what they ingested with the old one (rules_version covers the rule packs only). After
    retraining: bump cleaners.shard.PIPELINE_VERSION and add the file's digest to CLASSIFIER_RELEASES at it."""
    from cleaners.linemodel import default_judge
    from cleaners.shard import PIPELINE_VERSION

    digest = default_judge().version
    assert digest in CLASSIFIER_RELEASES, f"a new classifier file ({digest}): add it to CLASSIFIER_RELEASES"
    newest = max(CLASSIFIER_RELEASES.values(), key=_version)
    assert CLASSIFIER_RELEASES[digest] == newest, "the shipped file is not the newest release"
    assert _version(PIPELINE_VERSION) >= _version(newest)
    assert len(set(CLASSIFIER_RELEASES.values())) == len(CLASSIFIER_RELEASES), "each file needs its own version"
