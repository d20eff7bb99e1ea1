"""Security: hostile rule patterns cannot hang a run, hostile names cannot write outside the output,
and credentials in the environment never reach the output, the logs or Prefect's database.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from tests.bad_inputs import ARTICLE
from tests.helpers import PrefectServer, free_port

BIN = Path(sys.executable).parent


def _rows(out: Path, folder: str) -> list[dict[str, Any]]:
    return ds.dataset(out / folder, format="parquet", partitioning="hive").to_table().to_pylist()


def _all_files(root: Path) -> set[str]:
    return {os.path.join(folder, name) for folder, _, names in os.walk(root) for name in names}


# -- catastrophic backtracking ----------------------------------------------------------------------------

REDOS_PACK = '''
[pack]
name = "redos"
version = "1"

[[rules]]
id = "redos.nested-plus"
concept = "test"
why = "A classic exponential pattern under a backtracking engine."
regex = '(a+)+$'
max_chars = 1000000
examples.drop = ["aaaa"]
examples.keep = ["aaab"]

[[rules]]
id = "redos.overlapping"
concept = "test"
why = "Two overlapping quantifiers inside a repeated group, then a letter that never comes."
regex = '(x+x+)+y'
max_chars = 1000000
examples.drop = ["xxy"]
examples.keep = ["xxx"]

[[rules]]
id = "redos.alternation"
concept = "test"
why = "Overlapping alternatives under a star."
regex = '(\\w|\\d)*!'
match = "prefix"
max_chars = 1000000
examples.drop = ["ab1!"]
examples.keep = ["ab1"]
'''


def test_catastrophic_backtracking_rules_finish_in_seconds_through_the_flow(prefect_backend, tmp_path: Path) -> None:
    """Under Python's ``re`` each of these lines would take longer than the universe has left; rule
    patterns run on RE2 (linear time), so the whole run takes seconds."""
    from flows.clean import clean_articles

    pack = tmp_path / "redos.toml"
    pack.write_text(REDOS_PACK)
    raw = tmp_path / "raw"
    raw.mkdir()
    long_a, long_x, long_w = "a" * 100_000 + "b", "x" * 100_000, "ab1" * 50_000
    (raw / "hostile.txt").write_text(f"A title line\n\n{long_a}\n\n{long_x}\n\n{long_w}\n\n{ARTICLE}")
    (raw / "matching.txt").write_text(f"A title line\n\n{'a' * 200_000}\n\n{ARTICLE}")
    started = time.perf_counter()
    summary = clean_articles(input=[str(raw)], output=str(tmp_path / "out"), rules=[str(pack)])
    elapsed = time.perf_counter() - started
    assert summary["accounting_ok"] and summary["articles"] == 2
    assert elapsed < 30, f"{elapsed:.1f} s"
    rows = {r["input_id"]: r for r in _rows(tmp_path / "out", "articles")}
    hostile = rows["hostile.txt"]["text"].split("\n")
    removed = {r["text"]: r["rule"] for r in rows["hostile.txt"]["removed"]}
    # No rule matches them (the line classifier, a later step, may still judge them), and each is accounted for.
    assert not [rule for rule in removed.values() if rule.startswith("redos.")]
    assert all(line in hostile or line in removed for line in (long_a, long_x, long_w))
    matching = rows["matching.txt"]
    assert "a" * 200_000 not in matching["text"].split("\n")
    assert [r["rule"] for r in matching["removed"] if r["rule"].startswith("redos.")] == ["redos.nested-plus"]


# -- names that look like paths ----------------------------------------------------------------------------


def test_hostile_source_names_never_write_outside_the_output(prefect_backend, tmp_path: Path) -> None:
    """A ``source`` is data, never a path: it is stored verbatim in the ``source`` column and no file or
    folder is named after it. Defined behaviour for odd characters: NUL and every other character are
    kept verbatim (Arrow, Parquet, pyarrow and DuckDB carry them); a lone UTF-16 surrogate (only
    possible through a JSON escape) cannot be encoded as UTF-8 and becomes U+FFFD; an empty or blank
    ``source`` falls back to the URL's host, else the folder."""
    from flows.clean import clean_articles

    token = uuid.uuid4().hex[:12]
    hostile = {
        "dotdot": "../../etc",
        "deep-dotdot": f"../../../../../../../../tmp/escape-{token}",
        "absolute": f"/tmp/abs-escape-{token}",
        "nul": f"nul\x00byte-{token}",
        "long": "s" * 5000,
        "windows": "C:\\Windows\\..\\..\\evil",
        "partition-like": "ingest_date=1999-01-01",
        "part-like": "part-0000000000000000.parquet",
        "newline": "line\nbreak",
        "encoded": "%2e%2e%2f%2e%2e%2fetc",
        "bidi": "\u202eevil\u202c",
        "dot": ".",
    }
    verbatim = dict(hostile)
    raw = tmp_path / "in"
    raw.mkdir()
    lines = [json.dumps({"id": key, "text": ARTICLE, "source": value}) for key, value in hostile.items()]
    lines.append(json.dumps({"id": "surrogate", "text": ARTICLE, "source": "half\udcffpair"}))
    verbatim["surrogate"] = "half\ufffdpair"
    lines.append(json.dumps({"id": "blank", "text": ARTICLE, "source": "  ", "url": "https://www.example.org/a"}))
    verbatim["blank"] = "example.org"
    lines.append(json.dumps({"id": "reject", "source": "../../reject-escape", "title": "no text"}))
    (raw / "feed.jsonl").write_text("\n".join(lines) + "\n")
    # Folder names become sources too.
    folders = ["%2e%2e%2f%2e%2e%2fescape", "ingest_date=1999-01-01", "name with\nnewline", "-rf", " lead", "_state"]
    for name in [*folders, "..%2F..%2Fescape"]:  # the last one starts with "." (hidden): skipped by design
        (raw / name).mkdir()
        (raw / name / "story.txt").write_text(ARTICLE)

    out = tmp_path / "deep" / "a" / "b" / "out"
    before = _all_files(tmp_path)
    ancestors = list(out.parents)
    listings = {str(p): set(os.listdir(p)) for p in ancestors if p.exists()}
    summary = clean_articles(input=[str(raw)], output=str(out))
    assert summary["accounting_ok"]

    # Every new file is under OUTPUT, and nothing appeared in any folder above it.
    new = _all_files(tmp_path) - before
    outside = sorted(p for p in new if not p.startswith(str(out) + os.sep))
    assert not outside, outside
    for folder, names in listings.items():
        appeared = set(os.listdir(folder)) - names
        assert not [n for n in appeared if token in n or "escape" in n], (folder, appeared)
    assert not os.path.lexists(f"/tmp/abs-escape-{token}") and not os.path.lexists(f"/tmp/escape-{token}")
    # Under OUTPUT, the dataset folders hold only today's partitions and shard-named parts, and no path
    # component anywhere is a source name.
    today = f"ingest_date={summary['ingested_at'][:10]}"
    part = re.compile(rf"(articles|rejects|_state/ledger)/{today}/part-[0-9a-f]{{16}}\.parquet")
    relative = [Path(p).relative_to(out) for p in new]
    assert {r.parts[0] for r in relative} <= {"articles", "rejects", "_state", "_manifests"}, relative
    assert all(part.fullmatch(r.as_posix()) for r in relative if r.parts[0] in ("articles", "rejects")), relative
    layout = {"articles", "rejects", "_state", "_manifests", "ledger", "line_counts"}  # "_state" is also a folder
    names = (set(hostile.values()) | set(folders) | {"../../reject-escape", "..%2F..%2Fescape"}) - layout
    assert not [r for r in relative if set(r.parts) & names or any(token in c for c in r.parts)], relative

    # The source column keeps each name verbatim (as defined above).
    articles = {r["input_id"]: r for r in _rows(out, "articles")}
    for key, expected in verbatim.items():
        assert articles[key]["source"] == expected, (key, articles[key]["source"][:80])
    for name in folders:
        assert articles[f"{name}/story.txt"]["source"] == name
    assert not [key for key in articles if key.startswith(".")]
    [reject] = _rows(out, "rejects")
    assert reject["source"] == "../../reject-escape" and reject["reason_code"] == "missing_text"
    # DuckDB reads the NUL and the 5,000-character names back unchanged.
    glob = f"{out}/articles/**/*.parquet"
    [(nul,)] = duckdb.sql(f"SELECT source FROM read_parquet('{glob}', hive_partitioning = true) "
                          "WHERE input_id = 'nul'").fetchall()
    assert nul == hostile["nul"]
    [(length,)] = duckdb.sql(f"SELECT length(source) FROM read_parquet('{glob}') WHERE input_id = 'long'").fetchall()
    assert length == 5000


