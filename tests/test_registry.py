"""Every registry entry is complete and consistent, without downloading anything."""

from __future__ import annotations

import io

import numpy as np
import pytest

import mnistkit
from mnistkit import registry
from mnistkit.archive import parse_mapping
from mnistkit.idx import IDX_TYPES, read_idx, write_idx
from mnistkit.registry import get_dataset

FAMILY = [
    "mnist",
    "fashion-mnist",
    "kmnist",
    "emnist-byclass",
    "emnist-bymerge",
    "emnist-balanced",
    "emnist-letters",
    "emnist-digits",
    "emnist-mnist",
    "qmnist",
]


def test_datasets_lists_the_whole_family():
    assert mnistkit.datasets() == FAMILY


@pytest.mark.parametrize("name", FAMILY)
def test_entry_is_complete(name):
    ds = mnistkit.get_dataset(name)
    info = ds.info()
    for key in ("title", "description", "homepage", "license", "citation"):
        assert info[key], f"{name}: {key} is empty"
    assert info["num_classes"] == len(set(ds.classes)) == len(ds.classes)
    assert ds.mirrors and all(m.endswith("/") for m in ds.mirrors)
    assert {"train", "test"} <= set(info["splits"]) and all(n > 0 for n in info["splits"].values())
    names = [f.name for f in ds.files]
    assert len(names) == len(set(names))
    for spec in ds.files:
        for digest in (spec.decoded_sha256, spec.sha256, spec.md5):
            assert digest is None or digest.split(":")[0] in ("sha256", "md5")
        if spec.kind == "archive":  # the archive's own size and checksum vouch for its members
            assert spec.size and spec.sha256
        elif spec.archive is None:
            assert spec.decoded_sha256 or spec.sha256 or spec.md5, f"{spec.name} is not pinned"
            assert (
                spec.decoded_size == len(_header(spec)) + int(np.prod(spec.shape)) * IDX_TYPES[spec.type_code].itemsize
            )
        else:
            assert ds.file(spec.archive).kind == "archive" and spec.member.endswith(spec.name)
    for split in ds.splits:
        images, labels = ds.file(split.images), ds.file(split.labels)
        assert images.shape[0] == labels.shape[0] and images.shape[1:] == ds.image_shape
        if split.rows:
            assert 0 <= split.rows[0] < split.rows[1] <= images.shape[0]


def _header(spec):
    buf = io.BytesIO()
    write_idx(buf, np.zeros((0,) * len(spec.shape), IDX_TYPES[spec.type_code]))
    return buf.getvalue()


def test_emnist_facts_as_published():
    counts = {"byclass": 62, "bymerge": 47, "balanced": 47, "letters": 26, "digits": 10, "mnist": 10}
    for split, n in counts.items():
        ds = mnistkit.get_dataset(f"emnist-{split}")
        assert ds.num_classes == n and ds.folder == "emnist" and ds.mapping == f"gzip/emnist-{split}-mapping.txt"
        assert all(f.transposed == (len(f.shape) == 3) for f in ds.files if f.kind == "idx")
    assert mnistkit.get_dataset("emnist-byclass").split_size("train") == 697932
    assert mnistkit.get_dataset("emnist-letters").label_offset == 1
    assert mnistkit.get_dataset("emnist-letters").info()["files"] == {"gzip.zip": 561753746}


def test_qmnist_splits_and_label_columns():
    ds = mnistkit.get_dataset("qmnist")
    assert ds.info()["splits"] == {"train": 60000, "test": 60000, "test10k": 10000, "test50k": 50000, "nist": 402953}
    assert ds.label_columns[0] == "class" and len(ds.label_columns) == 8
    assert ds.file("xnist-labels-idx2-int.xz").decoded_size == 12 + 402953 * 8 * 4


def test_parse_mapping_and_its_errors():
    assert parse_mapping("0 48\n\n1 65 97\n") == {0: "0", 1: "Aa"}
    with pytest.raises(mnistkit.IdxFormatError, match="line 2"):
        parse_mapping("0 48\nA\n", "m.txt")


class Trickle(io.RawIOBase):
    """A stream that hands out at most 3 bytes per read, like a slow pipe."""

    def __init__(self, data: bytes) -> None:
        self.buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self.buf.read(min(n, 3) if n >= 0 else 3)


@pytest.mark.parametrize("compression", [None, "gzip", "xz"])
def test_idx_reads_a_stream_in_short_reads(compression):
    array = np.arange(3 * 5 * 7, dtype=np.int32).reshape(3, 5, 7)
    buf = io.BytesIO()
    write_idx(buf, array, compression=compression)
    np.testing.assert_array_equal(read_idx(Trickle(buf.getvalue())), array)
    with pytest.raises(mnistkit.IdxFormatError, match="truncated"):
        read_idx(Trickle(buf.getvalue()[:-5]))


def test_class_index_and_name_respect_label_offset_and_tables():
    letters = get_dataset("emnist-letters")
    assert letters.class_name(1) == letters.classes[0] and letters.class_name(26) == letters.classes[25]
    np.testing.assert_array_equal(letters.class_index(np.array([1, 26], np.uint8)), [0, 25])
    qmnist = get_dataset("qmnist")
    table = np.array([[7, 1, 2, 3, 4, 5, 6, 0], [3, 1, 2, 3, 4, 5, 6, 0]], dtype=">i4")
    np.testing.assert_array_equal(qmnist.class_index(table), [7, 3])
    assert get_dataset("mnist").class_name(99) == "99"  # out of range: the number itself, no crash


def test_register_dataset_makes_a_new_dataset_loadable(home, monkeypatch):
    """The public way to add a dataset: checked, then known to every loader."""
    import numpy as np
    from helpers import make_synthetic

    from mnistkit import ArgumentError, get_dataset, load, register_dataset

    monkeypatch.setattr(registry, "DATASETS", dict(registry.DATASETS))  # forget it after the test
    synth = make_synthetic("my-digits")
    assert register_dataset(synth.dataset) is synth.dataset
    assert get_dataset("My_Digits") is synth.dataset
    synth.write(home)
    _, t = load("my-digits", "test", offline=True)
    np.testing.assert_array_equal(t, synth.arrays["t10k-labels-idx1-ubyte.gz"])
    with pytest.raises(ArgumentError, match="already registered"):
        register_dataset(synth.dataset)
    register_dataset(synth.dataset, replace=True)
    import dataclasses

    for bad, text in [
        (dataclasses.replace(synth.dataset, name="My Digits"), "lower case"),
        (dataclasses.replace(synth.dataset, name="x", classes=()), "needs its classes"),
        (dataclasses.replace(synth.dataset, name="y", files=synth.dataset.files[:2]), "not one of its files"),
        (dataclasses.replace(synth.dataset, name="z", files=synth.dataset.files[:1] * 2), "share a name"),
    ]:
        with pytest.raises(ArgumentError, match=text):
            register_dataset(bad)
