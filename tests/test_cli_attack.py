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
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert first.stdout.readline().strip() == "PAUSE"  # half-way through train.partial
    log = tmp_path / "second.log"
    with open(log, "w") as err_file:  # --debug: the second says when it waits for the first
        second = subprocess.Popen(cli_argv("--debug", *args), stdout=subprocess.PIPE, stderr=err_file, text=True)
    deadline = time.monotonic() + 60
    while second.poll() is None and "waiting for another export" not in log.read_text() and time.monotonic() < deadline:
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
    assert sorted(p.name for p in out.iterdir()) == ["test", "train"]
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
        assert not [
            p
            for p in (out / split).rglob("*")
            if p.is_file() and p.suffix != ".png" and p.name != ".mnistkit-export.json"
        ]


def test_closed_stdout_is_one_line_error_not_a_traceback(synth, home):
    # `mnistkit list >&-`: Python sets sys.stdout to None; the final flush used to raise AttributeError.
    synth.write(home)
    for args in (["list"], ["info", "tiny"], ["download", "tiny"]):
        proc = subprocess.run(cli_argv(*args), stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.close(1))
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.splitlines() == [
            "mnistkit: error: standard output is closed; give the command somewhere to write "
            "(a terminal, a file, a pipe, or >/dev/null to discard it)"
        ]


def _on_terminal(*args: str, env: dict) -> bytes:
    """The output of ``mnistkit args`` run with a pseudo-terminal as stdout."""
    parent, child = pty.openpty()
    proc = subprocess.Popen(cli_argv(*args), stdout=child, stderr=subprocess.PIPE, env=env)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(parent, 65536)
        except OSError:  # EIO: the child closed its side
            break
        if not data:
            break
        chunks.append(data)
    os.close(parent)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    return b"".join(chunks)


def test_no_color_turns_off_ansi_colour_on_a_terminal(synth, home):
    # https://no-color.org: a program that colours its output by default leaves it out when
    # NO_COLOR is set (and not empty); `show` used to print 24-bit colour regardless.
    synth.write(home)
    env = dict(os.environ)
    assert b"\x1b[" in _on_terminal("show", "tiny", env=env)  # a terminal: colour, as documented
    plain = _on_terminal("show", "tiny", env={**env, "NO_COLOR": "1"})
    assert b"\x1b[" not in plain and b"tiny train[0]" in plain
    assert b"\x1b[" in _on_terminal("show", "tiny", env={**env, "NO_COLOR": ""})  # empty: not set
    assert b"\x1b[" in _on_terminal("show", "tiny", "--color", "always", env={**env, "NO_COLOR": "1"})


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--timeout", "0", "list"],
            "mnistkit: error: --timeout 0.0: give a number of seconds above 0 and at most 604800 (a week)",
        ),
        (
            ["--timeout", "nan", "list"],
            "mnistkit: error: --timeout nan: give a number of seconds above 0 and at most 604800 (a week)",
        ),
        (
            ["export", "tiny", "--format", "csv", "--out", ""],
            "mnistkit: error: --out '' is not valid: give the folder to export to",
        ),
    ],
)
def test_value_errors_use_the_command_lines_words(synth, home, args, expected):
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [expected]
    assert proc.stdout == ""


@pytest.mark.parametrize("mirror", ["gopher://example.org/mnist", "http://", "https:///x"])
def test_a_mirror_that_is_no_source_is_a_usage_error(synth, home, mirror):
    # Used to be taken as a folder named "gopher:/example.org/mnist" and reported file by file as missing.
    proc = run_cli("--mirror", mirror, "download", "tiny")
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"mnistkit: error: --mirror {mirror!r} is not a"), line
    assert not (home / "tiny").exists()
    # In the environment (perhaps set for many programs) it is skipped with one warning, and the rest used.
    env = {**os.environ, "MNISTKIT_MIRROR": mirror, "MNISTKIT_OFFLINE": "1"}
    proc = run_cli("download", "tiny", env=env)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith(f"mnistkit: warning: ignoring {mirror!r} in MNISTKIT_MIRROR"), proc.stderr


