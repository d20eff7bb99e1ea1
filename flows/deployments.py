"""Deployments of the ``clean-articles`` flow, served by one long-lived process (Prefect's ``serve()``).

Two deployments, ``clean-articles/daily`` (cron) and ``clean-articles/adhoc`` (no schedule: triggered with
``prefect deployment run``). ``python -m flows.deployments`` registers both with the server named by
``PREFECT_API_URL`` and runs their flow runs, each in a subprocess, until stopped (SIGTERM or Ctrl-C;
stopping pauses the daily schedule, serving again resumes it). No work pool, no worker, no YAML.

Environment (read when ``deployments()`` is called, i.e. when serving starts):

* ``BOILERSTRIP_DAILY_CRON``: the daily schedule, default ``0 3 * * *``;
* ``BOILERSTRIP_DAILY_TIMEZONE``: its time zone, default ``UTC``;
* ``BOILERSTRIP_DAILY_INPUT``: the daily run's ``input``, one path or a JSON list of paths, default ``data/raw``;
* ``BOILERSTRIP_DAILY_OUTPUT``: the daily run's ``output``, default ``data/clean``;
* ``BOILERSTRIP_SERVE_LIMIT``: most flow runs this process runs at the same time, default 2;
* ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``: seconds between run heartbeats, default 30 here; runs that stop
  beating are marked Crashed by the automation in ``flows.zombies``.

Relative daily paths are made absolute against the working folder of the serving process. Parameters
given to ``prefect deployment run -p`` are passed as they are: a flow run's working folder is the one
``serve`` was started in, so prefer absolute paths there too.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import signal
import sys
import time
from typing import Any

from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.exceptions import ParameterTypeError, SignatureMismatchError

from flows.clean import clean_articles

DAILY_CRON = "0 3 * * *"
DAILY_TIMEZONE = "UTC"
DAILY_INPUT = "data/raw"
DAILY_OUTPUT = "data/clean"
SERVE_LIMIT = 2
HEARTBEAT_SECONDS = 30  # Prefect's minimum; a dead run is marked Crashed after three missed beats
TAGS = ["boilerstrip"]


class DeploymentConfigError(ValueError):
    """An environment setting for the deployments is malformed."""


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _input_paths(value: str) -> list[str]:
    """One path, or a JSON list of paths, each made absolute."""
    if value.startswith("["):
        try:
            paths = json.loads(value)
        except json.JSONDecodeError as exc:
            raise DeploymentConfigError(f"BOILERSTRIP_DAILY_INPUT is not a JSON list: {exc}") from exc
        if not paths or not all(isinstance(p, str) and p for p in paths):
            raise DeploymentConfigError("BOILERSTRIP_DAILY_INPUT must list one or more non-empty paths")
    else:
        paths = [value]
    return [_absolute(p) for p in paths]


def _absolute(path: str) -> str:
    """A local path made absolute (the run's working folder may differ); an fsspec URL (``s3://...``) as given."""
    return path if "://" in path else os.path.abspath(path)


def daily_parameters() -> dict[str, Any]:
    """Default parameters of the daily run (only ``input`` and ``output``; the flow's defaults do the rest)."""
    return {
        "input": _input_paths(_env("BOILERSTRIP_DAILY_INPUT", DAILY_INPUT)),
        "output": _absolute(_env("BOILERSTRIP_DAILY_OUTPUT", DAILY_OUTPUT)),
    }


def deployments() -> list[RunnerDeployment]:
    """The ``daily`` and ``adhoc`` deployments. Builds objects only: no server is contacted."""
    try:
        schedule = CronSchedule(cron=_env("BOILERSTRIP_DAILY_CRON", DAILY_CRON),
                                timezone=_env("BOILERSTRIP_DAILY_TIMEZONE", DAILY_TIMEZONE))
    except ValueError as exc:  # pydantic's ValidationError included: a bad cron string or time zone
        raise DeploymentConfigError(f"BOILERSTRIP_DAILY_CRON / BOILERSTRIP_DAILY_TIMEZONE: {exc}") from exc
    runner = os.environ.get("BOILERSTRIP_TASK_RUNNER")
    if runner and runner not in ("threads", "processes", "dask"):
        raise DeploymentConfigError(f"BOILERSTRIP_TASK_RUNNER={runner!r}: use threads, processes or dask")
    for name in ("BOILERSTRIP_SERVE_LIMIT", "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"):
        value = os.environ.get(name)
        if value is not None and not (value.strip().isdigit() and int(value) >= 1):
            raise DeploymentConfigError(f"{name}={value!r}: a whole number of at least 1")
    parameters = daily_parameters()
    # Same check the server applies to a run (pydantic, from the flow signature): fail at start, not at 03:00.
    try:
        clean_articles.validate_parameters(parameters)
    except (ParameterTypeError, SignatureMismatchError) as exc:
        raise DeploymentConfigError(f"daily parameters {parameters} do not fit the flow: {exc}") from exc
    # MODULE_PATH ("flows.clean.clean_articles"): a run imports the installed package, whatever its cwd.
    common: dict[str, Any] = {"entrypoint_type": EntrypointType.MODULE_PATH, "tags": TAGS}
    return [
        clean_articles.to_deployment(name="daily", schedules=[schedule], parameters=parameters, **common),
        clean_articles.to_deployment(name="adhoc", **common),
    ]


def terminate_children() -> list[int]:
    """SIGTERM this process's child processes (Linux: /proc), and return their PIDs: the flow runs serve started."""
    pids: list[int] = []
    for listing in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        with contextlib.suppress(OSError), open(listing) as children:
            pids += [int(pid) for pid in children.read().split()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    return pids


# How long serve, stopped by SIGTERM, waits for its runs' processes to end before it marks the runs Crashed.
STOP_GRACE_SECONDS = 10.0
STOPPED_WITH_SERVE = ("serve was stopped (SIGTERM) while this run was in flight, and its process with it; "
                      "the shards it committed are kept, run it again for the rest")


def _running(pid: int) -> bool:
    """Whether a process is alive (a zombie, ended but not yet reaped, is not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def crash_runs(flow_run_ids: list[Any], message: str = STOPPED_WITH_SERVE) -> list[Any]:
    """Mark the given flow runs Crashed with ``message``, those not in a final state yet; returns the ones marked.
    Serve waits for its runs' processes first, and a run stopped by the SIGTERM it passed on reports Crashed itself
    (checked live: "Execution was aborted by a termination signal"); this marks those that did not in time. Before
    serve waited, it exited at once and the runs stayed Running until the zombie automation, ~2 min."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    marked: list[Any] = []
    with get_client(sync_client=True) as client:
        for run_id in flow_run_ids:
            try:
                state = client.read_flow_run(run_id).state
                if state is None or not state.is_final():
                    client.set_flow_run_state(run_id, Crashed(message=message), force=True)
                    marked.append(run_id)
            except Exception as exc:  # the server gone too: the zombie automation marks it later
                print(f"could not mark flow run {run_id} Crashed: {type(exc).__name__}: {exc}", file=sys.stderr)
    return marked


def forward_sigterm_to_runs() -> None:
    """On SIGTERM to serve alone (``kill -TERM <serve pid>``, not its process group), pass it on to the runs in flight
    before Prefect's own handler stops serve, wait for them to end (up to ``STOP_GRACE_SECONDS``), and mark them
    Crashed with the reason. Otherwise a run ended without a word and stayed Running until the zombie automation
    marked it Crashed, ~2 min later."""
    from prefect.runner import Runner

    prefects_own = Runner.handle_sigterm
    if getattr(prefects_own, "forwards_to_runs", False):
        return

    def handle_sigterm(self: Runner, *args: Any, **kwargs: Any) -> None:
        in_flight = list(getattr(getattr(self, "_process_manager", None), "_process_map", {}))
        pids = terminate_children()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while any(map(_running, pids)) and time.monotonic() < deadline:
            time.sleep(0.2)
        if in_flight:
            crash_runs(in_flight)
        prefects_own(self, *args, **kwargs)

    handle_sigterm.forwards_to_runs = True  # type: ignore[attr-defined]
    Runner.handle_sigterm = handle_sigterm  # type: ignore[method-assign]


def main() -> None:
    from prefect import serve

    from flows.zombies import ensure_zombie_automation

    served = deployments()  # checks every setting first: a bad one stops serve here, before anything is registered
    limit = int(_env("BOILERSTRIP_SERVE_LIMIT", str(SERVE_LIMIT)))
    # Heartbeats from every run this process starts, and an automation that crashes runs whose heartbeats
    # stop (a SIGKILLed run would otherwise stay Running forever).
    heartbeat = int(_env("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(HEARTBEAT_SECONDS)))
    os.environ["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] = str(heartbeat)
    ensure_zombie_automation(heartbeat)
    forward_sigterm_to_runs()
    try:
        serve(*served, limit=limit)
    finally:
        pause(served)


def pause(served: list[RunnerDeployment]) -> None:
    """Pause the served deployments (the server then drops their upcoming scheduled runs). Prefect's serve does it as
    it stops, but not when it is stopped with a run in flight: its stop task is cancelled ("coroutine 'Runner.astop'
    was never awaited") and the daily deployment kept its scheduled runs with nothing left to run them. Pausing a
    paused deployment changes nothing. A failure is printed, not raised: serve is stopping anyway."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            for deployment in served:
                found = client.read_deployment_by_name(f"{clean_articles.name}/{deployment.name}")
                client.pause_deployment(found.id)
        print(f"paused {', '.join(f'{clean_articles.name}/{d.name}' for d in served)}", flush=True)
    except Exception as exc:  # the server may be gone too
        print(f"warning: could not pause the deployments ({type(exc).__name__}: {exc}); start serve again and "
              "stop it with no run in flight, or pause the daily schedule: `prefect deployment schedule ls "
              f"{clean_articles.name}/daily`, then `prefect deployment schedule pause {clean_articles.name}/daily "
              "<schedule id>`", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