# -- credentials ------------------------------------------------------------------------------------------------


def _hits(secret: bytes, root: Path) -> list[str]:
    """Files under ``root`` whose bytes contain ``secret``; Parquet files are also decoded (they are
    compressed, so a byte search alone would miss a secret inside them)."""
    found = []
    for path in sorted(_all_files(root)):
        try:
            data = Path(path).read_bytes()
        except OSError:
            continue
        if secret in data:
            found.append(path)
        elif path.endswith(".parquet") and data[:4] == b"PAR1":
            table = pq.read_table(path)
            text = repr(table.to_pylist()) + repr(table.schema.metadata)
            if secret.decode() in text:
                found.append(path)
    return found


@pytest.mark.slow
def test_credentials_in_the_environment_reach_no_output_log_or_artifact(server: PrefectServer, tmp_path: Path) -> None:
    """Two CLI runs with fake AWS credentials in their environment: one on Prefect's ephemeral server that
    succeeds (with rejects), one on the session's Prefect server that fails inside the flow. The secret is in
    none of the output files, the captured console output, or anything under either PREFECT_HOME (Prefect's
    database with the stored logs, artifacts, parameters and events)."""
    secret = f"fake-aws-secret-{uuid.uuid4().hex}"
    key_id = f"AKIAFAKE{uuid.uuid4().hex[:12].upper()}"
    home = tmp_path / "prefect-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    credentials = {"AWS_SECRET_ACCESS_KEY": secret, "AWS_ACCESS_KEY_ID": key_id,
                   "AWS_SESSION_TOKEN": f"{secret}-session"}
    env.update(PREFECT_HOME=str(home), DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120", **credentials)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "story.txt").write_text(ARTICLE)
    (raw / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (raw / "feed.jsonl").write_text(json.dumps({"id": "r1", "text": ARTICLE}) + "\n{broken\n")
    out = tmp_path / "out"
    console: list[bytes] = []
    ok = subprocess.run([str(BIN / "boilerstrip"), "run", str(raw), "--output", str(out), "--no-progress"],
                        env=env, cwd=tmp_path, capture_output=True, timeout=300)
    console += [ok.stdout, ok.stderr]
    assert ok.returncode == 0, ok.stderr.decode()[-3000:]
    # A run that fails inside the flow (its logs and error are checked too): a Dask scheduler that is not there. On
    # the session's server: its logs and events go to a server's database (and an ephemeral start costs ~15 s).
    failed = subprocess.run([str(BIN / "boilerstrip"), "run", str(raw), "--output", str(tmp_path / "out2"),
                             "--no-progress", "--task-runner", "dask", "--dask-address", f"tcp://127.0.0.1:{free_port()}"],
                            env=server.env(DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="3s", **credentials),
                            cwd=tmp_path, capture_output=True, timeout=300)
    console += [failed.stdout, failed.stderr]
    assert failed.returncode != 0 and b"the run failed" in failed.stderr, failed.stderr.decode()[-3000:]

    assert list(out.glob("_manifests/run-*.json")) and list(out.glob("articles/*/part-*.parquet"))
    assert any(home.rglob("*.db")), "Prefect's database is where the logs and artifacts are stored"
    # The search reaches what the failed run stored on the server: its parameters name its output folder.
    assert _hits(str(tmp_path / "out2").encode(), server.home), "the failed run left nothing on the server"
    for value in (secret, key_id):
        needle = value.encode()
        assert not [i for i, text in enumerate(console) if needle in text], f"{value} in the console output"
        assert not _hits(needle, out), f"{value} in the output"
        assert not _hits(needle, tmp_path / "out2"), f"{value} in the failed run's output"
        assert not _hits(needle, home), f"{value} under PREFECT_HOME"
        assert not _hits(needle, server.home), f"{value} under the Prefect server's home (its database)"
