"""The ``daily`` and ``adhoc`` deployments: declared offline, then served and run against a real server.

The end-to-end test starts its own ``prefect server`` (fresh ``PREFECT_HOME`` under ``tmp_path``, a free
loopback port), serves ``flows.deployments`` and triggers a run with the real ``prefect deployment run
--watch`` CLI, as an operator would. It does not use the ``prefect_backend`` harness fixture.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
from prefect.deployments.runner import EntrypointType
from prefect.utilities.schema_tools import ValidationError, validate

from flows.deployments import DeploymentConfigError, deployments
from tests.bad_inputs import write_article_corpus
from tests.conftest import ROOT

ENV_VARS = ("BOILERSTRIP_DAILY_CRON", "BOILERSTRIP_DAILY_TIMEZONE", "BOILERSTRIP_DAILY_INPUT",
            "BOILERSTRIP_DAILY_OUTPUT", "BOILERSTRIP_SERVE_LIMIT", "BOILERSTRIP_TASK_RUNNER",
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY")


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _by_name() -> dict[str, Any]:
    return {d.name: d for d in deployments()}


def _schema(deployment: Any) -> dict[str, Any]:
    return deployment._parameter_openapi_schema.model_dump()


# --- offline: the declarations ---------------------------------------------------------------------------


def test_deployments_declared_offline(clean_env: Path) -> None:
    deps = _by_name()
    assert set(deps) == {"daily", "adhoc"}
    daily, adhoc = deps["daily"], deps["adhoc"]

    for d in (daily, adhoc):
        assert d.flow_name == "clean-articles"
        assert d.entrypoint == "flows.clean.clean_articles"
        assert d.entrypoint_type == EntrypointType.MODULE_PATH
        assert d.enforce_parameter_schema
        schema = _schema(d)
        assert {"input", "output"} <= set(schema["properties"])
        assert {"input", "output"} <= set(schema.get("required", []))

    [schedule] = daily.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 3 * * *", "UTC")
    assert schedule.active
    assert not adhoc.schedules
    assert daily.parameters == {"input": [str(clean_env / "data" / "raw")], "output": str(clean_env / "data" / "clean")}
    assert adhoc.parameters == {}


def test_parameters_are_checked_by_the_flow_schema(clean_env: Path) -> None:
    """The same check the server makes when a run is created (deployment defaults merged with ``-p``)."""
    deps = _by_name()
    daily, adhoc = _schema(deps["daily"]), _schema(deps["adhoc"])
    validate(deps["daily"].parameters, daily, raise_on_error=True)
    validate({"input": "/data/in", "output": "/data/out"}, adhoc, raise_on_error=True)
    validate({"input": ["/a", "/b"], "output": "/o"}, adhoc, raise_on_error=True)
    for bad in ({}, {"input": ["/a"]}, {"input": 3, "output": "/o"}, {"input": "/a", "output": ["/o"]}):
        with pytest.raises(ValidationError):
            validate(bad, adhoc, raise_on_error=True)
    if "shard_mb" in adhoc["properties"]:
        with pytest.raises(ValidationError, match="shard_mb"):
            validate({"input": "/a", "output": "/o", "shard_mb": 0}, adhoc, raise_on_error=True)


def test_daily_settings_from_environment(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOILERSTRIP_DAILY_CRON", "30 1 * * 1-5")
    monkeypatch.setenv("BOILERSTRIP_DAILY_TIMEZONE", "Europe/Paris")
    monkeypatch.setenv("BOILERSTRIP_DAILY_INPUT", '["feeds/a", "/abs/b"]')
    monkeypatch.setenv("BOILERSTRIP_DAILY_OUTPUT", "lake/clean")
    daily = _by_name()["daily"]
    [schedule] = daily.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("30 1 * * 1-5", "Europe/Paris")
    assert daily.parameters == {"input": [str(clean_env / "feeds" / "a"), "/abs/b"],
                                "output": str(clean_env / "lake" / "clean")}

    monkeypatch.setenv("BOILERSTRIP_DAILY_INPUT", "/srv/raw")
    assert _by_name()["daily"].parameters["input"] == ["/srv/raw"]

    # Object storage: fsspec URLs stay as given (not made into local folders).
    monkeypatch.setenv("BOILERSTRIP_DAILY_INPUT", '["s3://bucket/raw", "feeds/a"]')
    monkeypatch.setenv("BOILERSTRIP_DAILY_OUTPUT", "s3://bucket/clean")
    assert _by_name()["daily"].parameters == {"input": ["s3://bucket/raw", str(clean_env / "feeds" / "a")],
                                              "output": "s3://bucket/clean"}


@pytest.mark.parametrize(("name", "value", "message"), [
    ("BOILERSTRIP_DAILY_CRON", "every day", "Invalid cron"),
    ("BOILERSTRIP_DAILY_CRON", "0 3 * *", "Invalid cron"),
    ("BOILERSTRIP_DAILY_TIMEZONE", "Mars/Olympus", "BOILERSTRIP_DAILY"),
    ("BOILERSTRIP_DAILY_INPUT", "[not json", "not a JSON list"),
    ("BOILERSTRIP_DAILY_INPUT", "[]", "one or more"),
    ("BOILERSTRIP_DAILY_INPUT", "[1, 2]", "one or more"),
    ("BOILERSTRIP_TASK_RUNNER", "thread", "use threads, processes or dask"),
    ("BOILERSTRIP_SERVE_LIMIT", "two", "whole number"),
    ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "0", "whole number"),
])
def test_bad_settings_are_refused_before_serving(clean_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                 name: str, value: str, message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(DeploymentConfigError, match=message):
        deployments()


# --- end to end: a real server, serve, the real CLI ------------------------------------------------------

STARTUP_TIMEOUT = 180  # a cold server (migrations) takes ~10 s on an idle 2-core box; CI boxes are not idle
RUN_TIMEOUT = 300


def _prefect_cli() -> list[str]:
    local = Path(sys.executable).with_name("prefect")
    if local.exists():
        return [str(local)]
    found = shutil.which("prefect")
    return [found] if found else [sys.executable, "-m", "prefect"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM the process group (the process and any child it left), SIGKILL it after ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):  # stragglers of the group, or a process that ignored SIGTERM
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _wait_for(what: str, check: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path,
              timeout: float = STARTUP_TIMEOUT) -> float:
    started = time.monotonic()
    while not check():
        if proc.poll() is not None:
            pytest.fail(f"{what}: the process exited with {proc.returncode}\n{_tail(log)}")
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what}: not after {timeout} s\n{_tail(log)}")
        time.sleep(0.5)
    return time.monotonic() - started


@pytest.fixture()
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in reversed(started):  # serve first (it pauses its deployments through the server), then the server
            _stop(proc)


@pytest.mark.slow
def test_served_deployment_runs_from_the_cli(tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    t0 = time.monotonic()
    home, raw, out = tmp_path / "prefect-home", tmp_path / "raw", tmp_path / "out"
    home.mkdir()
    shutil.copytree(ROOT / "data" / "raw", raw)
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}  # nothing from a harness or CI
    env.update(PREFECT_HOME=str(home), PREFECT_API_URL=api, DO_NOT_TRACK="1",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_RUNNER_POLL_FREQUENCY="1",
               PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2")  # the scheduler's pass every 2 s, not 60
    for name in ENV_VARS:
        env.pop(name, None)
    prefect = _prefect_cli()
    timings: dict[str, float] = {}

    server_log = home / "server.log"
    with server_log.open("wb") as log:
        processes.append(subprocess.Popen(
            [*prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui", "--analytics-off"],
            env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    timings["server ready"] = _wait_for("server /api/ready", lambda: _http("GET", f"{api}/ready")[0] == 200,
                                        processes[0], server_log)

    serve_log = home / "serve.log"
    with serve_log.open("wb") as log:
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "flows.deployments"],
            env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    adhoc_url = f"{api}/deployments/name/clean-articles/adhoc"
    timings["deployments registered"] = _wait_for("clean-articles/adhoc registered",
                                                  lambda: _http("GET", adhoc_url)[0] == 200, processes[1], serve_log)

    # What serve registered: daily on its cron in UTC, adhoc unscheduled, both enforcing the parameter schema.
    _, daily = _http("GET", f"{api}/deployments/name/clean-articles/daily")
    _, adhoc = _http("GET", adhoc_url)
    assert [(s["schedule"]["cron"], s["schedule"]["timezone"], s["active"]) for s in daily["schedules"]] == [
        ("0 3 * * *", "UTC", True)]
    assert set(daily["parameters"]) == {"input", "output"}
    assert adhoc["schedules"] == [] and adhoc["parameters"] == {}
    assert daily["enforce_parameter_schema"] and adhoc["enforce_parameter_schema"]
    # The server's scheduler creates the daily deployment's upcoming runs (with an incompatible SQLAlchemy it
    # failed on every pass, and the schedule never ran while everything else worked).
    scheduled = {"deployments": {"id": {"any_": [daily["id"]]}},
                 "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}}
    timings["daily runs scheduled"] = _wait_for(
        "the daily deployment's scheduled runs", lambda: _http("POST", f"{api}/flow_runs/count", scheduled)[1] > 0,
        processes[0], server_log, timeout=60)

    def cli(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefect, *args], env=env, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)

    # A parameter the flow's schema refuses: the server refuses the run, nothing is created, the CLI exits 1.
    t = time.monotonic()
    bad = cli("deployment", "run", "clean-articles/adhoc", "-p", f"input={json.dumps([str(raw)])}",
              "-p", "output=3", timeout=120)
    timings["refused run (cli)"] = time.monotonic() - t
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert _http("POST", f"{api}/flow_runs/count", {"deployments": {"id": {"any_": [adhoc["id"]]}}}) == (200, 0)

    # The real run, watched until it ends.
    t = time.monotonic()
    run = cli("deployment", "run", "clean-articles/adhoc",
              "-p", f"input={json.dumps([str(raw)])}", "-p", f"output={json.dumps(str(out))}",
              "--watch", "--watch-interval", "1", "--watch-timeout", str(RUN_TIMEOUT), timeout=RUN_TIMEOUT + 60)
    timings["run --watch (cli)"] = time.monotonic() - t
    report = f"{run.stdout}\n{run.stderr}\n--- serve log\n{_tail(serve_log)}"
    assert run.returncode == 0, report
    assert ds.dataset(out / "articles", format="parquet").count_rows() == 2, report
    assert ds.dataset(out / "rejects", format="parquet").count_rows() == 0, report

    # The run and its summary artifact, as the UI shows them.
    match = re.search(r"UUID: ([0-9a-f-]{36})", run.stdout)
    assert match, report
    status, flow_run = _http("GET", f"{api}/flow_runs/{match[1]}")
    assert status == 200 and flow_run["state_type"] == "COMPLETED"
    assert flow_run["parameters"] == {"input": [str(raw)], "output": str(out)}
    status, artifacts = _http("POST", f"{api}/artifacts/filter", {
        "artifacts": {"key": {"any_": ["clean-articles-summary"]}, "flow_run_id": {"any_": [match[1]]}}})
    assert status == 200 and len(artifacts) == 1 and artifacts[0]["type"] == "markdown"
    assert "inputs: **2** = articles **2** + rejects **0**" in artifacts[0]["data"]

    # Serve stopped with a run in flight still pauses both deployments, and the daily one's scheduled runs go (Prefect's
    # own pause was cancelled then, and one deployment or the other stayed live with nothing to run it).
    # 1,000 articles: the run lasts long enough to be stopped while it runs.
    many = tmp_path / "many"
    write_article_corpus(many, 1000, kb=2.0)
    started = cli("deployment", "run", "clean-articles/adhoc", "-p", f"input={json.dumps([str(many)])}",
                  "-p", f"output={json.dumps(str(tmp_path / 'out2'))}", timeout=120)
    match = re.search(r"UUID: ([0-9a-f-]{36})", started.stdout)
    assert match, started.stdout + started.stderr
    _wait_for("the second run running", lambda: _http("GET", f"{api}/flow_runs/{match[1]}")[1]["state_type"]
              == "RUNNING", processes[1], serve_log, timeout=RUN_TIMEOUT)
    _stop(processes[1], timeout=90)  # the group's SIGTERM reaches the run in flight too (~60 s on a locked SQLite)
    for name in ("daily", "adhoc"):
        assert _http("GET", f"{api}/deployments/name/clean-articles/{name}")[1]["paused"], f"{name}\n{_tail(serve_log)}"
    assert _http("POST", f"{api}/flow_runs/count", scheduled)[1] == 0, _tail(serve_log)

    timings["total"] = time.monotonic() - t0
    print("e2e timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))


def test_serve_stopped_by_sigterm_marks_its_runs_in_flight_crashed(prefect_backend) -> None:
    """The runs serve was running when it got SIGTERM are marked Crashed with the reason at once (their own processes
    leave that to serve); a run already finished keeps its state."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Completed, Running

    from flows.deployments import STOPPED_WITH_SERVE, crash_runs

    @flow(name="stub-for-crash-runs")
    def stub() -> None:
        return None

    with get_client(sync_client=True) as client:
        running = client.create_flow_run(stub, state=Running())
        finished = client.create_flow_run(stub, state=Completed())
        assert crash_runs([running.id, finished.id]) == [running.id]
        after = client.read_flow_run(running.id).state
        assert (after.name, after.message) == ("Crashed", STOPPED_WITH_SERVE)
        assert client.read_flow_run(finished.id).state.name == "Completed"


def test_sigterm_to_serve_alone_reaches_the_runs_in_flight(tmp_path: Path) -> None:
    """`kill -TERM <serve pid>` (not its process group): serve passes the signal on to its flow-run processes before
    Prefect's handler stops it, and waits for them (then marks their runs Crashed: the test above). In a process of
    its own: the handler signals every child of the process it runs in."""
    script = tmp_path / "serve_stub.py"
    script.write_text(
        "import subprocess, sys\n"
        "from prefect.runner import Runner\n"
        "from flows.deployments import forward_sigterm_to_runs\n"
        "forward_sigterm_to_runs(); forward_sigterm_to_runs()  # once, however often called\n"
        "run = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "# The handler reads the runs in flight here (flows.deployments): fails if Prefect renames it.\n"
        "assert isinstance(Runner(name='probe')._process_manager._process_map, dict)\n"
        "try:\n"
        "    Runner(name='stub').handle_sigterm()  # Prefect's part then stops serve (here: a runner not started)\n"
        "except (SystemExit, RuntimeError):\n"
        "    pass\n"
        "print(run.wait(timeout=20))\n")
    env = {**os.environ, "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(-signal.SIGTERM), done.stdout + done.stderr[-2000:]