def test_a_mirror_folder_with_a_colon_is_still_a_folder(synth, home, tmp_path):
    folder = tmp_path / "a:b"
    synth.write(folder)
    proc = run_cli("--offline", "--mirror", str(folder), "download", "tiny")
    assert proc.returncode == 0, proc.stderr


def test_a_bad_timeout_variable_is_a_warning_line(synth, home):
    synth.write(home)
    proc = run_cli("list", env={**os.environ, "MNISTKIT_TIMEOUT": "abc"})
    assert proc.returncode == 0
    assert proc.stderr.splitlines() == [
        "mnistkit: warning: ignoring MNISTKIT_TIMEOUT='abc': not a positive number of seconds"
    ]


@pytest.mark.parametrize("columns", [80, 60, 40])
def test_list_fits_a_narrow_terminal_without_wrapping(synth, home, columns):
    # The titles made every line 120 characters: an 80-column terminal wrapped each row in two,
    # and the download and on-disk columns no longer stood under their headings.
    synth.write(home)
    wide = run_cli("list").stdout.splitlines()  # not a terminal: every column, whole titles
    assert max(map(len, wide)) > 100
    lines = _on_terminal("list", env={**os.environ, "COLUMNS": str(columns)}).decode().replace("\r", "").splitlines()
    table = lines[: lines.index("")]
    # 40 columns: no room for titles at all; the rest is as narrow as it gets.
    # (70: the table without titles, since list gained its "source" column.)
    assert max(len(line) for line in table) <= max(columns, 70), table
    assert ("title" in table[0]) == (columns > 70)
    heads = table[0].split()
    assert heads[0] == "name" and "download" in table[0] and "on disk" in table[0]
    for narrow_row, wide_row in zip(table[1:], wide[1:], strict=False):
        # Name first; sizes, classes and state the same as in the full table.
        assert narrow_row.split()[0] == wide_row.split()[0]
        assert narrow_row.split()[-4:] == wide_row.split()[-4:] or narrow_row.split()[-5:] == wide_row.split()[-5:]
    assert len(table) == len(wide[: wide.index("")])


def test_serve_on_a_taken_port_is_a_server_that_cannot_start_exit_1(home):
    # The README's table: 1 for a server that cannot start; it was 2 (bad arguments), with
    # create_server's "(while attempting to bind on address ...)" inside the message.
    import socket

    home.mkdir(parents=True, exist_ok=True)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proc = subprocess.run(
            cli_argv("--data-home", home, "serve", "--port", port), capture_output=True, text=True, timeout=60
        )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [
        f"mnistkit: error: cannot listen on 127.0.0.1:{port} (Address already in use); another program uses that "
        "port; choose another --port (0 picks a free one)"
    ]


def test_an_all_nan_image_draws_black_without_numpy_warnings():
    # A diverged model's output: grid/img_show leaked numpy's "All-NaN slice encountered" RuntimeWarning.
    import warnings

    import mnistkit

    images = np.full((3, 28, 28), np.nan)
    images[1, 0, 0] = 1.0  # a [0, 1] image with one white pixel beside NaNs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        picture = mnistkit.grid(images, np.array([0, 1, 2]), per_class=1, scale=1)
    from mnistkit.render import as_image

    assert not as_image(images[0]).any()
    assert as_image(images[1])[0, 0] == 255 and as_image(images[1]).sum() == 255
    assert np.asarray(picture).size


