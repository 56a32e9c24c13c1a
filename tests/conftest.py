from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import LONG, RELIABILITY_LOG, Server, make_synthetic

import winsem
from mnistkit import datadist, registry


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Every test gets its own data folder and no MNISTKIT_* or proxy settings from outside."""
    for key in list(os.environ):
        if key in (LONG, RELIABILITY_LOG, winsem.ENV):  # settings of the test run itself, not of mnistkit
            continue
        if key.startswith("MNISTKIT_") or key.lower() in {"http_proxy", "https_proxy", "all_proxy"}:
            monkeypatch.delenv(key, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("MNISTKIT_HOME", str(home))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    # Data distributions pip-installed in the test environment would be every dataset's first source:
    # tests see none unless they install their own (tests/test_data_distributions.py).
    monkeypatch.setattr(datadist, "installed", lambda dataset=None: [])
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    return home


@pytest.fixture
def home(isolated_env):
    return isolated_env


@pytest.fixture
def synth(monkeypatch):
    """A tiny dataset called "tiny", registered for the duration of the test."""
    data = make_synthetic()
    monkeypatch.setitem(registry.DATASETS, data.dataset.name, data.dataset)
    return data


@pytest.fixture
def server():
    with Server() as srv:
        yield srv


class Tally:
    """Counts the cases one torture or fuzz test ran, by outcome, for ``tools/reliability.py``."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()

    def add(self, outcome: str, n: int = 1) -> None:
        self.outcomes[outcome] += n


@pytest.fixture
def tally(request):
    """A :class:`Tally`; written to ``$MNISTKIT_RELIABILITY_LOG`` (JSON lines) when that is set."""
    counts = Tally()
    yield counts
    path = os.environ.get(RELIABILITY_LOG)
    if path and counts.outcomes:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"test": request.node.nodeid, "outcomes": dict(counts.outcomes)}) + "\n")


@pytest.fixture(autouse=True)
def emulated_windows(isolated_env, monkeypatch):
    """With MNISTKIT_EMULATE_WINDOWS=1, every test runs under Windows file semantics (tests/winsem.py)."""
    if os.environ.get(winsem.ENV) != "1":
        yield False
        return
    if not winsem.supported():
        pytest.skip("MNISTKIT_EMULATE_WINDOWS=1 needs /proc (Linux) to see open and mapped files")
    monkeypatch.setenv(winsem.PIDS_ENV, str(os.getpid()))  # CLI children see this process's maps as held
    deactivate = winsem.activate()
    yield True
    deactivate()


@pytest.fixture
def windows_semantics(isolated_env, monkeypatch):
    """Windows file semantics for this test (and the CLI children it starts), whatever the environment."""
    if sys.platform == "win32":  # the real thing
        yield
        return
    if not winsem.supported():
        pytest.skip("the emulation needs /proc (Linux) to see open and mapped files")
    if os.environ.get(winsem.ENV) == "1":  # already active (emulated_windows)
        yield
        return
    monkeypatch.setenv(winsem.ENV, "1")
    monkeypatch.setenv(winsem.PIDS_ENV, str(os.getpid()))
    deactivate = winsem.activate()
    yield
    deactivate()
