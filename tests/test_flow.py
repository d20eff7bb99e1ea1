"""The clean-articles flow under a temporary Prefect server: Parquet written, read back, accounted for."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pytest

from cleaners.schema import ARTICLES_SCHEMA, REJECTS_SCHEMA
from tests.conftest import ROOT


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(ROOT / "data" / "raw", raw)
    (raw / "empty.txt").write_bytes(b"")
    (raw / "feed.jsonl").write_text(
        json.dumps({"id": "j1", "text": "Short headline\n\nA paragraph of article text that says something.",
                    "url": "https://www.example.org/x"}) + "\n{broken\n"
    )
    return raw


def test_flow_writes_parquet_that_pyarrow_and_duckdb_read(prefect_backend, corpus: Path, tmp_path: Path) -> None:
    from flows.clean import clean_articles

    out = tmp_path / "out"
    summary = clean_articles(input=[str(corpus)], output=str(out))
    assert (summary["inputs"], summary["articles"], summary["rejects"]) == (5, 3, 2)

    articles = ds.dataset(out / "articles", format="parquet").to_table()
    rejects = ds.dataset(out / "rejects", format="parquet").to_table()
    assert articles.schema.equals(ARTICLES_SCHEMA, check_metadata=False)
    assert rejects.schema.equals(REJECTS_SCHEMA, check_metadata=False)
    rows = {r["input_id"]: r for r in articles.to_pylist()}
    assert set(rows) == {"420intel.com/000_09f1c496b2e8d967.txt", "001_5f048fc90bdc07c1.txt", "j1"}
    seed = rows["420intel.com/000_09f1c496b2e8d967.txt"]
    assert seed["source"] == "420intel.com" and seed["region"] == "Mexico"
    assert "Disqus" not in seed["text"]
    assert {r["rule"] for r in seed["removed"]} >= {"420intel.region-tag", "comments.widget-placeholder"}
    assert rows["j1"]["source"] == "example.org"
    assert sorted(rejects.column("reason_code").to_pylist()) == ["empty", "malformed_record"]

    glob = f"{out}/articles/**/*.parquet"
    count, sources = duckdb.sql(f"SELECT count(*), count(DISTINCT source) FROM read_parquet('{glob}')").fetchall()[0]
    assert (count, sources) == (3, 3)
    [(line_no,)] = duckdb.sql(f"SELECT line_no FROM read_parquet('{out}/rejects/*.parquet') "
                              "WHERE reason_code = 'malformed_record'").fetchall()
    assert line_no == 2


def test_rerun_gives_same_ids_and_no_duplicates(prefect_backend, corpus: Path, tmp_path: Path) -> None:
    from flows.clean import clean_articles

    out = tmp_path / "out"
    clean_articles(input=[str(corpus)], output=str(out))
    first = ds.dataset(out / "articles").to_table().sort_by("doc_id")
    clean_articles(input=[str(corpus)], output=str(out))
    second = ds.dataset(out / "articles").to_table().sort_by("doc_id")
    assert second.num_rows == first.num_rows == 3
    assert second.column("doc_id").equals(first.column("doc_id"))
    assert second.column("content_sha256").equals(first.column("content_sha256"))
