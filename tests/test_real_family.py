"""The family's real published files in ../shared/data (skipped, with the reason, where they are absent).

Each load goes through a folder source (``mirrors=../shared/data``, offline): the files are fetched,
checked as a download is, and cached, exactly as from a mirror.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mnistkit
from mnistkit import MissingFilesError, load, load_mnist
from mnistkit.registry import get_dataset
from mnistkit.sources import Downloader
from mnistkit.store import Store

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _need(*relative: str) -> None:
    missing = [r for r in relative if not (SHARED_DATA / r).is_file()]
    if missing:
        pytest.skip(f"real files not found: {', '.join(str(SHARED_DATA / m) for m in missing)}")


FASHION = [
    f"fashion-mnist/{n}"
    for n in (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    )
]


def test_fashion_mnist_end_to_end(home):
    _need(*FASHION)
    (x, t), (xt, tt) = load_mnist(normalize=False, dataset="fashion-mnist", mirrors=str(SHARED_DATA), offline=True)
    assert x.shape == (60000, 784) and xt.shape == (10000, 784) and x.dtype == np.uint8
    assert t[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert np.bincount(t).tolist() == [6000] * 10 and np.bincount(tt).tolist() == [1000] * 10
    assert x.mean(dtype=np.float64) == pytest.approx(72.94035223214286, abs=1e-9)
    # a second load is warm (from the cache), with the tutorial's options
    (xf, t1), _ = load_mnist(dataset="fashion-mnist", one_hot_label=True, flatten=False, offline=True)
    assert xf.shape == (60000, 1, 28, 28) and xf.dtype == np.float32
    assert float(xf.mean(dtype=np.float64)) == pytest.approx(72.94035223214286 / 255, abs=1e-7)
    assert (t1.argmax(1) == t).all()
    ds = get_dataset("fashion-mnist")
    assert ds.class_name(t[0]) == "Ankle boot"
    for spec in ds.files:  # each was copied as published and cached from its verified bytes
        assert (home / "fashion-mnist" / spec.name).read_bytes() == (
            SHARED_DATA / "fashion-mnist" / spec.name
        ).read_bytes()


def test_kmnist_test_split(home):
    _need("kmnist/t10k-images-idx3-ubyte.gz", "kmnist/t10k-labels-idx1-ubyte.gz")
    x, t = load("kmnist", "test", normalize=False, flatten=False, mirrors=str(SHARED_DATA), offline=True)
    assert x.shape == (10000, 1, 28, 28) and x.dtype == np.uint8
    assert t[:10].tolist() == [2, 9, 3, 8, 3, 3, 8, 3, 2, 5]
    assert np.bincount(t).tolist() == [1000] * 10
    assert get_dataset("kmnist").class_name(t[0]) == "su"


def test_kmnist_train_labels_and_the_missing_train_images(home):
    _need("kmnist/train-labels-idx1-ubyte.gz")
    ds = get_dataset("kmnist")
    store = Store(ds, home, downloader=Downloader([str(SHARED_DATA)], offline=True))
    labels = store.load(ds.file("train-labels-idx1-ubyte.gz"))
    assert labels.shape == (60000,) and int(labels.max()) == 9
    if (SHARED_DATA / "kmnist" / "train-images-idx3-ubyte.gz").is_file():
        return
    with pytest.raises(MissingFilesError, match=r"train-images-idx3-ubyte\.gz"):  # not here: said so, by name
        load("kmnist", "train", mirrors=str(SHARED_DATA), offline=True)


QMNIST_LABELS = {
    "qmnist-train-labels-idx2-int.gz": (60000, 8),
    "qmnist-test-labels-idx2-int.gz": (60000, 8),
    "xnist-labels-idx2-int.xz": (402953, 8),
}


@pytest.fixture(scope="module")
def qmnist_tables(tmp_path_factory):
    missing = [n for n in QMNIST_LABELS if not (SHARED_DATA / "qmnist" / n).is_file()]
    if missing:
        pytest.skip(f"real QMNIST label files not found in {SHARED_DATA / 'qmnist'}: {', '.join(missing)}")
    ds = get_dataset("qmnist")
    store = Store(ds, tmp_path_factory.mktemp("qmnist"), downloader=Downloader([str(SHARED_DATA)], offline=True))
    return {name: store.load(ds.file(name)) for name in QMNIST_LABELS}


def test_qmnist_label_tables_are_int32_of_the_published_shapes(qmnist_tables):
    for name, shape in QMNIST_LABELS.items():
        table = qmnist_tables[name]
        assert table.shape == shape, name
        assert table.dtype.kind == "i" and table.dtype.itemsize == 4, name  # IDX 0x0C: int32 (big-endian)
        assert set(np.unique(table[:, 0]).tolist()) == set(range(10)), name


@pytest.fixture(scope="module")
def mnist_labels(tmp_path_factory):
    names = ["train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    if not all((SHARED_DATA / "mnist" / n).is_file() for n in names):
        pytest.skip(f"real MNIST label files not found in {SHARED_DATA / 'mnist'}")
    ds = get_dataset("mnist")
    store = Store(ds, tmp_path_factory.mktemp("mnist"), downloader=Downloader([str(SHARED_DATA)], offline=True))
    return [store.load(ds.file(n)) for n in names]


def test_qmnist_classes_are_mnists_labels(qmnist_tables, mnist_labels):
    train, test = mnist_labels
    np.testing.assert_array_equal(qmnist_tables["qmnist-train-labels-idx2-int.gz"][:, 0], train)
    np.testing.assert_array_equal(qmnist_tables["qmnist-test-labels-idx2-int.gz"][:10000, 0], test)
    # ...and not by accident: the 50,000 other test digits are not MNIST's test labels repeated
    assert not np.array_equal(qmnist_tables["qmnist-test-labels-idx2-int.gz"][10000:20000, 0], test)


def test_qmnist_label_table_through_the_public_api(qmnist_tables, home):
    """The structured table as ``load(..., label_table=True)`` builds it, on the real train labels."""
    from mnistkit.api import _labels

    ds = get_dataset("qmnist")
    raw = qmnist_tables["qmnist-train-labels-idx2-int.gz"]
    table = _labels(raw, ds, table=True)
    assert table.dtype.names == ds.label_columns and table.shape == (60000,)
    np.testing.assert_array_equal(table["class"], raw[:, 0])
    assert table["class"].dtype == np.dtype("int32")  # native order


def test_a_contradicted_split_size_on_a_real_file_names_number_and_file(monkeypatch, home):
    _need("fashion-mnist/t10k-labels-idx1-ubyte.gz")
    from dataclasses import replace

    from mnistkit import RegistryMismatchError, registry

    ds = get_dataset("fashion-mnist")
    spec = ds.file("t10k-labels-idx1-ubyte.gz")
    wrong = replace(spec, shape=(9999,), decoded_size=spec.decoded_size - 1, decoded_sha256=None)
    monkeypatch.setitem(
        registry.DATASETS, ds.name, replace(ds, files=tuple(wrong if f is spec else f for f in ds.files))
    )
    with pytest.raises(RegistryMismatchError) as info:
        load("fashion-mnist", "test", mirrors=str(SHARED_DATA), offline=True)
    assert "t10k-labels-idx1-ubyte.gz" in str(info.value)
    assert "the registry says 9999, the file's IDX header says 10000" in str(info.value)
    assert mnistkit.get_dataset  # the registry itself is untouched outside this test
