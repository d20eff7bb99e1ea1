"""Shared test set-up: no telemetry, Prefect state in a temp folder, a golden-file update flag."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import PrefectServer, prefect_server

os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
if "PREFECT_HOME" not in os.environ:
    _home = tempfile.mkdtemp(prefix="boilerstrip-prefect-")
    os.environ["PREFECT_HOME"] = _home
    atexit.register(shutil.rmtree, _home, ignore_errors=True)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite the expected files under tests/golden from the current output")


@pytest.fixture(scope="session")
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(scope="session")
def prefect_backend() -> Iterator[None]:
    """One temporary Prefect server for the whole session (a fresh one per test costs ~10 s)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120), \
         temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """One ``prefect server start`` on a free loopback port for the session's flow subprocesses (crash safety,
    concurrency, security): a server start costs ~20 s, once per module before. Tests tell their runs apart by
    their output folder."""
    with prefect_server(tmp_path_factory.mktemp("server")) as running:
        yield running


@pytest.fixture(scope="session")
def rules():
    from cleaners import load_rules

    return load_rules()


@pytest.fixture(scope="session")
def judge():
    """The shipped line classifier: tests of cleaning output run the product's full configuration."""
    from cleaners.linemodel import default_judge

    return default_judge()
