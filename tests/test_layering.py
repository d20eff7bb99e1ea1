"""The library is plain Python: cleaners/ never imports Prefect (flows/ are thin wrappers over it)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_the_cleaners_package_never_imports_prefect() -> None:
    modules = sorted(f"cleaners.{path.stem}" for path in (ROOT / "cleaners").glob("*.py") if path.stem != "__init__")
    assert "cleaners.shard" in modules and "cleaners.store" in modules
    script = ("import importlib, sys\n"
              f"for name in {modules!r}: importlib.import_module(name)\n"
              "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]", f"imported by cleaners/: {done.stdout.strip()}"
