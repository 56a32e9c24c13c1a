"""``mnistkit export`` in a child process that stops in the middle of writing a PNG.

Run by tests/test_cli_edges.py::

    python export_child.py K <mnistkit arguments...>

The K-th PNG the export saves is written half-way, then the process prints
``PAUSE <path>`` and blocks reading stdin, for the parent to send it SIGINT (or
SIGKILL) there: the point where an interrupted export used to leave a truncated
PNG under its final name.  Everything else is the real command line.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import make_synthetic
from PIL import Image

from mnistkit import cli, registry

registry.DATASETS["tiny"] = make_synthetic().dataset
stop_at = int(sys.argv[1])
calls = 0
original = Image.Image.save


def save(self, fp, format=None, **params):  # noqa: A002 - PIL's own parameter name
    global calls
    calls += 1
    if calls != stop_at:
        return original(self, fp, format, **params)
    buf = io.BytesIO()
    original(self, buf, format or "PNG", **params)
    with open(fp, "wb") as fh:
        fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        fh.flush()
        print(f"PAUSE {fp}", flush=True)
        sys.stdin.readline()  # blocks until the parent signals this process
    raise AssertionError("the parent was to stop this process")


Image.Image.save = save
sys.exit(cli.main(sys.argv[2:]))
