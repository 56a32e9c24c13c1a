"""The MNIST family end to end: synthetic files in the published layouts, served from a loopback server."""

from __future__ import annotations

import mmap
import zipfile

import family
import numpy as np
import pytest
from helpers import Route

import mnistkit
from mnistkit import ArgumentError, ChecksumError, IdxFormatError, MissingFilesError, load, load_mnist
from mnistkit.store import Store


@pytest.fixture
def emnist(monkeypatch):
    fam = family.emnist()
    fam.register(monkeypatch)
    return fam


@pytest.mark.parametrize("name", ["fashion-mnist", "kmnist"])
def test_mnist_layout_datasets_load_from_a_mirror(name, monkeypatch, server, home):
    fam = family.mnist_layout(name)
    fam.register(monkeypatch)
    fam.serve(server)
    (x, t), (xt, tt) = load_mnist(normalize=False, flatten=False, dataset=name, mirrors=server.url)
    np.testing.assert_array_equal(x[:, 0], fam.arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(tt, fam.arrays["t10k-labels-idx1-ubyte.gz"])
    assert x.shape == (12, 1, 28, 28) and t.dtype == np.uint8 and xt.shape == (5, 1, 28, 28)
    _, onehot = load(name, "test", one_hot_label=True, offline=True)
    assert onehot.shape == (5, 10) and (onehot.argmax(1) == tt).all()


def test_all_six_emnist_splits_come_from_one_archive_upright(emnist, server, home):
    emnist.serve(server)
    for name in (
        "emnist-byclass",
        "emnist-bymerge",
        "emnist-balanced",
        "emnist-letters",
        "emnist-digits",
        "emnist-mnist",
    ):
        ds = mnistkit.get_dataset(name)
        for split, part in (("train", "train"), ("test", "test")):
            stored = emnist.arrays[f"{name}-{part}-images-idx3-ubyte.gz"]
            want_t = emnist.arrays[f"{name}-{part}-labels-idx1-ubyte.gz"]
            x, t = load(name, split, normalize=False, flatten=False, mirrors=server.url)
            assert x.shape == (len(stored), 1, 28, 28) and x.dtype == np.uint8
            np.testing.assert_array_equal(x[:, 0], stored.transpose(0, 2, 1))  # upright by default
            np.testing.assert_array_equal(t, want_t)
            xs, _ = load(name, split, normalize=False, orientation="stored", offline=True)
            np.testing.assert_array_equal(xs, stored.reshape(len(stored), 784))
            _, onehot = load(name, split, one_hot_label=True, offline=True)
            assert onehot.shape == (len(t), ds.num_classes)
            assert (onehot.argmax(1) + ds.label_offset == t).all()
    assert server.gets("/emnist/gzip.zip") == 1  # one download for all six datasets
    folder = home / "emnist"
    assert sorted(p.name for p in folder.iterdir()) == [".cache", ".locks", "gzip.zip"]  # nothing unpacked


def test_emnist_letters_labels_run_1_to_26_and_map_to_both_cases(emnist, home):
    emnist.write(home)
    _, t = load("emnist-letters", offline=True)
    assert t.min() >= 1 and t.max() <= 26
    ds = mnistkit.get_dataset("emnist-letters")
    assert ds.num_classes == 26 and ds.class_name(1) == "Aa" and ds.class_name(26) == "Zz"
    mapping = mnistkit.label_mapping("emnist-letters", offline=True)
    assert mapping == {i + 1: c for i, c in enumerate(ds.classes)}
    byclass = mnistkit.label_mapping("emnist-byclass", offline=True)
    assert len(byclass) == 62 and byclass[10] == "A" and byclass[61] == "z"
    with pytest.raises(ArgumentError, match="no label mapping"):
        mnistkit.label_mapping("mnist")


def test_emnist_warm_load_is_a_memory_map_without_the_archive(emnist, home):
    emnist.write(home)
    load("emnist-digits", "test", offline=True)
    (home / "emnist" / "gzip.zip").unlink()
    x, _ = load("emnist-digits", "test", normalize=False, flatten=False, offline=True)
    base = x
    while isinstance(base, np.ndarray) and not isinstance(base, np.memmap):
        base = base.base
    assert isinstance(base, (np.memmap, mmap.mmap))  # the array's memory is the mapped cache file
    stored = emnist.arrays["emnist-digits-test-images-idx3-ubyte.gz"]
    np.testing.assert_array_equal(x[:, 0], stored.transpose(0, 2, 1))


def _damage_member(body: bytes, member: str) -> bytes:
    """Flip a byte in the middle of ``member``'s data, leaving the zip's structure intact."""
    with zipfile.ZipFile(__import__("io").BytesIO(body)) as zf:
        info = zf.getinfo(member)
    data_start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    damaged = bytearray(body)
    damaged[data_start + info.compress_size // 2] ^= 0xFF
    return bytes(damaged)


def test_corrupted_zip_member_is_detected_and_named(emnist, home):
    member = "gzip/emnist-balanced-train-images-idx3-ubyte.gz"
    emnist.files["emnist"]["gzip.zip"] = _damage_member(emnist.files["emnist"]["gzip.zip"], member)
    emnist.write(home)
    with pytest.raises(MissingFilesError) as info:
        load("emnist-balanced", offline=True)
    assert member in str(info.value) and "gzip.zip" in str(info.value)
    from mnistkit.integrity import verify

    spec = emnist.datasets["emnist-balanced"].file("gzip.zip")
    with pytest.raises(ChecksumError, match=member):
        verify(home / "emnist" / "gzip.zip", spec)


def test_damaged_member_of_an_unpinned_archive_is_named_when_read(monkeypatch, home):
    fam = family.emnist(pin_archive=False, compression=zipfile.ZIP_STORED)
    member = "gzip/emnist-mnist-test-labels-idx1-ubyte.gz"
    fam.files["emnist"]["gzip.zip"] = _damage_member(fam.files["emnist"]["gzip.zip"], member)
    fam.register(monkeypatch)
    fam.write(home)
    load("emnist-digits", "test", offline=True)  # the other members are fine
    with pytest.raises(IdxFormatError, match=member):
        load("emnist-mnist", "test", offline=True)


def test_interrupted_archive_download_resumes(emnist, server, home):
    emnist.serve(server)
    body = emnist.files["emnist"]["gzip.zip"]
    server.routes["/emnist/gzip.zip"] = Route(body=body, drop_after=len(body) // 2)
    load("emnist-mnist", "test", mirrors=server.url)
    ranges = [h.get("Range") for m, p, h in server.requests if p == "/emnist/gzip.zip"]
    assert len(ranges) == 2 and ranges[0] is None
    resumed_at = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= len(body) // 2  # the second request asked only for what was missing


def test_qmnist_splits_label_table_and_xz(monkeypatch, server, home):
    fam = family.qmnist()
    fam.register(monkeypatch)
    fam.serve(server)
    train_t = fam.arrays["qmnist-train-labels-idx2-int.gz"]
    x, t = load("qmnist", normalize=False, mirrors=server.url)
    np.testing.assert_array_equal(x, fam.arrays["qmnist-train-images-idx3-ubyte.gz"].reshape(12, 784))
    np.testing.assert_array_equal(t, train_t[:, 0])
    assert t.shape == (12,) and t.dtype == np.int32
    _, table = load("qmnist", label_table=True, offline=True)
    assert table.dtype.names == mnistkit.get_dataset("qmnist").label_columns
    np.testing.assert_array_equal(table["writer_id"], train_t[:, 2])
    np.testing.assert_array_equal(table["class"], train_t[:, 0])
    test_x = fam.arrays["qmnist-test-images-idx3-ubyte.gz"]
    x10, _t10 = load("qmnist", "test10k", normalize=False, flatten=False, mirrors=server.url)
    x50, _ = load("qmnist", "test50k", normalize=False, flatten=False, offline=True)
    np.testing.assert_array_equal(np.concatenate([x10, x50])[:, 0], test_x)
    assert len(x10) == 4 and len(x50) == 8
    xn, tn = load("qmnist", "nist", normalize=False, one_hot_label=True, mirrors=server.url)  # the xz files
    np.testing.assert_array_equal(xn, fam.arrays["xnist-images-idx3-ubyte.xz"].reshape(15, 784))
    assert tn.shape == (15, 10) and (tn.argmax(1) == fam.arrays["xnist-labels-idx2-int.xz"][:, 0]).all()
    with pytest.raises(ArgumentError, match="not a table"):
        load("emnist-mnist", label_table=True, offline=True)  # refused before looking for files
    with pytest.raises(ArgumentError, match="cannot be combined"):
        load("qmnist", label_table=True, one_hot_label=True, offline=True)
    with pytest.raises(ArgumentError, match="orientation='sideways'"):
        load("qmnist", orientation="sideways", offline=True)


def test_md5_pinned_file_with_other_content_is_refused(monkeypatch, home):
    fam = family.qmnist()
    fam.register(monkeypatch)
    other = family.qmnist(seed=1)
    fam.files["qmnist"]["qmnist-train-labels-idx2-int.gz"] = other.files["qmnist"]["qmnist-train-labels-idx2-int.gz"]
    fam.write(home)
    with pytest.raises(MissingFilesError, match="md5"):
        load("qmnist", offline=True)


def test_emnist_entries_share_one_folder(emnist, home):
    stores = {Store(ds, home).folder for ds in emnist.datasets.values()}
    assert stores == {home / "emnist"}
