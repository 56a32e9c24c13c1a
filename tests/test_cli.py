"""The console script, driven in subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import run_cli


def run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "mnistkit", *args], capture_output=True, text=True, env=env or os.environ.copy()
    )


def test_show_prints_label_and_picture(synth, home):
    synth.write(home)
    proc = run_cli("show", "tiny", "--split", "test", "--index", "3", "--color", "never")
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
    assert proc.stderr.startswith(
        "mnistkit: error: mnist: 2 file(s) missing: train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz"
    )
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


# --- list, download, info ------------------------------------------------------------------------


def _row(stdout: str, name: str) -> list[str]:
    return next(line.split() for line in stdout.splitlines() if line.startswith(name + " "))


def test_list_says_where_each_dataset_stands(synth, home, tmp_path):
    proc = run_cli("list")
    assert proc.returncode == 0, proc.stderr
    header = ["name", "title", "download", "on", "disk", "classes", "source", "here"]
    assert proc.stdout.splitlines()[0].split() == header
    row = _row(proc.stdout, "tiny")
    assert row[-3:] == ["10", "none", "no"]  # the synthetic dataset has no mirror
    assert _row(proc.stdout, "mnist")[-3:] == ["10", "download", "no"]
    synth.write(home)
    assert _row(run_cli("list").stdout, "tiny")[-1] == "downloaded"
    assert run_cli("download", "tiny").returncode == 0
    assert _row(run_cli("list").stdout, "tiny")[-1] == "cached"


def test_download_fetches_verifies_and_caches(synth, home, tmp_path):
    mirror = tmp_path / "mirror"
    synth.write(mirror)
    env = {**os.environ, "MNISTKIT_MIRROR": str(mirror)}
    proc = run_cli("download", "tiny", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"tiny: 4 files verified and cached in {home / 'tiny'}"
    for name, data in synth.gz.items():
        assert (home / "tiny" / name).read_bytes() == data
        assert (home / "tiny" / ".cache" / name.replace(".gz", ".npy")).is_file()
    proc = run_cli("download", "tiny", "nosuchset", env=env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "nosuchset" in proc.stderr


def test_download_all_reports_each_failure_and_goes_on(synth, home):
    synth.write(home)
    env = {**os.environ, "MNISTKIT_OFFLINE": "1"}
    proc = run_cli("download", "all", env=env)
    assert proc.returncode == 3  # mnist is not here and may not be fetched...
    assert "mnist: 4 file(s) missing" in proc.stderr and "Traceback" not in proc.stderr
    assert "tiny: 4 files verified" in proc.stdout  # ...but tiny was still done


def test_info_json_gives_counts_checksums_and_paths(synth, home):
    proc = run_cli("info", "tiny", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert [s["class_counts"] for s in info["splits"]] == [None, None]  # nothing here yet
    synth.write(home)
    info = json.loads(run_cli("info", "tiny", "--json").stdout)
    assert info["classes"] == [str(i) for i in range(10)]
    assert info["data_folder"] == str(home / "tiny")
    train, test = info["splits"]
    assert (train["name"], train["count"], test["count"]) == ("train", 60, 20)
    labels = synth.arrays["train-labels-idx1-ubyte.gz"]
    assert train["class_counts"] == np.bincount(labels, minlength=10).tolist()
    spec = synth.dataset.file("train-images-idx3-ubyte.gz")
    assert train["images"]["decoded_sha256"] == spec.decoded_sha256
    assert train["images"]["shape"] == [60, 28, 28] and train["images"]["dtype"] == "uint8"
    assert train["images"]["path"] == str(home / "tiny" / spec.name)
    assert train["images"]["cache"] is None  # info reads labels only: images are not decoded
    text = run_cli("info", "tiny").stdout
    assert "per class: 0:6 1:6" in text and spec.decoded_sha256 in text


# --- show, grid ----------------------------------------------------------------------------------


def test_grid_cells_hold_the_first_samples_of_each_class(synth, home, tmp_path):
    synth.write(home)
    out = tmp_path / "grid.png"
    k, scale = 3, 2
    proc = run_cli("grid", "tiny", "--split", "test", "--per-class", k, "--scale", scale, "--png", out)
    assert proc.returncode == 0, proc.stderr
    from PIL import Image

    from mnistkit.render import MONTAGE_PAD

    sheet = np.asarray(Image.open(out))
    images, labels = synth.arrays["t10k-images-idx3-ubyte.gz"], synth.arrays["t10k-labels-idx1-ubyte.gz"]
    step, pad = 28 * scale + MONTAGE_PAD * scale, MONTAGE_PAD * scale
    h, w = sheet.shape
    assert (h - pad) % step == 0 and (h - pad) // step == 10
    for c in range(10):
        picks = np.flatnonzero(labels == c)[:k]
        for col in range(k):
            y, x = h - (10 - c) * step, w - (k - col) * step
            cell = sheet[y : y + 28 * scale, x : x + 28 * scale]
            if col < len(picks):
                np.testing.assert_array_equal(cell[::scale, ::scale], images[picks[col]])
            else:  # fewer samples than cells: blank
                assert (cell == 255).all()


# --- verify, clean -------------------------------------------------------------------------------


def test_verify_finds_a_flipped_cache_byte_and_fix_repairs_it(synth, home):
    synth.write(home)
    assert run_cli("download", "tiny").returncode == 0
    proc = run_cli("verify", "tiny")
    assert proc.returncode == 0 and "8 checked, 0 bad" in proc.stdout
    npy = home / "tiny" / ".cache" / "t10k-images-idx3-ubyte.npy"
    data = bytearray(npy.read_bytes())
    data[-1] ^= 0xFF  # same size, same header: only a full re-hash can tell
    npy.write_bytes(bytes(data))
    (home / "tiny" / "train-labels-idx1-ubyte.gz").write_bytes(b"<html>oops</html>")
    proc = run_cli("verify", "tiny")
    assert proc.returncode == 1
    assert f"BAD  cache {npy}" in proc.stdout and "2 bad" in proc.stdout
    assert "verify --fix" in proc.stderr
    mirror = home.parent / "mirror"
    synth.write(mirror)
    proc = run_cli("verify", "tiny", "--fix", env={**os.environ, "MNISTKIT_MIRROR": str(mirror)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 bad, 2 repaired" in proc.stdout
    assert (home / "tiny" / "train-labels-idx1-ubyte.gz").read_bytes() == synth.gz["train-labels-idx1-ubyte.gz"]
    np.testing.assert_array_equal(np.load(npy), synth.arrays["t10k-images-idx3-ubyte.gz"])
    assert "0 bad" in run_cli("verify").stdout


def test_verify_fix_without_a_source_says_so(synth, home):
    synth.write(home)
    (home / "tiny" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    proc = run_cli("verify", "tiny", "--fix")
    assert proc.returncode == 1
    assert "could not repair t10k-labels-idx1-ubyte.gz" in proc.stdout
    assert not (home / "tiny" / "t10k-labels-idx1-ubyte.gz").exists()  # the bad copy is gone all the same


def test_clean_frees_what_was_there(synth, home):
    synth.write(home)
    assert run_cli("download", "tiny").returncode == 0
    folder = home / "tiny"
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    (folder / "notes.txt").write_text("mine")
    proc = run_cli("clean", "tiny", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert f"tiny: freed {size / 1000:.1f} kB" in proc.stdout
    assert (folder / "notes.txt").exists()  # only dataset files are removed
    assert not [p for p in folder.rglob("*") if p.is_file() and p.suffix != ".lock" and p.name != "notes.txt"]
    assert "freed 0 B in total" in run_cli("clean").stdout


# --- export --------------------------------------------------------------------------------------


def test_export_csv_round_trips(synth, home, tmp_path):
    synth.write(home)
    proc = run_cli("export", "tiny", "--format", "csv", "--out", tmp_path / "csv")
    assert proc.returncode == 0, proc.stderr
    for split, prefix in (("train", "train"), ("test", "t10k")):
        path = tmp_path / "csv" / f"tiny_{split}.csv"
        header = path.read_text().splitlines()[0].split(",")
        assert header[:2] == ["label", "pixel0"] and header[-1] == "pixel783" and len(header) == 785
        table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64)
        np.testing.assert_array_equal(table[:, 0], synth.arrays[f"{prefix}-labels-idx1-ubyte.gz"])
        np.testing.assert_array_equal(table[:, 1:].reshape(-1, 28, 28), synth.arrays[f"{prefix}-images-idx3-ubyte.gz"])


def test_export_png_folders_per_class(synth, home, tmp_path):
    synth.write(home)
    out = tmp_path / "png"
    proc = run_cli("export", "tiny", "--format", "png", "--out", out, "--split", "test")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote 20 file(s) to {out}"
    assert sorted(p.name for p in out.iterdir()) == ["test"]
    from PIL import Image

    images, labels = synth.arrays["t10k-images-idx3-ubyte.gz"], synth.arrays["t10k-labels-idx1-ubyte.gz"]
    for i in range(20):
        with Image.open(out / "test" / str(labels[i]) / f"{i:02d}.png") as im:
            np.testing.assert_array_equal(np.asarray(im), images[i])


def test_export_npz_has_keras_keys(synth, home, tmp_path):
    synth.write(home)
    assert run_cli("export", "tiny", "--format", "npz", "--out", tmp_path).returncode == 0
    with np.load(tmp_path / "tiny.npz") as z:
        assert sorted(z.files) == ["x_test", "x_train", "y_test", "y_train"]
        np.testing.assert_array_equal(z["x_train"], synth.arrays["train-images-idx3-ubyte.gz"])
        np.testing.assert_array_equal(z["y_test"], synth.arrays["t10k-labels-idx1-ubyte.gz"])


def test_class_folders_sort_in_class_order():
    from mnistkit.export import class_folders

    names = class_folders([f"c{i}" for i in range(12)])
    assert names[:2] == ["00-c0", "01-c1"] and sorted(names) == names
    assert class_folders(["T-shirt/top", "0"])[0] == "0-T-shirt_top"


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, text",
    [
        (("show", "tiny", "--index", "999"), "--index 999 is out of range"),
        (("grid", "tiny", "--split", "valid", "--png", "x.png"), "--split 'valid' is not a split of tiny"),
        (("grid", "tiny", "--per-class", "0", "--png", "x.png"), "argument --per-class: 0 is out of range"),
        (("export", "tiny", "--format", "tiff", "--out", "x"), "invalid choice: 'tiff'"),
        (("grid", "tiny"), "the following arguments are required: --png"),
        (("info", "nosuchset"), "dataset 'nosuchset' is not known"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(synth, home, args, text):
    synth.write(home)
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert text in proc.stderr and proc.stderr.strip().splitlines()[-1].startswith("mnistkit")
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_debug_shows_the_traceback(home):
    proc = run("--debug", "info", "nosuchset")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_every_subcommand_has_help(home):
    for command in ("list", "download", "info", "show", "grid", "verify", "clean", "export", "serve"):
        proc = run(command, "--help")
        assert proc.returncode == 0 and "example: mnistkit" in proc.stdout, command
    assert "0.0.0.0 exposes it" in " ".join(run("serve", "--help").stdout.split())


def test_the_installed_console_script_runs(home):
    script = shutil.which("mnistkit", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("the mnistkit console script is not installed next to this Python")
    proc = subprocess.run([script, "list"], capture_output=True, text=True)
    assert proc.returncode == 0 and _row(proc.stdout, "mnist")[-2:] == ["download", "no"]
