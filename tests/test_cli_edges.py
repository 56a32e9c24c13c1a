"""The command line at its edges: interruptions, wrong values, missing files, closed pipes.

Every case runs the real command line in a child process, as a user meets it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

HERE = Path(__file__).resolve().parent


def _png_files(root: Path) -> dict[str, tuple[int, int]]:
    """Every PNG under ``root`` by path relative to it: (inode, mtime_ns)."""
    return {
        str(p.relative_to(root)).replace(".partial", ""): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in root.rglob("*.png")
    }


def _assert_whole_pngs(root: Path, synth) -> None:
    """Every file named *.png under root opens and holds the image its name says."""
    from PIL import Image

    images = {"train": synth.arrays["train-images-idx3-ubyte.gz"], "test": synth.arrays["t10k-images-idx3-ubyte.gz"]}
    for path in root.rglob("*.png"):
        split = path.relative_to(root).parts[0].replace(".partial", "")
        with Image.open(path) as im:
            np.testing.assert_array_equal(np.asarray(im), images[split][int(path.stem)])


# --- 1. an interrupted PNG export ----------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_png_export_leaves_no_partial_file_and_resumes(synth, home, tmp_path, sig):
    synth.write(home)
    out = tmp_path / "png"
    args = ["export", "tiny", "--format", "png", "--out", str(out)]
    # Stop inside the 70th PNG: the train split (60) is finished, test is half-way.
    child = subprocess.Popen(
        [sys.executable, str(HERE / "export_child.py"), "70", *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = child.stdout.readline()
    assert line.startswith("PAUSE "), line + child.stderr.read()
    half_written = Path(line.split(" ", 1)[1].strip())
    assert half_written.is_file() and not half_written.name.endswith(".png")  # a temporary name
    child.send_signal(sig)
    _, err = child.communicate(timeout=60)
    child.stdin.close()

    if sig == signal.SIGINT:
        assert child.returncode == 130
        assert err.strip().splitlines() == [
            f"mnistkit: interrupted: the export to {out} is unfinished (test.partial holds what was written); "
            "run the same command again to finish it"
        ]
        assert not half_written.exists()
    else:
        assert child.returncode == -signal.SIGKILL
    # The finished split is in place; the unfinished one is marked as such, never under its final name.
    assert sorted(p.name for p in out.iterdir()) == ["test.partial", "train"]
    assert len(list((out / "train").rglob("*.png"))) == 60
    assert len(list((out / "test.partial").rglob("*.png"))) == 9
    _assert_whole_pngs(out, synth)
    before = _png_files(out)

    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote 80 file(s) to {out}"
    assert sorted(p.name for p in out.iterdir()) == ["test", "train"]
    assert not list(out.rglob("*.tmp"))
    after = _png_files(out)
    assert len(after) == 80
    assert all(after[name] == stamp for name, stamp in before.items())  # finished files were not redone
    _assert_whole_pngs(out, synth)

    # A third run finds everything finished and writes nothing.
    assert run_cli(*args).returncode == 0
    assert _png_files(out) == after


def test_export_refuses_a_split_folder_that_is_not_its_own(synth, home, tmp_path):
    synth.write(home)
    (tmp_path / "png" / "test").mkdir(parents=True)
    (tmp_path / "png" / "test" / "mine.txt").write_text("a user's file")
    proc = run_cli("export", "tiny", "--format", "png", "--out", tmp_path / "png", "--split", "test")
    assert proc.returncode == 2
    assert proc.stderr == (
        f"mnistkit: error: {tmp_path / 'png' / 'test'} already exists and is not a finished PNG export of tiny test; "
        "delete it or export to another folder\n"
    )
    assert (tmp_path / "png" / "test" / "mine.txt").read_text() == "a user's file"
