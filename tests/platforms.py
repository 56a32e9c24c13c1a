"""What the test platform lacks: Windows has no fork, no SIGKILL or POSIX signals to other processes, no rlimits.

Tests built on those skip there with the reason; ``tests/test_windows.py`` covers what Windows users meet
instead (files in use, killed lock holders via ``Popen.kill``, long paths).
"""

from __future__ import annotations

import sys

import pytest

WINDOWS = sys.platform == "win32"


def posix_only(what: str):
    """Skip on Windows, which has no ``what``."""
    return pytest.mark.skipif(WINDOWS, reason=f"Windows has no {what}")
