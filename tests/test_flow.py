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

    articles = ds.dataset(out / "articles", format="parquet", partitioning="hive").to_table()
    rejects = ds.dataset(out / "rejects", format="parquet", partitioning="hive").to_table()
    assert articles.schema.remove(articles.schema.get_field_index("ingest_date")).equals(
        ARTICLES_SCHEMA, check_metadata=False)
    assert rejects.schema.remove(rejects.schema.get_field_index("ingest_date")).equals(
        REJECTS_SCHEMA, check_metadata=False)
    rows = {r["input_id"]: r for r in articles.to_pylist()}
    assert set(rows) == {"420intel.com/000_09f1c496b2e8d967.txt", "001_5f048fc90bdc07c1.txt", "j1"}
    seed = rows["420intel.com/000_09f1c496b2e8d967.txt"]
    assert seed["source"] == "420intel.com" and seed["region"] == "Mexico"
    assert "Disqus" not in seed["text"]
    assert {r["rule"] for r in seed["removed"]} >= {"420intel.region-tag", "comments.widget-placeholder"}
    assert rows["j1"]["source"] == "example.org"
    assert sorted(rejects.column("reason_code").to_pylist()) == ["empty", "malformed_record"]
    assert summary["site_packs_unused"] == []  # the 420intel.com pack had its seed to act on

    glob = f"{out}/articles/**/*.parquet"
    count, sources = duckdb.sql(f"SELECT count(*), count(DISTINCT source) FROM read_parquet('{glob}')").fetchall()[0]
    assert (count, sources) == (3, 3)
    [(line_no,)] = duckdb.sql(f"SELECT line_no FROM read_parquet('{out}/rejects/**/*.parquet') "
                              "WHERE reason_code = 'malformed_record'").fetchall()
    assert line_no == 2
    [(dates,)] = duckdb.sql(f"SELECT count(DISTINCT ingest_date) FROM read_parquet('{glob}', "
                            "hive_partitioning = true)").fetchall()
    assert dates == 1


def test_output_reads_as_one_table_in_polars_and_pandas(prefect_backend, corpus: Path, tmp_path: Path) -> None:
    import pandas as pd
    import polars as pl

    from flows.clean import clean_articles

    out = tmp_path / "out"
    clean_articles(input=[str(corpus)], output=str(out))
    frame = pl.scan_parquet(f"{out}/articles/**/*.parquet", hive_partitioning=True).collect()
    assert frame.height == 3 and "ingest_date" in frame.columns
    assert sorted(frame["source"].to_list()) == ["420intel.com", "example.org", "unknown"]
    pandas_frame = pd.read_parquet(out / "articles")
    assert len(pandas_frame) == 3 and "ingest_date" in pandas_frame.columns
    assert set(pandas_frame["region"].dropna()) == {"Mexico"}


def _articles(out: Path):
    return ds.dataset(out / "articles", format="parquet", partitioning="hive").to_table().sort_by("doc_id")


