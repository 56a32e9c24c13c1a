"""The command line attacked as a hurried user would: defects found by trying, each fixed.

Every case runs the real command line in a child process.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import cli_argv, run_cli

HERE = Path(__file__).resolve().parent

# ``mnistkit`` knowing the synthetic "tiny" dataset, that stops after saving its K-th PNG (whole,
# under its final name): prints ``PAUSE`` and waits for a line on stdin before going on.
_PAUSING_CHILD = """
import sys
sys.path.insert(0, {here!r})
from helpers import make_synthetic
from PIL import Image
from mnistkit import cli, registry
registry.DATASETS["tiny"] = make_synthetic().dataset
stop_at, calls, original = int(sys.argv[1]), 0, Image.Image.save
def save(self, *args, **kwargs):
    global calls
    original(self, *args, **kwargs)
    calls += 1
    if calls == stop_at:
        print("PAUSE", flush=True)
        sys.stdin.readline()
Image.Image.save = save
sys.exit(cli.main(sys.argv[2:]))
"""


def test_two_png_exports_to_one_folder_both_finish(synth, home, tmp_path):
    # Two terminals, one command: the second used to write into the first one's .partial folder,
    # and the one finishing second found it renamed under its feet ("cannot write ...", exit 1).
    synth.write(home)
    out = tmp_path / "png"
    args = ["export", "tiny", "--format", "png", "--out", str(out)]
    first = subprocess.Popen(
        [sys.executable, "-c", _PAUSING_CHILD.format(here=str(HERE)), "30", *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert first.stdout.readline().strip() == "PAUSE"  # half-way through train.partial
    log = tmp_path / "second.log"
    with open(log, "w") as err_file:  # --debug: the second says when it waits for the first
        second = subprocess.Popen(cli_argv("--debug", *args), stdout=subprocess.PIPE, stderr=err_file, text=True)
    deadline = time.monotonic() + 60
    while (second.poll() is None and "waiting for another export" not in log.read_text()
           and time.monotonic() < deadline):
        time.sleep(0.01)  # polls a real condition: the second export ran through, or waits for the first
    first.stdin.write("\n")
    first.stdin.flush()
    out1, err1 = first.communicate(timeout=120)
    out2, _ = second.communicate(timeout=120)
    err2 = log.read_text()
    assert (first.returncode, err1) == (0, ""), err1
    assert second.returncode == 0 and "error" not in err2, err2
    assert "waiting for another export" in err2
    assert out1.strip() == out2.strip() == f"wrote 80 file(s) to {out}"
    assert sorted(p.name for p in out.iterdir()) == [".mnistkit-export.lock", "test", "train"]
    from PIL import Image

    images = {"train": synth.arrays["train-images-idx3-ubyte.gz"], "test": synth.arrays["t10k-images-idx3-ubyte.gz"]}
    labels = {"train": synth.arrays["train-labels-idx1-ubyte.gz"], "test": synth.arrays["t10k-labels-idx1-ubyte.gz"]}
    for split in ("train", "test"):
        pngs = sorted((out / split).rglob("*.png"))
        assert len(pngs) == len(images[split])
        for path in pngs:
            assert int(path.parent.name) == labels[split][int(path.stem)]
            with Image.open(path) as im:
                np.testing.assert_array_equal(np.asarray(im), images[split][int(path.stem)])
        assert not [p for p in (out / split).rglob("*") if p.is_file() and p.suffix != ".png"
                    and p.name != ".mnistkit-export.json"]
