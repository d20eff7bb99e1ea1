"""Scale-out and storage: the flow on a real Dask cluster and on a real S3-compatible server.

Both start their servers on loopback as subprocesses and stop them by process group afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import comparable, free_port, http_ok, port_open, read_articles, stop, wait_for, write_corpus

BIN = Path(sys.executable).parent


@pytest.fixture()
def corpus(tmp_path: Path) -> tuple[Path, int]:
    root = tmp_path / "raw"
    return root, write_corpus(root)


@pytest.mark.slow
def test_dask_cluster_gives_the_same_rows_as_the_default_runner(prefect_backend, corpus, tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    from flows.clean import clean_articles

    root, n_docs = corpus
    baseline = clean_articles(input=[str(root)], output=str(tmp_path / "threads"), shard_mb=0.002)
    assert baseline["shards"] >= 4 and baseline["articles"] == n_docs

    port = free_port()
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PYTHONPATH": str(Path.cwd())}
    scheduler = subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--no-dashboard"], env=env, start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = None
    try:
        wait_for(lambda: port_open(port), 60, "dask scheduler")
        workers = subprocess.Popen([str(BIN / "dask"), "worker", f"tcp://127.0.0.1:{port}", "--nworkers", "2",
                                    "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                                   env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        from distributed import Client

        with Client(f"tcp://127.0.0.1:{port}", timeout=60) as client:
            client.wait_for_workers(2, timeout=90)
        on_dask = clean_articles(input=[str(root)], output=str(tmp_path / "dask"), shard_mb=0.002,
                                 task_runner="dask", dask_address=f"tcp://127.0.0.1:{port}")
    finally:
        if workers is not None:
            stop(workers)
        stop(scheduler)
    assert on_dask["inputs"] == baseline["inputs"] and on_dask["accounting_ok"]
    assert comparable(read_articles(tmp_path / "dask" / "articles")) == \
        comparable(read_articles(tmp_path / "threads" / "articles"))
    learned = [r for row in comparable(read_articles(tmp_path / "dask" / "articles")) for r in row["removed"]
               if r["rule"] == "learned.source-boilerplate"]
    assert learned, "the recurring template line of each site should be learned as boilerplate"


@pytest.mark.slow
def test_s3_input_and_output_on_a_local_s3_server(prefect_backend, corpus, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    s3fs = pytest.importorskip("s3fs")
    if shutil.which("moto_server", path=str(BIN)) is None:
        pytest.skip("moto[server] is not installed")
    from flows.clean import clean_articles

    root, n_docs = corpus
    port = free_port()
    secret = "not-a-real-secret-7f3a9c"
    server = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/"), 60, "moto server")
        for key, value in {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": secret,
                           "AWS_DEFAULT_REGION": "us-east-1",
                           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}.items():
            monkeypatch.setenv(key, value)
        fs = s3fs.S3FileSystem()
        fs.mkdir("lake")
        fs.put(str(root), "lake/raw", recursive=True)

        summary = clean_articles(input=["s3://lake/raw"], output="s3://lake/clean", shard_mb=0.002)
        assert summary["articles"] == n_docs and summary["accounting_ok"]
        articles = read_articles("lake/clean/articles", filesystem=fs)
        assert articles.num_rows == n_docs
        assert all(path.startswith("s3://lake/raw/") for path in articles.column("input_file").to_pylist())

        again = clean_articles(input=["s3://lake/raw"], output="s3://lake/clean", shard_mb=0.002)
        assert again["files_processed"] == 0
        assert read_articles("lake/clean/articles", filesystem=fs).num_rows == n_docs

        # Files another process writes (a process pool's or Dask's workers) are seen after this process listed
        # the output: no listings cache hides them.
        from cleaners.store import OutputStore

        store = OutputStore.open("s3://lake/clean")
        store.fs.find(store.root)
        s3fs.S3FileSystem(skip_instance_cache=True).pipe(store.path("_state", "probe"), b"written elsewhere")
        assert store.fs.exists(store.path("_state", "probe"))
        assert store.fs.cat(store.path("_state", "probe")) == b"written elsewhere"
        store.fs.rm(store.path("_state", "probe"))

        written = b"".join(fs.cat(path) for path in fs.find("lake/clean"))
        assert secret.encode() not in written, "credentials must never reach the output"
    finally:
        stop(server)


def test_a_failing_shard_is_named_and_a_rerun_completes_it(prefect_backend, corpus, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.clean as flow_module

    root, n_docs = corpus
    out = tmp_path / "out"
    real = flow_module.process_shard
    calls: dict[str, int] = {}

    def flaky(shard, *args, **kwargs):
        calls[shard.shard_id] = calls.get(shard.shard_id, 0) + 1
        if shard.shard_id == doomed:
            raise OSError("simulated storage failure")
        return real(shard, *args, **kwargs)

    shards = flow_module.plan_shards(flow_module.discover([str(root)]), target_bytes=int(0.002 * 2**20),
                                     salt=f"{flow_module.load_rules(None).version}|{flow_module.PIPELINE_VERSION}")
    doomed = shards[1].shard_id
    monkeypatch.setattr(flow_module, "process_shard", flaky)
    monkeypatch.setattr(flow_module.clean_shard_task, "retry_delay_seconds", [0.1, 0.1])
    with pytest.raises(RuntimeError, match=doomed):
        flow_module.clean_articles(input=[str(root)], output=str(out), shard_mb=0.002)
    assert calls[doomed] == 3  # first try and two retries
    committed = read_articles(out / "articles").num_rows
    assert 0 < committed < n_docs

    monkeypatch.setattr(flow_module, "process_shard", real)
    rerun = flow_module.clean_articles(input=[str(root)], output=str(out), shard_mb=0.002)
    assert rerun["files_processed"] == len(shards[1].files)
    articles = read_articles(out / "articles")
    assert articles.num_rows == n_docs
    assert len(set(articles.column("doc_id").to_pylist())) == n_docs
