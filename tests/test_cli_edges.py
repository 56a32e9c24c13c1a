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
from helpers import cli_argv, run_cli

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
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
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
    assert len(warnings) == 4 and all(w.startswith("mnistkit: warning: got ") for w in warnings)
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


# --- 2, 8. --png, --scale, --per-class: checked before any work, one line, exit 2 -----------------


@pytest.mark.parametrize(
    "png, text",
    [
        ("first", "--png first has no extension: a PNG file name must end in .png"),
        ("x.pgn", "--png x.pgn ends in '.pgn': a PNG file name must end in .png"),
        ("x.jpg", "--png x.jpg ends in '.jpg': a PNG file name must end in .png"),
        ("adir", "--png adir is a folder; give a file name ending in .png"),
        ("nodir/y.png", "--png nodir/y.png: the folder nodir does not exist; create it first or choose another place"),
        ("afile/y.png", "--png afile/y.png: the folder afile is a file, not a folder; create it first"),
        ("", "--png is empty; give a file name ending in .png"),
    ],
)
@pytest.mark.parametrize("command", ["show", "grid"])
def test_png_names_are_checked_before_anything_is_done(synth, home, tmp_path, png, text, command):
    synth.write(home)
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("a file")
    before = sorted(tmp_path.rglob("*"))
    proc = subprocess.run([*cli_argv(command, "tiny", "--png", png)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""  # nothing printed before the error: no picture, then a traceback
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"mnistkit: error: {text}")
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize(
    "args, text",
    [
        (("show", "tiny", "--scale", "0"), "argument --scale: 0 is out of range: give a whole number from 1 to 64"),
        (("show", "tiny", "--scale", "-3"), "argument --scale: -3 is out of range"),
        (("show", "tiny", "--scale", "2.5"), "argument --scale: '2.5' is not a whole number"),
        (("show", "tiny", "--index", "x"), "argument --index: 'x' is not a whole number"),
        (("grid", "tiny", "--per-class", "7000", "--png", "g.png"), "argument --per-class: 7000 is out of range"),
        (("grid", "tiny", "--per-class", "0", "--png", "g.png"), "argument --per-class: 0 is out of range"),
        (("grid", "tiny", "--scale", "17", "--png", "g.png"), "argument --scale: 17 is out of range"),
        (
            ("grid", "tiny", "--per-class", "900", "--png", "g.png"),
            "--per-class 900 at --scale 2 would make a picture over 16384 pixels wide; at this scale at most 272 fit",
        ),
        (("serve", "--port", "70000"), "argument --port: 70000 is out of range: give a whole number from 0 to 65535"),
        (("serve", "--port", "-1"), "argument --port: -1 is out of range"),
        (("show", "tiny", "--split", "valid"), "--split 'valid' is not a split of tiny; choose one of 'train', 'test'"),
        (("show", "tiny", "--index", "60"), "--index 60 is out of range: tiny train has 60 images (0 to 59)"),
        (("show", "nosuchset"), "dataset 'nosuchset' is not known"),
        (("info", ""), "dataset '' is not known"),
        (("clean", "nosuchset"), "dataset 'nosuchset' is not known"),
        (("verify", "nosuchset"), "dataset 'nosuchset' is not known"),
        (("export", "tiny", "--format", "csv", "--out", "o", "--split", "nope"), "--split 'nope' is not a split"),
        (("--data-home", "", "list"), "--data-home '' is empty; give a folder"),
        (("list", "extra"), "unrecognized arguments: extra"),
        ((), "the following arguments are required: COMMAND"),
    ],
)
def test_wrong_values_are_one_line_with_exit_2(synth, home, tmp_path, args, text):
    synth.write(home)
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run(cli_argv(*args), capture_output=True, text=True, cwd=work)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and text in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == "" and not list(work.iterdir())  # nothing written


def test_png_written_whole_under_its_name(synth, home, tmp_path):
    from PIL import Image

    synth.write(home)
    out = tmp_path / "pictures" / "seven.PNG"  # any case of .png
    out.parent.mkdir()
    proc = run_cli("show", "tiny", "--index", "3", "--scale", "2", "--png", out, "--color", "never")
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (56, 56)
        np.testing.assert_array_equal(np.asarray(im)[::2, ::2], synth.arrays["train-images-idx3-ubyte.gz"][3])
    assert [p.name for p in out.parent.iterdir()] == ["seven.PNG"]  # no temporary file left


def test_show_says_a_class_name_only_when_it_adds_something(synth, home):
    synth.write(home)
    proc = run_cli("show", "tiny", "--index", "3", "--color", "never")
    label = int(synth.arrays["train-labels-idx1-ubyte.gz"][3])
    assert proc.stdout.splitlines()[0] == f"tiny train[3]  label {label}"


REAL_MNIST = Path(os.environ.get("MNISTKIT_REAL_DATA", HERE.parents[1] / "shared" / "data" / "mnist"))


@pytest.mark.skipif(not (REAL_MNIST / "t10k-labels-idx1-ubyte.gz").is_file(), reason=f"real MNIST not at {REAL_MNIST}")
def test_the_show_help_example_draws_a_seven(home, tmp_path):
    import shutil

    shutil.copytree(REAL_MNIST, home / "mnist")
    example = run_cli("show", "--help").stdout.split("example: mnistkit ")[1].split()
    assert "seven.png" in example
    proc = subprocess.run(cli_argv(*example), capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "mnist test[0]  label 7"
    assert (tmp_path / "seven.png").is_file()


# --- 4, 5. the data folder and the output folder: files in the way, unwritable places ------------


def test_a_data_folder_that_is_a_file_is_called_one(synth, tmp_path, monkeypatch):
    (tmp_path / "some.py").write_text("print('hello')")
    proc = subprocess.run(
        cli_argv("--data-home", "some.py", "show", "tiny"),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        f"mnistkit: error: the data folder {tmp_path / 'some.py'} (--data-home 'some.py') is a file, not a folder; "
        "give a folder\n"
    )
    env = {**os.environ, "MNISTKIT_HOME": str(tmp_path / "some.py" / "below")}
    proc = run_cli("list", env=env)
    assert proc.returncode == 2 and f"cannot be made: {tmp_path / 'some.py'} is a file" in proc.stderr
    # The library says the same, with its own keyword.
    from mnistkit import DataFolderError, load_mnist

    with pytest.raises(DataFolderError, match=r"some.py is a file, not a folder; pass data_home=\.\.\."):
        load_mnist(dataset="tiny", data_home=tmp_path / "some.py")


def test_export_places_that_cannot_be_written_are_named_not_their_temporary_files(synth, home, tmp_path):
    synth.write(home)
    (tmp_path / "afile").write_text("x")
    proc = run_cli("export", "tiny", "--format", "npz", "--out", tmp_path / "afile")
    assert (
        proc.returncode == 2
        and proc.stderr
        == f"mnistkit: error: {tmp_path / 'afile'} is a file, not a folder; choose a folder to export to\n"
    )
    proc = run_cli("export", "tiny", "--format", "npz", "--out", tmp_path / "afile" / "below")
    assert proc.returncode == 2 and "(in the way of" in proc.stderr
    (tmp_path / "out" / "tiny.npz").mkdir(parents=True)  # a folder where the file must go
    proc = run_cli("export", "tiny", "--format", "npz", "--out", tmp_path / "out")
    assert proc.returncode == 1
    assert proc.stderr == (
        f"mnistkit: error: cannot write {tmp_path / 'out' / 'tiny.npz'}: Is a directory; "
        "a folder stands where the file must go; move it or choose another place\n"
    )
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["tiny.npz"]  # no temporary file left
    proc = run_cli("export", "tiny", "--format", "csv", "--out", "/proc/mnistkit-cannot-be-here")
    assert proc.returncode == 1 and proc.stderr.startswith(
        "mnistkit: error: cannot write /proc/mnistkit-cannot-be-here: "
    )
    assert "Errno" not in proc.stderr and ".tmp" not in proc.stderr


# --- 8. Python warnings for library users -----------------------------------------------------------


def test_read_only_data_folder_is_a_python_warning(synth, home, monkeypatch):
    from mnistkit import MnistkitWarning, load_mnist

    synth.write(home)
    real_mkdir = Path.mkdir

    def no_mkdir(self, *args, **kwargs):  # a folder we may not write, as root too
        if ".cache" in self.parts or ".locks" in self.parts:
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", no_mkdir)
    with pytest.warns(MnistkitWarning, match="is not writable: its files are decoded on every load") as record:
        load_mnist(dataset="tiny", offline=True)
    assert record[0].filename == __file__  # points at the caller's line


def test_validation_seed_without_validation_warns(synth, home):
    from mnistkit import MnistkitWarning, load, load_mnist

    synth.write(home)
    with pytest.warns(MnistkitWarning, match=r"validation_seed=0 is ignored: nothing is held out without validation="):
        out = load_mnist(dataset="tiny", validation_seed=0)
    assert len(out) == 2
    with pytest.warns(MnistkitWarning, match="stratify=True is ignored") as record:
        load("tiny", stratify=True)
    assert record[0].filename == __file__
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_mnist(dataset="tiny", validation=10, validation_seed=0)  # used: no warning


# --- 8. a closed pipe ------------------------------------------------------------------------------


def test_a_reader_that_left_ends_the_command_quietly(synth, home):
    synth.write(home)
    read, write = os.pipe()
    os.close(read)  # `| head` that has already gone: every write fails with EPIPE
    try:
        proc = subprocess.run(cli_argv("info", "tiny"), stdout=write, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write)
    assert proc.returncode == -signal.SIGPIPE  # as `cat` or `yes` end: 141 in a shell
    assert proc.stderr == ""


# --- 6. clean: caches freely, downloaded data only when confirmed -----------------------------------


def _downloaded(synth, home) -> dict[str, int]:
    synth.write(home)
    assert run_cli("download", "tiny").returncode == 0
    return {p.name: p.stat().st_size for p in (home / "tiny").rglob("*") if p.is_file() and p.suffix != ".lock"}


def test_clean_without_a_terminal_needs_yes_and_deletes_nothing_otherwise(synth, home):
    files = _downloaded(synth, home)
    data = sum(size for name, size in files.items() if name.endswith(".gz"))
    proc = run_cli("clean", "tiny")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(
        "mnistkit: error: clean would delete 4 downloaded or hand-placed file(s), "
        f"{data / 1000:.1f} kB, in {home / 'tiny'}; "
        "pass --yes to confirm"
    )
    assert {p.name for p in (home / "tiny").rglob("*") if p.is_file() and p.suffix != ".lock"} == set(files)


def test_clean_dry_run_lists_and_deletes_nothing(synth, home):
    files = _downloaded(synth, home)
    proc = run_cli("clean", "tiny", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    listed = {line.split()[-1]: line.split()[2] for line in lines[:-1]}
    assert {Path(p).name for p in listed} == set(files)
    assert {kind for kind in listed.values()} == {"data", "cache"}
    assert lines[-1] == (
        f"would free {sum(files.values()) / 1000:.1f} kB in total "
        "(4 downloaded or hand-placed file(s)); nothing deleted"
    )
    assert {p.name for p in (home / "tiny").rglob("*") if p.is_file() and p.suffix != ".lock"} == set(files)


def test_clean_cache_only_keeps_the_data_and_never_asks(synth, home):
    files = _downloaded(synth, home)
    proc = run_cli("clean", "tiny", "--cache-only")
    assert proc.returncode == 0, proc.stderr
    cache = sum(size for name, size in files.items() if not name.endswith(".gz"))
    assert proc.stdout.splitlines()[0] == f"tiny: freed {cache / 1000:.1f} kB in {home / 'tiny'}"
    left = {p.name for p in (home / "tiny").rglob("*") if p.is_file() and p.suffix != ".lock"}
    assert left == {name for name in files if name.endswith(".gz")}
    assert run_cli("list").returncode == 0  # and the data still loads (cache rebuilt)
    assert run_cli("download", "tiny").returncode == 0


@pytest.mark.parametrize("answer, deleted", [("y\n", True), ("n\n", False), ("\n", False)])
def test_clean_asks_on_a_terminal(synth, home, answer, deleted):
    import pty

    files = _downloaded(synth, home)
    leader, follower = pty.openpty()
    try:
        os.write(leader, answer.encode())  # typed ahead: the terminal holds it until the prompt reads
        proc = subprocess.run(cli_argv("clean", "tiny"), stdin=follower, capture_output=True, text=True, timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("Delete 4 downloaded or hand-placed file(s), ")  # asked on stderr, as rm -i
    assert "Getting them back means downloading them again. [y/N] " in proc.stderr
    left = {p.name for p in (home / "tiny").rglob("*") if p.is_file() and p.suffix != ".lock"}
    if deleted:
        assert left == set() and "freed " in proc.stdout
    else:
        assert left == set(files) and "nothing deleted" in proc.stdout


def test_clean_keeps_an_archive_other_datasets_read(home):
    archive = home / "emnist" / "gzip.zip"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"PK" + bytes(1000))  # a hand-placed archive (not checked by clean)
    proc = run_cli("clean", "emnist-digits", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("emnist-digits: kept gzip.zip (1.0 kB), which emnist-byclass, ")
    assert archive.exists()
    proc = run_cli("clean", "all", "--yes")
    assert proc.returncode == 0 and not archive.exists()


# --- 7. list: download and on-disk sizes apart ---------------------------------------------------


def test_list_shows_download_and_on_disk_sizes_apart(synth, home):
    proc = run_cli("list")
    header = proc.stdout.splitlines()[0]
    assert header.split()[2:5] == ["download", "on", "disk"]
    gz = sum(len(b) for b in synth.gz.values())

    def cells(name):  # columns are two or more spaces apart; a title has single spaces
        import re

        line = next(line for line in run_cli("list").stdout.splitlines() if line.startswith(name + " "))
        return re.split(r"\s{2,}", line)[2:4]

    assert cells("tiny") == [f"{gz / 1000:.1f} kB", "-"]
    assert cells("emnist-byclass") == ["561.8 MB*", "-"]  # the one archive, marked shared, not the decoded 1.2 GB
    assert "* one archive, downloaded once" in proc.stdout
    synth.write(home)
    assert run_cli("download", "tiny").returncode == 0
    used = sum(p.stat().st_size for p in (home / "tiny").rglob("*") if p.is_file() and p.suffix != ".lock")
    assert cells("tiny") == [f"{gz / 1000:.1f} kB", f"{used / 1000:.1f} kB"]


def test_export_puts_back_a_png_deleted_from_a_finished_split(synth, home, tmp_path):
    synth.write(home)
    args = ("export", "tiny", "--format", "png", "--out", tmp_path / "png", "--split", "test")
    assert run_cli(*args).returncode == 0
    victim = next((tmp_path / "png" / "test").rglob("*.png"))
    victim.unlink()
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert victim.is_file() and len(list((tmp_path / "png" / "test").rglob("*.png"))) == 20
    # A run killed right after making the .partial folder, before its record: the next run goes on.
    import shutil

    shutil.rmtree(tmp_path / "png" / "test")
    (tmp_path / "png" / "test.partial").mkdir()
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["test"]


def test_a_rejected_hand_placed_file_is_said_once(synth, home, tmp_path):
    synth.write(home)
    bad = home / "tiny" / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(b"not the data")
    proc = run_cli("show", "tiny", env={**os.environ, "MNISTKIT_OFFLINE": "1"})
    assert proc.returncode == 3
    rejected = f"files found but rejected: {bad}: not a valid IDX file"  # named by its full path
    assert proc.stderr.count(rejected) == 1, proc.stderr
    assert "mnistkit: warning:" not in proc.stderr  # said in the error only
    mirror = tmp_path / "mirror"
    synth.write(mirror)
    proc = run_cli("show", "tiny", "--color", "never", env={**os.environ, "MNISTKIT_MIRROR": str(mirror)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(
        "mnistkit: warning: ignored a file that is not the published data"
    )


# --- read-only places (a real read-only bind mount in a private namespace: works as root too) ----


def _read_only(folder: Path, *argv: str) -> list[str]:
    """``argv`` run with ``folder`` mounted read-only (skips the test where namespaces are not allowed)."""
    import shutil

    probe = [
        "unshare",
        "-rm",
        "sh",
        "-c",
        'mount --bind -o ro "$0" "$0" && ! touch "$0/.probe" 2>/dev/null',
        str(folder),
    ]
    if shutil.which("unshare") is None or subprocess.run(probe, capture_output=True).returncode != 0:
        pytest.skip("no user namespaces here: cannot make a read-only mount")
    return ["unshare", "-rm", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(folder), *argv]


def test_read_only_data_folder_in_the_cli(synth, home, tmp_path):
    synth.write(home)
    proc = subprocess.run(
        _read_only(home, *cli_argv("show", "tiny", "--color", "never")), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (
        f"mnistkit: warning: {home / 'tiny'} is not writable: its files are decoded on every load, without a cache; "
        "make it writable, or copy it to a writable data folder (--data-home DIR or MNISTKIT_HOME)\n"
    )
    proc = subprocess.run(_read_only(home, *cli_argv("clean", "tiny", "--yes")), capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr == (
        f"mnistkit: error: cannot delete files in {home / 'tiny'}: it is read-only for you; "
        "nothing was deleted there or elsewhere\n"
    )
    assert len(list((home / "tiny").iterdir())) == 4


def test_read_only_output_folders(synth, home, tmp_path):
    synth.write(home)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        _read_only(out, *cli_argv("show", "tiny", "--png", out / "x.png")), capture_output=True, text=True
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert (
        proc.stderr
        == f"mnistkit: error: --png {out / 'x.png'}: the folder {out} is not writable for you; choose another place\n"
    )
    proc = subprocess.run(
        _read_only(out, *cli_argv("export", "tiny", "--format", "npz", "--out", out)), capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"mnistkit: error: cannot write {out}: ") and "choose " in proc.stderr
    assert ".tmp" not in proc.stderr and "Errno" not in proc.stderr and proc.stderr.count("\n") == 1


FULL_DISK = """
import resource, signal, sys, traceback
sys.path.insert(0, {tests!r})
from helpers import make_synthetic
from mnistkit import load_mnist, registry
registry.DATASETS["tiny"] = make_synthetic().dataset
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))  # the .npy of the images does not fit
try:
    load_mnist(dataset="tiny")
except Exception as err:
    print(type(err).__name__)
    print("\\n".join(frame.filename for frame in traceback.extract_tb(err.__traceback__)))
"""


def test_an_error_in_the_hashing_thread_reads_as_raised_in_the_caller(synth, home):
    synth.write(home)
    code = FULL_DISK.format(tests=str(HERE))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    assert lines[0] == "DataFolderError", proc.stdout + proc.stderr
    assert lines[1] == "<string>"  # the caller's line first...
    assert not [f for f in lines[1:] if "concurrent" in f]  # ...and no thread-pool frames anywhere
    assert any(f.endswith("integrity.py") for f in lines) and any(f.endswith("store.py") for f in lines)


def test_ctrl_c_during_stalled_downloads_ends_at_once_and_the_next_run_completes(synth, home):
    from helpers import Route, Server

    with Server() as srv:
        for name, data in synth.gz.items():
            srv.routes[f"/tiny/{name}"] = Route(body=data, stall_after=100)  # stalls until the server stops
        # A read timeout of 10 minutes: without ending at once, the process would wait for its threads.
        env = {**os.environ, "MNISTKIT_MIRROR": srv.url, "MNISTKIT_TIMEOUT": "600"}
        child = subprocess.Popen(cli_argv("download", "tiny"), env=env, stderr=subprocess.PIPE, text=True)
        assert srv.stalled.wait(60), "the download never started"
        child.send_signal(signal.SIGINT)
        try:
            _, err = child.communicate(timeout=60)
        finally:
            child.kill()
    assert child.returncode == 130
    assert err == (
        "mnistkit: interrupted; nothing half-written is kept under a final name: run the same command again to go on\n"
    )
    assert not [p for p in (home / "tiny").iterdir() if p.name in synth.gz]  # nothing under a final name
    with Server() as good:
        good.serve_dataset(synth)
        proc = run_cli("download", "tiny", env={**os.environ, "MNISTKIT_MIRROR": good.url})
    assert proc.returncode == 0, proc.stderr


# --- datasets read from one archive (EMNIST) through the command line --------------------------------

_EMNIST_CHILD = (
    "import sys; sys.path.insert(0, {here!r}); import family; from mnistkit import registry, cli;"
    "registry.DATASETS.update(family.emnist(pin_archive=False).datasets); sys.exit(cli.main(sys.argv[1:]))"
)


def _emnist_cli(*args, env):
    code = _EMNIST_CHILD.format(here=str(HERE))
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env)


def test_archive_datasets_download_list_verify_and_clean(home):
    import family

    # The child makes its own zip (other timestamps), so the archive is not pinned: it is placed by
    # hand (an unpinned archive has no size to download by) and vouched for by its CRCs.
    family.emnist(pin_archive=False).write(home)
    env = {**os.environ, "MNISTKIT_OFFLINE": "1"}
    proc = _emnist_cli("download", "emnist-digits", "emnist-letters", env=env)
    assert proc.returncode == 0, proc.stderr  # was a KeyError traceback: the archive taken for an array
    proc = _emnist_cli("list", env=env)
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[1:] if line.startswith("emnist")}
    assert rows["emnist-digits"].endswith(" cached") and rows["emnist-letters"].endswith(" cached")
    assert rows["emnist-mnist"].endswith(" 1/5 files")  # the archive is here, its arrays not built
    proc = _emnist_cli("verify", "emnist-digits", env=env)
    assert proc.returncode == 0 and "0 bad" in proc.stdout, proc.stdout + proc.stderr
    proc = _emnist_cli("clean", "emnist-digits", "--yes", env=env)
    assert proc.returncode == 0 and (home / "emnist" / "gzip.zip").is_file()
    proc = _emnist_cli("info", "emnist-letters", env=env)
    assert proc.returncode == 0, proc.stderr
