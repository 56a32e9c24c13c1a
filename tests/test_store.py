"""The data folder and the cache: hand-placed files, verification, atomicity, odd folders."""

from __future__ import annotations

import gc
import gzip
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mnistkit import ChecksumError, DataFolderError, MissingFilesError, load_mnist
from mnistkit.store import Store, resolve_home
from platforms import WINDOWS, posix_only

ALT = {
    "train-images-idx3-ubyte.gz": "train-images.idx3-ubyte",
    "train-labels-idx1-ubyte.gz": "train-labels.idx1-ubyte",
    "t10k-images-idx3-ubyte.gz": "t10k-images.idx3-ubyte",
    "t10k-labels-idx1-ubyte.gz": "t10k-labels.idx1-ubyte",
}


def expected(synth):
    a = synth.arrays
    return a["train-images-idx3-ubyte.gz"].reshape(60, 784), a["train-labels-idx1-ubyte.gz"]


@pytest.mark.parametrize(
    "spelling,compress",
    [("published", True), ("published", False), ("dotted", False), ("dotted", True), ("hyphen", False)],
)
def test_hand_placed_files_under_either_spelling(synth, home, spelling, compress):
    if spelling == "published":
        names = None  # .gz name; raw bytes under a .gz name is what browsers leave behind
    elif spelling == "dotted":
        names = {k: v + (".gz" if compress else "") for k, v in ALT.items()}
    else:
        names = {k: k[:-3] for k in ALT}
    synth.write(home, names=names, compress=compress)
    (x, t), _ = load_mnist(normalize=False, dataset="tiny", offline=True)
    want_x, want_t = expected(synth)
    np.testing.assert_array_equal(x, want_x)
    np.testing.assert_array_equal(t, want_t)


def test_recompressed_copy_is_accepted_and_other_data_refused(synth, home):
    folder = home / "tiny"
    synth.write(home)
    name = "train-images-idx3-ubyte.gz"
    (folder / name).write_bytes(gzip.compress(synth.raw[name], compresslevel=1))  # other bytes, same data
    load_mnist(dataset="tiny", offline=True)
    # now a file with the right shape but other pixels: refused, named, and nothing cached
    store = Store(synth.dataset, home)
    for p in store.cache_folder.iterdir():
        p.unlink()
    bad = synth.arrays[name].copy()
    bad[0, 0, 0] ^= 1
    from mnistkit.idx import encode_idx

    (folder / name).write_bytes(gzip.compress(encode_idx(bad)))
    with pytest.raises(MissingFilesError) as info:
        load_mnist(dataset="tiny", offline=True)
    assert "files found but rejected" in str(info.value) and name in str(info.value)
    assert "sha256" in str(info.value)
    assert not (store.cache_folder / "train-images-idx3-ubyte.npy").exists()


def test_verify_rejects_wrong_content_with_checksum_error(synth, tmp_path):
    from mnistkit.integrity import verify

    spec = synth.dataset.file("train-labels-idx1-ubyte.gz")
    wrong = bytearray(synth.raw[spec.name])
    wrong[-1] ^= 0xFF
    with pytest.raises(ChecksumError) as info:
        verify(bytes(wrong), spec, source="labels.gz")
    assert info.value.expected == spec.decoded_sha256.split(":")[1]
    assert "labels.gz" in str(info.value)


def test_warm_load_uses_cache_without_source_files(synth, home):
    synth.write(home)
    load_mnist(dataset="tiny")
    for name in synth.raw:
        (home / "tiny" / name).unlink()
    (x, _t), _ = load_mnist(normalize=False, dataset="tiny", offline=True)
    np.testing.assert_array_equal(x, expected(synth)[0])
    manifest = json.loads((home / "tiny" / ".cache" / "train-images-idx3-ubyte.json").read_text())
    assert manifest["decoded_sha256"] == synth.dataset.file("train-images-idx3-ubyte.gz").decoded_sha256


@pytest.mark.parametrize("damage", ["truncate", "manifest", "header", "reshaped", "delete-manifest"])
def test_damaged_cache_entry_is_rebuilt_not_trusted(synth, home, damage):
    synth.write(home)
    load_mnist(dataset="tiny")
    cache = home / "tiny" / ".cache"
    npy, manifest = cache / "train-images-idx3-ubyte.npy", cache / "train-images-idx3-ubyte.json"
    if damage == "truncate":
        with open(npy, "r+b") as fh:
            fh.truncate(npy.stat().st_size - 100)
    elif damage == "manifest":
        manifest.write_text("{not json")
    elif damage == "header":
        data = bytearray(npy.read_bytes())
        data[10:20] = b"XXXXXXXXXX"
        npy.write_bytes(bytes(data))
    elif damage == "reshaped":  # a valid .npy of the same size, but another shape: not what was verified
        np.save(npy, np.load(npy).reshape(60, 784))
        assert npy.stat().st_size == json.loads(manifest.read_text())["npy_size"]
    else:
        manifest.unlink()
    store = Store(synth.dataset, home)
    assert store.cached(synth.dataset.file("train-images-idx3-ubyte.gz")) is None
    (x, _), _ = load_mnist(normalize=False, dataset="tiny")
    np.testing.assert_array_equal(x, expected(synth)[0])


