"""Windows file semantics: open or mapped files cannot be replaced or deleted, no fork, no SIGKILL, long paths.

On Linux the ``windows_semantics`` fixture emulates the file rules (tests/winsem.py): replacing or
deleting a file that this process, or the test process behind a CLI child, has open or memory-mapped
raises ``PermissionError`` as on Windows.  On Windows (the GitHub Actions job) the same tests run on
the real thing.  A loaded uint8 array is a memory map of the cache, so "another process maps the
entry" is simply a test holding the array it loaded.
"""

from __future__ import annotations

import gc
import json
import mmap
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

import winsem
from mnistkit import DataFolderError, LockTimeout, _winfs, load_mnist
from mnistkit.sources import file_url_path
from mnistkit.store import Store

IMAGES = "train-images-idx3-ubyte"


def expected(synth):
    a = synth.arrays
    return a["train-images-idx3-ubyte.gz"].reshape(60, 784), a["train-labels-idx1-ubyte.gz"]


def npy_name(home: Path) -> str:
    """The .npy the train images' manifest names (no "npy" field: the usual name)."""
    manifest = json.loads((home / "tiny" / ".cache" / f"{IMAGES}.json").read_text())
    return manifest.get("npy", f"{IMAGES}.npy")


def entry_files(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "tiny" / ".cache").glob(f"{IMAGES}*.npy"))