def test_inputs_left_on_older_rules_are_counted_in_the_manifest(prefect_backend, tmp_path: Path) -> None:
    """After a rules change, inputs whose raw files are gone keep the rows of the old rules: the run says how many."""
    import shutil

    from cleaners.rulepack import DEFAULT_RULES_DIR
    from flows.clean import clean_articles

    for day in ("2026-11-25", "2026-11-26"):
        (tmp_path / day / "site.example").mkdir(parents=True)
        (tmp_path / day / "site.example" / "story.txt").write_text(
            f"Headline of {day}\n\nThe article of {day} is here, long enough to be an article paragraph.\n")
    out = str(tmp_path / "out")
    assert clean_articles(input=[str(tmp_path / "2026-11-25")], output=out)["inputs_on_other_versions"] == 0
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules)
    generic = rules / "generic.toml"
    generic.write_text(generic.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    shutil.rmtree(tmp_path / "2026-11-25")
    second = clean_articles(input=[str(tmp_path / "2026-11-26")], output=out, rules=[str(rules)])
    assert second["inputs_on_other_versions"] == 1


def test_rerun_adds_no_rows_and_a_changed_file_replaces_its_rows(prefect_backend, corpus: Path,
                                                                   tmp_path: Path) -> None:
    from flows.clean import clean_articles

    out = tmp_path / "out"
    first_run = clean_articles(input=[str(corpus)], output=str(out))
    first = _articles(out)
    second_run = clean_articles(input=[str(corpus)], output=str(out))
    assert (second_run["files_processed"], second_run["inputs"]) == (0, 0)
    assert _articles(out).column("doc_id").equals(first.column("doc_id"))

    seed = corpus / "001_5f048fc90bdc07c1.txt"
    seed.write_text(seed.read_text(encoding="utf-8") + "\n\nA paragraph added in a later edit of the story.\n",
                    encoding="utf-8")
    third_run = clean_articles(input=[str(corpus)], output=str(out))
    # The changed file, and with it the other files of its shard (here all four: one shard), whose line counts
    # are one part: counted anew together, so no document is counted twice (cleaners.ingest.select_changed).
    assert third_run["files_processed"] == first_run["files_seen"] == 4
    assert third_run["files_with_changed_shard_mates"] == 3  # said so in the log, the CLI and the manifest
    assert third_run["superseded_rows"] == first_run["inputs"] == 5
    after = _articles(out)
    assert after.num_rows == first.num_rows == 3
    assert after.column("doc_id").equals(first.column("doc_id"))  # same ids: the row was replaced
    texts = dict(zip(after.column("input_id").to_pylist(), after.column("text").to_pylist(), strict=True))
    assert texts["001_5f048fc90bdc07c1.txt"].endswith("A paragraph added in a later edit of the story.")

    forced = clean_articles(input=[str(corpus)], output=str(out), reprocess=True)
    assert forced["files_processed"] == first_run["files_seen"]
    assert forced["superseded_rows"] == first_run["inputs"]  # the same shard, the same day: its parts replaced
    assert _articles(out).num_rows == 3
    manifests = sorted((out / "_manifests").glob("run-*.json"))
    assert len(manifests) == 4
    manifest = json.loads(manifests[-1].read_text())
    assert manifest["inputs"] == manifest["articles"] + manifest["rejects"] and manifest["accounting_ok"]
    assert manifest["status"] == "ok"
    assert manifest["parameters"] == {"input": [str(corpus)], "rules": None, "shard_mb": 16.0, "reprocess": True,
                                      "task_runner": None, "dask_address": None, "max_doc_mb": 16.0}


def test_the_manifest_names_no_credentials_given_in_a_url() -> None:
    from flows.clean import _without_userinfo

    assert _without_userinfo("s3://KEY:SECRET@bucket/raw") == "s3://bucket/raw"
    assert _without_userinfo("tcp://127.0.0.1:8786") == "tcp://127.0.0.1:8786"
    assert _without_userinfo("/srv/raw/a@b.txt") == "/srv/raw/a@b.txt"
    assert _without_userinfo("s3://bucket/raw/a@b.txt") == "s3://bucket/raw/a@b.txt"
    assert _without_userinfo("zip://a.txt::ftp://user:pw@host/a.zip") == "zip://a.txt::ftp://host/a.zip"
    assert _without_userinfo("https://host/raw?sig=TOKEN") == "https://host/raw"
    assert _without_userinfo("http://host?x=a@b") == "http://host"
    assert _without_userinfo("https://u:pw@host#frag@x") == "https://host"


def test_an_output_inside_the_input_folder_is_not_read_as_input(prefect_backend, corpus: Path) -> None:
    from flows.clean import clean_articles

    inner = corpus / "clean"
    first = clean_articles(input=[str(corpus)], output=str(inner))
    again = clean_articles(input=[str(corpus)], output=str(inner))
    assert first["files_seen"] == again["files_seen"] == 4  # the output's Parquet and state files left out
    assert (again["files_processed"], again["rejects"]) == (0, 0)
    # The input folder given through a symlink: the output is still inside it.
    alias = corpus.parent / "alias"
    alias.symlink_to(corpus, target_is_directory=True)
    through = clean_articles(input=[str(alias)], output=str(inner))
    assert through["files_seen"] == 4 and through["rejects"] == 0


def test_process_pool_runner_writes_the_same_rows_as_threads(prefect_backend, corpus: Path, tmp_path: Path) -> None:
    """The process pool pickles the tasks (and the flow's globals): a lock in them failed every run."""
    from flows.clean import clean_articles
    from tests.helpers import comparable, read_articles

    threads = clean_articles(input=[str(corpus)], output=str(tmp_path / "threads"), shard_mb=0.002)
    processes = clean_articles(input=[str(corpus)], output=str(tmp_path / "processes"), shard_mb=0.002,
                               task_runner="processes")
    assert processes["shards"] == threads["shards"] >= 2
    assert (processes["articles"], processes["rejects"]) == (threads["articles"], threads["rejects"]) == (3, 2)
    assert comparable(read_articles(tmp_path / "processes" / "articles")) == \
        comparable(read_articles(tmp_path / "threads" / "articles"))


def test_inputs_ingested_again_are_not_counted_twice(prefect_backend, tmp_path: Path) -> None:
    """The learned per-source line counts stay the counts of the inputs as they are now: a JSONL feed that grows
    between runs, a reprocessed output and a file changed beside others of its shard count each document once
    (when the run is given the shard's other files)."""
    import os

    from cleaners.store import OutputStore
    from flows.clean import clean_articles

    raw = tmp_path / "raw" / "feed.example"
    raw.mkdir(parents=True)
    template = "Home | World | Sport\nShare this story\n"
    records = [json.dumps({"id": f"r{i}", "source": "feed.example",
                           "text": f"Headline {i}\n\n{template}Article {i} says something of its own.\n"})
               for i in range(6)]
    (raw / "feed.jsonl").write_text("\n".join(records) + "\n")
    (raw / "note.txt").write_text(f"Note\n\n{template}A note beside the feed, in the same shard.\n")
    out = tmp_path / "out"
    store = OutputStore.open(str(out))

    def docs_counted(inputs: Path = tmp_path / "raw", **options: object) -> tuple[int, int]:
        clean_articles(input=[str(inputs)], output=str(out), **options)
        return store.merged_line_stats().source_docs["feed.example"], store.line_stats().source_docs["feed.example"]

    assert docs_counted() == (7, 7)
    with (raw / "feed.jsonl").open("a") as feed:  # the feed grows: only it changed, its shard is counted anew
        feed.write(json.dumps({"id": "r6", "source": "feed.example", "text": f"Headline 6\n\n{template}Article 6."}))
    assert docs_counted() == (8, 8)
    os.utime(raw / "note.txt")
    assert docs_counted(reprocess=True) == (8, 8)
    # The feed alone, grown again: its shard mate is not among the inputs, so the old shard keeps its counts (the
    # only counts of the note), and the feed's records are counted in both shards: 8 + 8 documents, in the lines
    # as in the total, so the template's share is still all of them.
    with (raw / "feed.jsonl").open("a") as feed:
        feed.write("\n" + json.dumps({"id": "r7", "source": "feed.example", "text": f"Headline 7\n\n{template}Art 7."}))
    assert docs_counted(raw / "feed.jsonl") == (16, 16)
    share = store.merged_line_stats().evidence("feed.example", "Share this story")
    assert share is not None and (share.n_docs, share.source_docs) == (16, 16)


def test_rule_packs_edited_during_a_run_stop_its_shards_without_retrying(prefect_backend, corpus: Path,
                                                                          tmp_path: Path, monkeypatch) -> None:
    """Each shard's task loads the packs again: when they are not the ones the run was planned with, the shard is
    not cleaned (no run writes rows of two rule versions), and retrying cannot help, so it is not retried."""
    import dataclasses

    import flows.clean as clean

    loads = []

    def edited_after_the_first_load(paths=None):
        ruleset = clean_load(paths)
        loads.append(ruleset.version)
        return ruleset if len(loads) == 1 else dataclasses.replace(ruleset, version=ruleset.version + "-edited")

    clean_load = clean.load_rules
    monkeypatch.setattr(clean, "load_rules", edited_after_the_first_load)
    with pytest.raises(Exception, match="the packs changed during the run, or this worker has another boilerstrip") \
            as failure:
        clean.clean_articles(input=[str(corpus)], output=str(tmp_path / "out"), task_runner="threads")
    # Not "committed shards are skipped by the next run": with other packs, it cleans every input again.
    assert "The next run cleans every input again" in str(failure.value) and "skipped" not in str(failure.value)
    assert len(loads) == 2  # the flow's load, then one task attempt: no retries
    assert not list((tmp_path / "out").glob("articles/**/*.parquet"))


def test_a_worker_on_another_pipeline_version_is_refused_without_retrying(prefect_backend, corpus: Path,
                                                                           tmp_path: Path, monkeypatch) -> None:
    """A shard planned by another pipeline version (a Dask worker with another installation) is not counted or
    cleaned: its rows would carry the worker's version, and every later run would clean them again."""
    import flows.clean as clean
    from cleaners.store import OutputStore

    write_plan = OutputStore.write_plan
    attempts = []

    def planned_elsewhere(self, run_id, shard_id, plan):
        return write_plan(self, run_id, shard_id, {**plan, "pipeline_version": "0.0.1"})

    def counted(plan):
        attempts.append(plan["shard_id"])
        check(plan)

    check = clean._check_installation
    monkeypatch.setattr(OutputStore, "write_plan", planned_elsewhere)
    monkeypatch.setattr(clean, "_check_installation", counted)
    with pytest.raises(Exception, match=r"runs boilerstrip pipeline .* and the run was planned with 0\.0\.1: install "
                                        "the same boilerstrip on every worker"):
        clean.clean_articles(input=[str(corpus)], output=str(tmp_path / "out"), task_runner="threads")
    assert len(attempts) == len(set(attempts))  # each shard's count task ran once: no retries
    assert not list((tmp_path / "out").glob("articles/**/*.parquet"))
    # The output keeps its own record of the failed run: what it was asked, and why it failed.
    [manifest] = [json.loads(path.read_text()) for path in (tmp_path / "out" / "_manifests").glob("run-*.json")]
    assert manifest["status"] == "failed" and "InstallationMismatchError" in manifest["error"]
    assert manifest["parameters"]["input"] == [str(corpus)] and manifest["files_to_process"] == 4


def test_an_output_that_refuses_writes_is_named_with_what_to_do(prefect_backend, corpus: Path, tmp_path: Path,
                                                                 monkeypatch) -> None:
    """A full disk (or a read-only output) is the output's problem, not the inputs': the run's error names the output
    and says to free space, without retrying or asking for a bug report; writing the work orders failing the same way
    is said the same way (it failed before the run's record of a failure was written)."""
    import errno

    import flows.clean as clean
    from cleaners.store import OutputStore

    attempts = []

    def disk_full(*args, **kwargs):
        attempts.append(1)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(clean, "process_shard", disk_full)
    with pytest.raises(Exception, match=r"refused a write .*No space left on device.*Free space there") as failure:
        clean.clean_articles(input=[str(corpus)], output=str(tmp_path / "out"), task_runner="threads")
    assert "report the error" not in str(failure.value) and str(tmp_path / "out") in str(failure.value)
    assert len(attempts) == 1  # the corpus is one shard, tried once: a full disk is not retried
    monkeypatch.undo()
    monkeypatch.setattr(OutputStore, "write_plan", disk_full)
    with pytest.raises(Exception, match=r"the output .* refused a write .*free space there"):
        clean.clean_articles(input=[str(corpus)], output=str(tmp_path / "out2"), task_runner="threads")
    [manifest] = [json.loads(path.read_text()) for path in (tmp_path / "out2" / "_manifests").glob("run-*.json")]
    assert manifest["status"] == "failed" and "No space left" in manifest["error"]


def test_a_site_pack_no_source_of_the_run_falls_under_is_named(prefect_backend, corpus: Path, tmp_path: Path) -> None:
    """A typo in `sites` (or sources named otherwise) leaves a site pack idle without an error: the run says so."""
    from flows.clean import clean_articles

    pack = tmp_path / "valleyherald.toml"
    pack.write_text('[pack]\nname = "site-valleyherald"\nversion = "1"\nsites = ["valeyherald.com"]\n\n[[rules]]\n'
                    'id = "valleyherald.footer"\nconcept = "footer"\nwhy = "The site footer."\n'
                    'literal = "Valley Herald footer"\nexamples.drop = ["Valley Herald footer"]\n'
                    'examples.keep = ["The Valley Herald footer league began in 1921."]\n', encoding="utf-8")
    summary = clean_articles(input=[str(corpus)], output=str(tmp_path / "out"),
                             rules=[str(ROOT / "cleaners" / "rules"), str(pack)])
    assert summary["site_packs_unused"] == ["site-valleyherald (valeyherald.com)"]


def test_the_progress_line_of_a_run_with_nothing_done_says_so() -> None:
    """No bytes done yet (or none to do): the log line gives no made-up estimate ("~nan s left" before)."""
    import logging

    from flows.progress import LogReporter

    reporter = LogReporter(logging.getLogger("test"))
    reporter.start(0, 0)
    assert reporter.line().endswith("nothing left")
    reporter.start(2, 4_000)
    assert reporter.line().endswith("time left unknown")
    reporter.advance(1, 2_000)
    assert reporter.line().endswith(" s left") and "nan" not in reporter.line()


def test_the_run_summary_shows_page_text_as_text() -> None:
    """Removed lines are the page's text: in the run's Markdown artifact an image or a link in one must not render,
    a pipe must not end its table cell, HTML stays literal, and control characters go."""
    from collections import Counter

    from flows.clean import _summary_markdown

    line = "![beacon](http://evil.example/p.png) <img src=x onerror=alert(1)> [click](javascript:alert(1)) a|b \x1b[2J"
    summary = {"inputs": 1, "articles": 1, "rejects": 0, "files_seen": 1, "files_processed": 1, "files_skipped": 0,
               "shards": 1, "low_confidence": 0, "output": "/srv/out`\nx", "rules_version": "r",
               "reject_reasons": {}, "unread_fields": {}}
    markdown = _summary_markdown(summary, Counter({"generic.x": 1}), Counter({line: 3}))
    [row] = [row for row in markdown.splitlines() if "beacon" in row]
    assert row == ("| \\!\\[beacon\\]\\(http://evil\\.example/p\\.png\\) &lt;img src=x onerror=alert\\(1\\)\\> "
                   "\\[click\\]\\(javascript:alert\\(1\\)\\) a\\|b  \\[2J | 3 |")
    assert "- output: /srv/out\\` x" in markdown
