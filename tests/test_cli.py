"""The console script, driven in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np


def run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "mnistkit", *args], capture_output=True, text=True, env=env or os.environ.copy()
    )


def test_show_prints_label_and_picture(synth, home):
    synth.write(home)
    # the child process registers nothing: use the real entry point on a dataset it knows via a file
    code = (
        "import sys; sys.path.insert(0, %r); from helpers import make_synthetic; from mnistkit import registry, cli;"
        "registry.DATASETS['tiny'] = make_synthetic().dataset; sys.exit(cli.main(sys.argv[1:]))"
    ) % os.path.dirname(__file__)
    proc = subprocess.run(
        [sys.executable, "-c", code, "show", "tiny", "--split", "test", "--index", "3", "--color", "never"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    label = int(synth.arrays["t10k-labels-idx1-ubyte.gz"][3])
    assert f"tiny test[3]  label {label}" in proc.stdout
    assert len(proc.stdout.splitlines()) == 29
    img = synth.arrays["t10k-images-idx3-ubyte.gz"][3]
    dark_rows = [i for i, row in enumerate(img) if row.max() < 13]
    assert all(set(proc.stdout.splitlines()[1 + i]) <= {" "} for i in dark_rows)


def test_missing_data_is_one_line_error_and_exit_3(home):
    env = os.environ.copy()
    env["MNISTKIT_OFFLINE"] = "1"
    proc = run("show", "mnist", env=env)
    assert proc.returncode == 3
    assert proc.stderr.startswith("mnistkit: error: mnist: 2 file(s) missing: train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz")
    assert "Traceback" not in proc.stderr


def test_bad_arguments_exit_2(home):
    proc = run("show", "nosuchset")
    assert proc.returncode == 2 and "is not known" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("frobnicate")
    assert proc.returncode == 2


def test_version():
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("mnistkit ")
    assert np  # numpy importable alongside