@pytest.mark.skipif(sys.platform == "win32", reason="checks the Linux emulation of what Windows does natively")
def test_the_emulation_refuses_what_windows_refuses(tmp_path, windows_semantics):
    """The layer itself can fail a test: open and mapped files are protected, released ones are not."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"x" * 4096)
    b.write_bytes(b"y" * 4096)
    with open(a, "rb"):
        with pytest.raises(PermissionError):
            os.unlink(a)
        with pytest.raises(PermissionError):
            os.replace(b, a)
        with pytest.raises(PermissionError):
            a.unlink()  # pathlib too (Python 3.10 binds os functions at import)
    with open(a, "rb") as fh:
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
    with pytest.raises(PermissionError):  # closed descriptor, live mapping: still held
        os.replace(b, a)
    mapped.close()
    os.replace(b, a)
    assert a.read_bytes() == b"y" * 4096 and not b.exists()
    os.remove(a)


def test_a_rebuild_goes_beside_an_entry_that_is_mapped(synth, home, windows_semantics):
    synth.write(home)
    (x, t), _ = load_mnist(normalize=False, dataset="tiny")  # x maps the entry
    first = npy_name(home)
    assert first == f"{IMAGES}.npy"
    kept = np.array(x)
    manifest = home / "tiny" / ".cache" / f"{IMAGES}.json"
    manifest.write_text("{broken")  # the entry must be rebuilt while x still maps it
    (x2, t2), _ = load_mnist(normalize=False, dataset="tiny")
    np.testing.assert_array_equal(x2, expected(synth)[0])
    np.testing.assert_array_equal(x, kept)  # the mapped file was left alone
    second = npy_name(home)
    assert second != first and entry_files(home) == sorted([first, second])

    del x, t, _, kept
    gc.collect()  # the first entry is free now; the second is mapped by x2
    manifest.write_text("{broken")
    (x3, _t3), _ = load_mnist(normalize=False, dataset="tiny")
    np.testing.assert_array_equal(x3, expected(synth)[0])
    assert npy_name(home) == first  # back under the usual name
    assert entry_files(home) == sorted([first, second])  # the one x2 maps waits to be swept

    del x2, t2
    gc.collect()
    manifest.write_text("{broken")
    load_mnist(normalize=False, dataset="tiny")
    # the usual name is mapped by x3: beside again; the free one (second) is swept
    assert second not in entry_files(home) and len(entry_files(home)) == 2


def test_verify_fix_rebuilds_an_entry_another_process_maps(synth, home, windows_semantics):
    synth.write(home)
    assert run_cli("download", "tiny").returncode == 0
    (_x, _t), _ = load_mnist(
        normalize=False, dataset="tiny"
    )  # this process maps it (kept bound); the CLI runs in a child
    npy = home / "tiny" / ".cache" / f"{IMAGES}.npy"
    with open(npy, "r+b") as fh:  # Windows lets a mapped file be written, not replaced or deleted
        fh.seek(-1, os.SEEK_END)
        last = fh.read(1)
        fh.seek(-1, os.SEEK_END)
        fh.write(bytes([last[0] ^ 0xFF]))
    proc = run_cli("verify", "tiny", "--fix")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 bad, 1 repaired" in proc.stdout
    assert npy_name(home) != npy.name and npy.exists()  # rebuilt beside the mapped file
    proc = run_cli("verify", "tiny")
    assert proc.returncode == 0 and "0 bad" in proc.stdout, proc.stdout
    (y, _), _ = load_mnist(normalize=False, dataset="tiny")
    np.testing.assert_array_equal(y, expected(synth)[0])


def test_clean_reports_files_in_use_and_kills_their_entries(synth, home, windows_semantics):
    synth.write(home)
    assert run_cli("download", "tiny").returncode == 0
    (x, t), (xt, tt) = load_mnist(normalize=False, dataset="tiny")
    proc = run_cli("clean", "tiny", "--yes")
    assert proc.returncode == 1
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "in use" in err and f"{IMAGES}.npy" in err, err
    folder = home / "tiny"
    assert not list(folder.glob("*.gz"))  # everything not in use is gone
    assert not list((folder / ".cache").glob("*.json"))  # entries in use are dead: no manifest
    # A new load does not trust what is left, and rebuilds beside the mapped files.
    synth.write(home)
    (y, _), _ = load_mnist(normalize=False, dataset="tiny")
    np.testing.assert_array_equal(y, expected(synth)[0])
    del x, t, xt, tt, y, _
    gc.collect()
    proc = run_cli("clean", "tiny", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert not [p for p in folder.rglob("*") if p.is_file() and p.suffix != ".lock"]


def test_a_download_cannot_replace_a_file_in_use_then_completes(synth, home, server, windows_semantics):
    """A user's file under the published name is never replaced; the verified download goes to
    ``.downloaded/``, and when an earlier, damaged copy there is held open, one line says so."""
    server.serve_dataset(synth)
    folder = home / "tiny"
    (folder / ".downloaded").mkdir(parents=True)
    users = folder / "train-labels-idx1-ubyte.gz"
    users.write_bytes(b"<html>not the data</html>")
    bad = folder / ".downloaded" / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(b"<html>not the data either</html>")
    with open(users, "rb"), open(bad, "rb"):  # another program reads both: the set-aside one cannot be replaced
        with pytest.raises(DataFolderError, match="in use") as info:
            load_mnist(dataset="tiny", mirrors=[server.url])
        assert len(str(info.value).splitlines()) == 1 and str(bad) in str(info.value)
    assert (folder / "train-labels-idx1-ubyte.gz.part").exists()  # verified, kept for the next call
    (_x, t), _ = load_mnist(normalize=False, dataset="tiny", mirrors=[server.url])
    np.testing.assert_array_equal(t, expected(synth)[1])
    assert not list(folder.glob("*.part"))
    assert users.read_bytes() == b"<html>not the data</html>"  # the user's file: left alone


def test_verify_fix_reports_a_damaged_file_in_use_then_repairs_it(synth, home, server, windows_semantics):
    server.serve_dataset(synth)
    synth.write(home)
    bad = home / "tiny" / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(b"<html>oops</html>")
    env = {**os.environ, "MNISTKIT_MIRROR": server.url}
    with open(bad, "rb"):
        proc = run_cli("verify", "tiny", "--fix", env=env)
    assert proc.returncode == 1 and "could not repair t10k-labels-idx1-ubyte.gz" in proc.stdout, proc.stdout
    assert "in use" in proc.stdout
    proc = run_cli("verify", "tiny", "--fix", env=env)
    assert proc.returncode == 0 and "1 repaired" in proc.stdout, proc.stdout + proc.stderr


LOCK_HOLDER = """
import sys
sys.path.insert(0, {tests!r})
from helpers import make_synthetic
from mnistkit.store import Store
data = make_synthetic()
store = Store(data.dataset)
with store.lock(data.dataset.files[0]):
    print("HELD", flush=True)
    sys.stdin.read()  # until killed