KILL_CHILD = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {tests!r})
    from helpers import make_synthetic
    from mnistkit import registry, store, load_mnist
    synth = make_synthetic()
    registry.DATASETS["tiny"] = synth.dataset
    real_verify = store.verify

    def verify_then_hang(path, spec, sink=None, source=None):
        def sink_then_stop(piece):
            sink(piece[: len(piece) // 2])   # half the payload is in the temporary file
            print("WRITING", flush=True)
            sys.stdin.read()                 # block here until the parent kills us
        return real_verify(path, spec, sink=sink_then_stop, source=source)

    store.verify = verify_then_hang
    load_mnist(dataset="tiny")
    """
)


@posix_only("SIGKILL")
def test_cache_survives_a_process_killed_mid_write(synth, home):
    synth.write(home)
    child = subprocess.Popen(
        [sys.executable, "-c", KILL_CHILD.format(tests=str(Path(__file__).parent))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=os.environ.copy(),
    )
    assert child.stdout.readline().strip() == b"WRITING"  # the real condition, no sleeping
    child.send_signal(signal.SIGKILL)
    child.wait()
    cache = home / "tiny" / ".cache"
    leftovers = list(cache.glob(".*.tmp"))
    assert leftovers, "the child should have died with a temporary file half-written"
    assert not (cache / "train-images-idx3-ubyte.npy").exists()
    (x, _t), _ = load_mnist(normalize=False, dataset="tiny")
    np.testing.assert_array_equal(x, expected(synth)[0])
    assert not list(cache.glob(".*.tmp")), "stale temporary files should be cleaned up"


def test_data_home_resolution(monkeypatch, tmp_path):
    assert resolve_home(tmp_path / "a") == tmp_path / "a"
    monkeypatch.setenv("MNISTKIT_HOME", str(tmp_path / "b"))
    assert resolve_home() == tmp_path / "b"
    monkeypatch.delenv("MNISTKIT_HOME")
    default = resolve_home()
    import mnistkit

    assert Path(mnistkit.__file__).parent not in default.parents
    assert "mnistkit" in str(default)


@pytest.mark.skipif(WINDOWS, reason="Windows folder permissions are ACLs, not mode bits")
@pytest.mark.skipif(not WINDOWS and os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder_names_itself_and_the_variable(synth, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises((DataFolderError, MissingFilesError)) as info:
        load_mnist(dataset="tiny", data_home=ro / "sub")
    assert str(ro) in str(info.value)


def test_uncreatable_folder_gives_data_folder_error(synth, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DataFolderError) as info:
        Store(synth.dataset, blocker / "x")._make_folder(blocker / "x" / "tiny")
    assert str(blocker) in str(info.value) and "MNISTKIT_HOME" in str(info.value)
    assert isinstance(info.value, OSError)


def test_read_only_folder_with_files_is_used_uncached(synth, home, monkeypatch):
    synth.write(home)
    # Simulate a folder we may not write (works as root too): creating the cache folder fails.
    real_mkdir = Path.mkdir

    def no_mkdir(self, *args, **kwargs):
        if ".cache" in self.parts or ".locks" in self.parts:
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", no_mkdir)
    from mnistkit import MnistkitWarning

    with pytest.warns(MnistkitWarning, match="is not writable"):
        (x, _t), _ = load_mnist(normalize=False, dataset="tiny", offline=True)
    np.testing.assert_array_equal(x, expected(synth)[0])
    assert x.flags.writeable
    assert not (home / "tiny" / ".cache").exists()


def test_cache_files_are_readable_by_others(synth, home):
    synth.write(home)
    old = os.umask(0o022)
    try:
        load_mnist(dataset="tiny")
    finally:
        os.umask(old)
    npy = home / "tiny" / ".cache" / "train-images-idx3-ubyte.npy"
    assert npy.stat().st_mode & 0o044 == 0o044


# --- issue 20: damaged folders ----------------------------------------------------------------------


def _mirrored(monkeypatch, synth, server):
    import dataclasses

    from helpers import Route

    from mnistkit import registry

    ds = dataclasses.replace(synth.dataset, mirrors=(server.url + "/m/",))
    monkeypatch.setitem(registry.DATASETS, ds.name, ds)
    for name, data in synth.gz.items():
        server.routes[f"/m/{name}"] = Route(body=data)
    return ds


def test_wrong_hand_placed_file_is_kept_and_the_download_set_aside(synth, home, server, monkeypatch, caplog):
    """A relabelled file under the published name is the user's: never overwritten."""
    from mnistkit.idx import encode_idx

    ds = _mirrored(monkeypatch, synth, server)
    name = "t10k-labels-idx1-ubyte.gz"
    relabelled = synth.arrays[name].copy()
    relabelled[:5] = (relabelled[:5] + 1) % 10
    mine = gzip.compress(encode_idx(relabelled))
    folder = home / ds.name
    folder.mkdir(parents=True)
    (folder / name).write_bytes(mine)
    with caplog.at_level("WARNING", logger="mnistkit"):
        _, (_, t) = load_mnist(normalize=False, dataset=ds.name)
    np.testing.assert_array_equal(t, synth.arrays[name])  # the published labels were loaded
    assert (folder / name).read_bytes() == mine  # and the user's file is untouched
    aside = folder / ".downloaded" / name
    assert aside.read_bytes() == synth.gz[name]
    assert str(aside) in caplog.text and "left alone" in caplog.text
    # the set-aside copy is found like any other: rebuild the cache without the network
    del _, t  # the arrays map the cache files, which Windows would not let go of
    gc.collect()
    for p in (folder / ".cache").iterdir():
        p.unlink()
    _, (_, t) = load_mnist(normalize=False, dataset=ds.name, offline=True)
    np.testing.assert_array_equal(t, synth.arrays[name])
    assert server.gets(f"/m/{name}") == 1
    # a second download (another cache loss while online) replaces only our own copy
    from mnistkit.api import dataset_store

    assert dataset_store(ds, data_home=home).fetch(ds.file(name)) == aside
    assert (folder / name).read_bytes() == mine


@pytest.mark.parametrize("manifest", ["[]", "1", '"x"', "true", "null"])
def test_manifest_of_another_json_shape_is_treated_as_unreadable(synth, home, capsys, manifest):
    from mnistkit import cli

    synth.write(home)
    load_mnist(dataset="tiny")
    for path in (home / "tiny" / ".cache").glob("*.json"):
        path.write_text(manifest)
    assert cli.main(["list"]) == 0
    assert "tiny" in capsys.readouterr().out
    (x, _t), _ = load_mnist(normalize=False, dataset="tiny", offline=True)  # rebuilt
    np.testing.assert_array_equal(x, expected(synth)[0])
    (home / "tiny" / ".cache" / "train-labels-idx1-ubyte.json").write_text(manifest)
    assert cli.main(["verify", "--fix", "tiny"]) == 0
    assert "1 bad, 1 repaired" in capsys.readouterr().out


def test_a_file_named_cache_is_named_as_the_cause_and_clean_is_all_or_nothing(synth, home, server, monkeypatch, capsys):
    from mnistkit import cli

    ds = _mirrored(monkeypatch, synth, server)
    synth.write(home)
    folder = home / ds.name
    (folder / ".cache").write_text("a user's notes, not a folder")
    with pytest.raises(DataFolderError, match=r"\.cache is a file, not a folder"):
        load_mnist(dataset=ds.name)
    assert cli.main(["download", ds.name]) != 0
    assert ".cache is a file, not a folder" in capsys.readouterr().err
    before = sorted(p.name for p in folder.iterdir())
    assert cli.main(["clean", "--yes", ds.name]) != 0
    assert ".cache is a file, not a folder" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing deleted
    assert all((folder / name).read_bytes() == data for name, data in synth.gz.items())
    assert (folder / ".cache").read_text() == "a user's notes, not a folder"


def test_a_wrong_file_and_a_file_named_downloaded_give_a_clear_error(synth, home, server, monkeypatch):
    ds = _mirrored(monkeypatch, synth, server)
    folder = home / ds.name
    folder.mkdir(parents=True)
    name = "t10k-labels-idx1-ubyte.gz"
    (folder / name).write_bytes(b"my own notes, not IDX data")
    (folder / ".downloaded").write_text("also mine")
    with pytest.raises(DataFolderError, match=r"\.downloaded is not a folder") as info:
        load_mnist(dataset=ds.name)
    assert str(folder / name) in str(info.value)
    assert (folder / name).read_bytes() == b"my own notes, not IDX data"
    assert (folder / ".downloaded").read_text() == "also mine"


def test_a_refused_local_file_is_listed_first_when_every_source_fails(synth, home, server, monkeypatch):
    import dataclasses

    from mnistkit import DownloadError, registry

    ds = dataclasses.replace(synth.dataset, mirrors=(server.url + "/gone/",))  # every file: 404
    monkeypatch.setitem(registry.DATASETS, ds.name, ds)
    folder = home / ds.name
    folder.mkdir(parents=True)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x14" + bytes(20)))
    from mnistkit.sources import Downloader

    with pytest.raises(DownloadError) as info:
        Store(ds, home, downloader=Downloader(progress=False)).load(ds.file("t10k-labels-idx1-ubyte.gz"))
    attempts = info.value.attempts
    assert attempts[0][0] == str(folder) and attempts[0][1].startswith("found but rejected: ")
    assert "HTTP 404" in attempts[1][1] and len(attempts) == 2
    assert isinstance(info.value, DownloadError) and str(folder) in str(info.value)