@pytest.mark.parametrize("answer", ["y\n", "n\n"])
def test_clean_asks_on_stderr_when_stdout_goes_to_a_file(synth, home, tmp_path, answer):
    # `mnistkit clean tiny > log`: the question went into the log and the command seemed to hang.
    from test_cli_edges import _downloaded

    files = _downloaded(synth, home)
    leader, follower = pty.openpty()
    log = tmp_path / "log.txt"
    try:
        os.write(leader, answer.encode())  # typed ahead: the terminal holds it until the prompt reads
        with open(log, "w") as out:
            proc = subprocess.run(
                cli_argv("clean", "tiny"), stdin=follower, stdout=out, stderr=subprocess.PIPE, text=True, timeout=60
            )
    finally:
        os.close(leader)
        os.close(follower)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("Delete 4 downloaded or hand-placed file(s), ")
    assert proc.stderr.endswith("[y/N] ")
    assert "[y/N]" not in log.read_text()
    left = {p.name for p in (home / "tiny").rglob("*") if p.is_file() and p.suffix != ".lock"}
    assert (left == set()) if answer == "y\n" else (left == set(files))
    assert ("freed " in log.read_text()) == (answer == "y\n")


def test_an_ascii_only_output_gets_escapes_not_a_traceback(synth, tmp_path):
    # A console that cannot encode "ä" (PYTHONIOENCODING=ascii, a cp1252 console with other scripts):
    # printing the data folder's name ended `download` with a UnicodeEncodeError traceback.
    home = tmp_path / "dätä home"
    synth.write(home)
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "MNISTKIT_HOME": str(home)}
    proc = subprocess.run(cli_argv("download", "tiny"), capture_output=True, env=env)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode("ascii").strip() == f"tiny: 4 files verified and cached in {home / 'tiny'}".replace(
        "ä", "\\xe4"
    )
    proc = subprocess.run(
        cli_argv("export", "tiny", "--format", "csv", "--out", str(home / "nicht/da/ä.csv/x")),
        capture_output=True,
        env={**env, "MNISTKIT_OFFLINE": "1"},
    )
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr.decode()


def test_ctrl_c_at_the_clean_question_says_nothing_was_deleted(synth, home):
    # It said "nothing half-written is kept under a final name: run the same command again to go on".
    import signal

    from test_cli_edges import _downloaded

    files = _downloaded(synth, home)
    leader, follower = pty.openpty()
    child = subprocess.Popen(
        cli_argv("clean", "tiny"), stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    os.close(follower)
    try:
        asked = ""
        while not asked.endswith("[y/N] "):  # the question is on stderr: wait for all of it
            char = child.stderr.read(1)
            assert char, asked
            asked += char
        child.send_signal(signal.SIGINT)
        _out, err = child.communicate(timeout=60)
    finally:
        os.close(leader)
    assert child.returncode == 130
    assert err.strip().splitlines() == ["mnistkit: interrupted; nothing deleted"]
    left = {p.name for p in (home / "tiny").rglob("*") if p.is_file() and p.suffix != ".lock"}
    assert left == set(files)


def test_show_scale_without_png_is_a_usage_error(synth, home, tmp_path):
    # `mnistkit show tiny --scale 4` hoping for a bigger terminal picture: --scale was silently ignored.
    synth.write(home)
    proc = run_cli("show", "tiny", "--scale", "4")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "mnistkit: error: --scale 4 enlarges the PNG only; add --png FILE, or leave --scale out"
    ]
    from PIL import Image

    png = tmp_path / "one.png"
    assert run_cli("show", "tiny", "--index", "2", "--png", png).returncode == 0  # default scale 8
    with Image.open(png) as im:
        np.testing.assert_array_equal(
            np.asarray(im), np.kron(synth.arrays["train-images-idx3-ubyte.gz"][2], np.ones((8, 8), np.uint8))
        )
    assert run_cli("show", "tiny", "--index", "2", "--png", png, "--scale", "3").returncode == 0
    with Image.open(png) as im:
        assert im.size == (
            3 * synth.arrays["train-images-idx3-ubyte.gz"].shape[2],
            3 * synth.arrays["train-images-idx3-ubyte.gz"].shape[1],
        )
