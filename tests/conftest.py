from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import Server, make_synthetic  # noqa: E402

from mnistkit import registry  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Every test gets its own data folder and no MNISTKIT_* or proxy settings from outside."""
    for key in list(os.environ):
        if key.startswith("MNISTKIT_") or key.lower() in {"http_proxy", "https_proxy", "all_proxy"}:
            monkeypatch.delenv(key, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("MNISTKIT_HOME", str(home))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
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
