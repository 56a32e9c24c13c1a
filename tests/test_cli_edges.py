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


# --- 3. no network: every missing file, exit 3, each source once ------------------------------------


def test_no_source_works_lists_every_file_once_with_exit_3(synth, home, tmp_path):
    from helpers import Server

    with Server() as first, Server() as second:  # both answer 404 to everything
        env = {**os.environ, "MNISTKIT_MIRROR": f"{first.url},{second.url}"}
        proc = run_cli("export", "tiny", "--format", "npz", "--out", tmp_path / "out", env=env)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == (
        "mnistkit: error: tiny: 4 file(s) missing, and no source could provide them: train-images-idx3-ubyte.gz, "
        "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"
    )
    # Each source once, for all four files; no WARNING line repeats what the error says.
    assert lines[1:3] == [f"  {first.url}/tiny/: HTTP 404 Not Found", f"  {second.url}/tiny/: HTTP 404 Not Found"]
    assert lines[3].startswith("What to do: check the network, or set MNISTKIT_MIRROR") and len(lines) == 4
    assert not (tmp_path / "out").exists()  # nothing made for an export that could not start


def test_a_source_that_fails_before_one_that_works_is_one_warning(synth, home, tmp_path):
    from helpers import Server

    with Server() as broken, Server() as good:
        good.serve_dataset(synth)
        env = {**os.environ, "MNISTKIT_MIRROR": f"{broken.url},{good.url}"}
        proc = run_cli("download", "tiny", env=env)
    assert proc.returncode == 0, proc.stderr
    warnings = proc.stderr.splitlines()
    assert len(warnings) == 4 and all(w.startswith("mnistkit: WARNING: got ") for w in warnings)
    assert all(f"after 1 source(s) failed: {broken.url}/tiny/" in w and "HTTP 404" in w for w in warnings)


def test_download_lists_every_missing_file_and_a_shared_archive_once(home):
    env = {**os.environ, "MNISTKIT_OFFLINE": "1"}
    proc = run_cli("download", "mnist", "kmnist", "emnist-digits", "emnist-letters", env=env)
    assert proc.returncode == 3
    errors = [line for line in proc.stderr.splitlines() if line.startswith("mnistkit: ")]
    assert errors == [
        "mnistkit: error: mnist: 4 file(s) missing: train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (offline mode: the network is not used)",
        "mnistkit: error: kmnist: 4 file(s) missing: train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (offline mode: the network is not used)",
        "mnistkit: error: emnist-digits: 1 file(s) missing: gzip.zip (offline mode: the network is not used)",
        "mnistkit: error: emnist-letters: missing the same file(s) as emnist-digits, listed above",
    ]
    assert proc.stderr.count("biometrics.nist.gov") == 1


def test_library_error_lists_every_file_and_has_no_thread_pool_frames(synth, home):
    import traceback

    from mnistkit import FilesUnavailableError, MissingFilesError, load_mnist

    with pytest.raises(MissingFilesError) as info:
        load_mnist(dataset="tiny", offline=True)
    assert len(info.value.missing) == 4
    from helpers import Server

    with Server() as empty, pytest.raises(FilesUnavailableError) as info:
        load_mnist(dataset="tiny", mirrors=empty.url)
    assert len(info.value.missing) == 4 and isinstance(info.value, MissingFilesError)
    # A bad file met in a worker thread: the traceback runs from the caller into the store.
    synth.write(home)
    bad = home / "tiny" / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-40])
    with pytest.raises(Exception) as info:
        load_mnist(dataset="tiny", offline=True)
    frames = traceback.extract_tb(info.value.__traceback__)
    assert not [f for f in frames if "concurrent" in f.filename]
    assert frames[0].name == "test_library_error_lists_every_file_and_has_no_thread_pool_frames"
    assert any(f.filename.endswith("store.py") for f in frames)
