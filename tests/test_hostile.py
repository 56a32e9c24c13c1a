"""Hostile environments: read-only folders, a full disk, flipped cache bytes, symlinks, odd paths."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mnistkit import DataFolderError, MissingFilesError, load_mnist
from mnistkit.store import Store
from platforms import posix_only
from test_sources import publish, with_mirrors
from test_torture import expected_digest, leftovers

TESTS = str(Path(__file__).resolve().parent)
IMAGES = "train-images-idx3-ubyte.gz"

# Loads the synthetic dataset in a child process and prints the digest, or the error's type and text.
LOAD = textwrap.dedent(
    """
    import dataclasses, resource, signal, sys, warnings
    sys.path.insert(0, {tests!r})
    from helpers import make_synthetic
    from torture_child import digest
    from mnistkit import load_mnist, registry
    ds = dataclasses.replace(make_synthetic().dataset, mirrors=({base!r},))
    registry.DATASETS[ds.name] = ds
    if {fsize!r} is not None:  # a full disk: writes past this size fail with EFBIG, not a signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({fsize!r}, {fsize!r}))
    try:
        (x, t), (xt, tt) = load_mnist(normalize=False, dataset=ds.name, data_home={home!r}, progress=False)
        print("DIGEST", digest((x, t, xt, tt)))
    except Exception as err:
        print("ERROR", type(err).__name__, str(err).replace("\\n", " | "))
    """
)


def load_in_child(home: Path, base: str = "http://127.0.0.1:9/", fsize: int | None = None, read_only: bool = False):
    code = LOAD.format(tests=TESTS, base=base, home=str(home), fsize=fsize)
    cmd = [sys.executable, "-c", code]
    if read_only:  # a real read-only mount (EROFS), in a private mount namespace: works as root too
        cmd = ["unshare", "-rm", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(home), *cmd]
    out = subprocess.run(cmd, capture_output=True, timeout=120, env=os.environ.copy())
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode().strip()


def read_only_mounts_work(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    cmd = ["unshare", "-rm", "sh", "-c", 'mount --bind -o ro "$0" "$0" && ! touch "$0/x" 2>/dev/null', str(probe)]
    return shutil.which("unshare") is not None and subprocess.run(cmd, capture_output=True).returncode == 0


@pytest.fixture
def read_only(tmp_path):
    if not read_only_mounts_work(tmp_path):
        pytest.skip("no user namespaces here: cannot make a read-only mount")


@pytest.mark.parametrize("state", ["cached", "files only", "empty"])
def test_read_only_data_folder(synth, home, read_only, state, tally):
    if state != "empty":
        synth.write(home)
    if state == "cached":
        load_mnist(dataset=synth.dataset.name)
    home.mkdir(exist_ok=True)
    before = sorted(p.name for p in home.rglob("*"))
    out = load_in_child(home, read_only=True)
    if state == "empty":  # nothing to read and nowhere to write: a clear error naming the folder
        assert out.startswith("ERROR MissingFilesError") and str(home / synth.dataset.name) in out
        assert "cannot be written" in out
    else:  # the data is there: read it, cached or not
        assert out == f"DIGEST {expected_digest(synth)}"
    assert sorted(p.name for p in home.rglob("*")) == before
    tally.add(f"{state}: " + ("loaded" if out.startswith("DIGEST") else "clear error naming the folder"))


@posix_only("RLIMIT_FSIZE (the full disk is simulated with it)")
@pytest.mark.parametrize("where", ["download", "cache"])
def test_full_disk_gives_a_clear_error_and_keeps_nothing_half_written(synth, home, server, where, tally):
    publish(server, synth, "/m/")
    spec = synth.dataset.file(IMAGES)
    limit = 10_000  # bytes per file: the images (47 KB) do not fit, the labels do
    if where == "cache":
        synth.write(home)  # already downloaded (by us, without the limit): the .npy write fails
    out = load_in_child(home, server.url + "/m/", fsize=limit)
    folder = home / synth.dataset.name
    assert out.startswith("ERROR DataFolderError"), out
    assert "File too large" in out and str(folder) in out and "MNISTKIT_HOME" in out
    assert leftovers(folder) == []  # neither the .part nor a temporary .npy
    assert not (folder / ".cache" / f"{spec.stem}.npy").exists()
    if where == "download":
        assert not (folder / IMAGES).exists()
    # with room again, the next call completes
    assert load_in_child(home, server.url + "/m/") == f"DIGEST {expected_digest(synth)}"
    tally.add(f"disk full during {where}: DataFolderError naming the folder, nothing kept")


def full_check(store: Store, spec) -> bool:
    """The full re-hash of a cache entry: SHA-256 of the IDX header + .npy payload vs the manifest.

    (What ``mnistkit verify`` does once the CLI lands; the cheap check on every load is size + header.)
    """
    npy, manifest = store.cache_paths(spec)
    array = np.load(npy, mmap_mode="r")
    from mnistkit.idx import IdxHeader

    h = hashlib.sha256(IdxHeader(spec.type_code, tuple(spec.shape)).to_bytes())
    h.update(array.tobytes())
    return "sha256:" + h.hexdigest() == json.loads(manifest.read_text())["decoded_sha256"]


def test_flipped_cache_bytes_are_caught_by_the_full_check_truncation_by_the_cheap_one(synth, home, tally):
    synth.write(home)
    load_mnist(dataset=synth.dataset.name)
    store, spec = Store(synth.dataset, home), synth.dataset.file(IMAGES)
    npy, _ = store.cache_paths(spec)
    assert full_check(store, spec)
    size = npy.stat().st_size
    for offset in (size - 1, size // 2, 200):  # payload bytes: the header is checked on every load
        with open(npy, "r+b") as fh:
            fh.seek(offset)
            byte = fh.read(1)
            fh.seek(offset)
            fh.write(bytes([byte[0] ^ 0x10]))
        assert store.cached(spec) is not None  # same size, same header: the cheap check cannot see it
        assert not full_check(store, spec)
        with open(npy, "r+b") as fh:  # put it back
            fh.seek(offset)
            fh.write(byte)
        tally.add("flipped byte: detected by the full re-hash")
    with open(npy, "r+b") as fh:
        fh.truncate(size - 1)
    assert store.cached(spec) is None  # truncation: the cheap check refuses it, the entry is rebuilt
    (x, _), _ = load_mnist(normalize=False, dataset=synth.dataset.name)
    np.testing.assert_array_equal(x, synth.arrays[IMAGES].reshape(-1, 784))
    tally.add("truncated: refused by the cheap check, rebuilt")


@pytest.mark.parametrize("link", ["data home", "dataset folder", "file"])
def test_symlinked_data_folder(synth, tmp_path, link, tally):
    real = tmp_path / "real"
    synth.write(real)
    home = tmp_path / "home"
    if link == "data home":
        home.symlink_to(real)
    elif link == "dataset folder":
        home.mkdir()
        (home / synth.dataset.name).symlink_to(real / synth.dataset.name)
    else:  # each published file a link into another folder, as a shared read-only copy
        (home / synth.dataset.name).mkdir(parents=True)
        for name in synth.gz:
            (home / synth.dataset.name / name).symlink_to(real / synth.dataset.name / name)
    (_x, t), _ = load_mnist(normalize=False, dataset=synth.dataset.name, data_home=home, offline=True)
    np.testing.assert_array_equal(t, synth.arrays["train-labels-idx1-ubyte.gz"])
    assert leftovers(home / synth.dataset.name) == []
    tally.add(f"symlinked {link}: loads")


def test_dangling_symlink_as_data_folder_is_a_clear_error(synth, tmp_path, tally):
    home = tmp_path / "home"
    home.symlink_to(tmp_path / "gone" / "away")
    with pytest.raises((DataFolderError, MissingFilesError)) as info:
        load_mnist(dataset=synth.dataset.name, data_home=home, offline=True)
    assert str(home) in str(info.value)
    tally.add("dangling symlink: error naming the folder")


def test_path_with_spaces_and_non_ascii(synth, tmp_path, server, monkeypatch, tally):
    home = tmp_path / "my data — dätä 数据 ✓"
    ds = with_mirrors(monkeypatch, synth, server.url + "/m/")
    publish(server, synth, "/m/")
    (x, _t), _ = load_mnist(normalize=False, dataset=ds.name, data_home=home)
    np.testing.assert_array_equal(x, synth.arrays[IMAGES].reshape(-1, 784))
    assert leftovers(home / ds.name) == []
    # the same folder as a file:// mirror (percent-encoded) for another data home, offline
    other = tmp_path / "other home"
    (x2, _), _ = load_mnist(normalize=False, dataset=ds.name, data_home=other, mirrors=home.as_uri(), offline=True)
    np.testing.assert_array_equal(x2, x)
    # and errors name the path intact
    with pytest.raises(MissingFilesError) as info:
        load_mnist(dataset=ds.name, data_home=home / "empty ü", offline=True)
    assert str(home / "empty ü" / ds.name) in str(info.value)
    tally.add("spaces and non-ASCII: download, file:// mirror, error text")