"""


def test_the_lock_of_a_killed_holder_is_free_at_once(synth, home):
    """Popen.kill is SIGKILL on POSIX and TerminateProcess on Windows: either way the OS frees the lock."""
    child = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER.format(tests=str(Path(__file__).parent))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=os.environ.copy(),
    )
    try:
        assert child.stdout.readline().strip() == b"HELD"
        spec = synth.dataset.files[0]
        with pytest.raises(LockTimeout, match="delete that file"), Store(synth.dataset, lock_timeout=0.2).lock(spec):
            pass
    finally:
        child.kill()
        child.wait()
    with Store(synth.dataset, lock_timeout=30).lock(spec):
        pass


def test_a_data_folder_past_260_characters_without_long_paths_is_refused(synth, tmp_path, monkeypatch):
    monkeypatch.setattr(_winfs, "IS_WINDOWS", True)
    monkeypatch.setattr(_winfs, "long_paths_enabled", lambda: False)
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 8)
    with pytest.raises(DataFolderError, match="260-character limit") as info:
        load_mnist(dataset="tiny", data_home=deep)
    assert "MNISTKIT_HOME" in str(info.value) and not deep.exists()
    short = tmp_path / "d"
    synth.write(short)
    (x, _), _ = load_mnist(normalize=False, dataset="tiny", data_home=short)  # a short one is fine
    np.testing.assert_array_equal(x, expected(synth)[0])


def test_file_urls_follow_windows_rules():
    assert file_url_path("file:///C:/data%20sets/x", windows=True) == "C:\\data sets\\x"
    assert file_url_path("file://server/share/mnist", windows=True) == "\\\\server\\share\\mnist"
    assert file_url_path("file://localhost/D:/m", windows=True) == "D:\\m"
    assert file_url_path("file:///srv/data%20sets", windows=False) == "/srv/data sets"


def test_windows_file_semantics_are_on_where_asked():
    """CI's emulated run really emulates (a run that silently did not would prove nothing)."""
    if os.environ.get(winsem.ENV) != "1" or sys.platform == "win32":
        pytest.skip(f"{winsem.ENV}=1 not set: the suite runs with POSIX file semantics")
    assert os.unlink is not winsem._REAL["unlink"]


@pytest.mark.parametrize("named", ["../../outside.npy", "t10k-images-idx3-ubyte.npy", f"{IMAGES}.xyz.npy", 7])
def test_a_manifest_naming_a_foreign_file_is_not_followed(synth, home, named):
    """Only ``<stem>.npy`` or ``<stem>.<12 hex>.npy`` in the cache folder: anything else means the usual name
    (a field that is not even a string makes the manifest unreadable: the entry is rebuilt)."""
    synth.write(home)
    load_mnist(normalize=False, dataset="tiny")
    manifest = home / "tiny" / ".cache" / f"{IMAGES}.json"
    data = json.loads(manifest.read_text())
    data["npy"] = named
    manifest.write_text(json.dumps(data))
    store = Store(synth.dataset)
    spec = synth.dataset.file(f"{IMAGES}.gz")
    assert store.npy_path(spec, store.read_manifest(spec)) == home / "tiny" / ".cache" / f"{IMAGES}.npy"
    assert (store.cached(spec) is None) == (not isinstance(named, str))
    (x, _), _ = load_mnist(normalize=False, dataset="tiny")
    np.testing.assert_array_equal(x, expected(synth)[0])


def test_export_over_a_file_open_elsewhere_says_so_and_leaves_it(synth, home, tmp_path, windows_semantics):
    """Windows: the old CSV open in a spreadsheet cannot be replaced; one line says so, nothing is left behind."""
    synth.write(home)
    out = tmp_path / "csv"
    assert run_cli("export", "tiny", "--format", "csv", "--out", out).returncode == 0
    old = out / "tiny_test.csv"
    before = old.read_bytes()
    with open(old, "rb"):
        proc = run_cli("export", "tiny", "--format", "csv", "--out", out)
    assert proc.returncode == 1 and "in use" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert old.read_bytes() == before and not list(out.glob(".*.tmp"))
