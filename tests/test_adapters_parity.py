"""Every framework adapter gives what ``load`` gives: every dataset and split of the registry, hold-outs included.

The data is synthetic (tests/family.py: the published names and layouts, small sizes), so every dataset of the
registry is here, QMNIST's ``test10k``/``test50k`` (row slices of ``test``) and EMNIST letters' labels 1..26
included.  PyTorch, TensorFlow and JAX parts skip, with the reason, when the framework is not installed.
"""

from __future__ import annotations

import importlib.util

import family
import numpy as np
import pytest

from mnistkit import load, registry

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_TF = importlib.util.find_spec("tensorflow") is not None
HAS_JAX = importlib.util.find_spec("jax") is not None

PAIRS = [(name, split.name) for name, ds in registry.DATASETS.items() for split in ds.splits]

#: Hold-outs of each split: none, the tail, a seeded random one, stratified tail and stratified seeded.
HOLDOUTS = [
    {},
    {"validation": 0.25},
    {"validation": 0.25, "validation_seed": 3},
    {"validation": 0.5, "stratify": True},
    {"validation": 0.5, "stratify": True, "validation_seed": 1},
]


@pytest.fixture(scope="module")
def families():
    return [
        family.mnist_layout("mnist"),
        *(family.mnist_layout(n) for n in ("fashion-mnist", "kmnist")),
        family.emnist(),
        family.qmnist(),
    ]


@pytest.fixture
def every_dataset(families, monkeypatch, home):
    for fam in families:
        fam.register(monkeypatch)
        fam.write(home)


def test_the_synthetic_family_covers_the_whole_registry(families):
    assert sorted(n for fam in families for n in fam.datasets) == sorted(registry.DATASETS)


def _options(name: str):
    """Extra load options worth comparing for this dataset: its label table, its published orientation."""
    ds = registry.DATASETS[name]
    extra = [{}]
    if ds.label_columns:
        extra.append({"label_table": True})
    if any(spec.transposed for spec in ds.files):
        extra.append({"orientation": "stored"})
    return extra


def _expected(name, split, holdout, extra):
    """What load returns: a list of (uint8 images (n, H, W), labels) parts."""
    out = load(name, split, normalize=False, flatten=False, offline=True, **holdout, **extra)
    parts = list(out) if holdout else [out]
    return [(x[:, 0], t) for x, t in parts]


def _check_labels(got, want: np.ndarray) -> None:
    """Labels from an adapter (ints, or dicts of columns for a table) against load's."""
    if want.dtype.names:
        for column in want.dtype.names:
            np.testing.assert_array_equal(np.asarray(got[column]), want[column].astype(np.int64))
    else:
        np.testing.assert_array_equal(np.asarray(got), want.astype(np.int64))


def _sanity(name, split, parts):
    """The reference itself is right where the registry says what it must be: sizes, label range."""
    ds = registry.DATASETS[name]
    assert sum(len(t) for _, t in parts) == ds.split_size(split)
    labels = np.concatenate([t["class"] if t.dtype.names else t for _, t in parts]).astype(np.int64)
    assert labels.min() >= ds.label_offset and labels.max() < ds.label_offset + ds.num_classes


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed (optional extra mnistkit[torch])")
@pytest.mark.parametrize("name,split", PAIRS)
def test_torch_dataset_equals_load(every_dataset, name, split):
    import torch
    from torch.utils.data import DataLoader

    from mnistkit.adapters.torch import torch_dataset

    for extra in _options(name):
        for holdout in HOLDOUTS:
            want = _expected(name, split, holdout, extra)
            _sanity(name, split, want)
            got = torch_dataset(name, split, normalize=False, offline=True, **holdout, **extra)
            got = list(got) if holdout else [got]
            assert len(got) == len(want)
            for ds, (x, t) in zip(got, want, strict=True):
                assert len(ds) == len(t)
                # One item at a time: (image, int) with the class, or (image, {column: int}) for the table.
                items = [ds[i] for i in range(len(ds))]
                np.testing.assert_array_equal(torch.stack([im for im, _ in items])[:, 0].numpy(), x)
                if t.dtype.names:
                    assert all(isinstance(label, dict) for _, label in items)
                    _check_labels({c: [label[c] for _, label in items] for c in t.dtype.names}, t)
                else:
                    assert all(type(label) is int for _, label in items)
                    assert [label for _, label in items] == t.tolist()
                # A whole batch in one gather, and through a DataLoader's automatic batching.
                xb, tb = ds[list(range(len(ds)))]
                np.testing.assert_array_equal(xb[:, 0].numpy(), x)
                _check_labels(tb, t)
                xl, tl = next(iter(DataLoader(ds, batch_size=len(ds))))
                np.testing.assert_array_equal(xl[:, 0].numpy(), x)
                _check_labels(tl, t)


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed (optional extra mnistkit[torch])")
@pytest.mark.parametrize("name", sorted(registry.DATASETS))
def test_torch_loaders_equal_load_mnist(every_dataset, name):
    import torch

    from mnistkit import load_mnist
    from mnistkit.adapters.torch import torch_loaders

    for holdout in HOLDOUTS[1:]:
        want = load_mnist(normalize=True, flatten=False, dataset=name, offline=True, **holdout)
        loaders = torch_loaders(name, batch_size=5, offline=True, seed=0, **holdout)
        assert len(loaders) == 3
        for i, (loader, (x, t)) in enumerate(zip(loaders, want, strict=True)):
            xs, ts = zip(*loader, strict=True)
            xs, ts = torch.cat(xs).numpy(), torch.cat(ts).numpy()
            if i == 0:  # the training loader shuffles: the same (image, label) pairs, in another order
                assert sorted(_pairs(xs, ts)) == sorted(_pairs(x, t))
                continue
            np.testing.assert_array_equal(xs, x)  # float32 / 255 bit for bit
            np.testing.assert_array_equal(ts, t.astype(np.int64))


def _pairs(x: np.ndarray, t: np.ndarray) -> list[tuple[bytes, int]]:
    return [(row.tobytes(), int(label)) for row, label in zip(x, t, strict=True)]


@pytest.mark.skipif(not HAS_TF, reason="TensorFlow is not installed (optional extra mnistkit[tensorflow])")
@pytest.mark.parametrize("name,split", PAIRS)
def test_tf_dataset_equals_load(every_dataset, name, split):
    from mnistkit.adapters.tf import tf_dataset

    for extra in _options(name):
        for holdout in HOLDOUTS:
            want = _expected(name, split, holdout, extra)
            got = tf_dataset(name, split, normalize=False, batch_size=1000, offline=True, **holdout, **extra)
            got = list(got) if holdout else [got]
            assert len(got) == len(want)
            for ds, (x, t) in zip(got, want, strict=True):
                ((xb, tb),) = list(ds)  # one batch holds the whole part
                np.testing.assert_array_equal(xb.numpy()[..., 0], x)
                _check_labels({k: v.numpy() for k, v in tb.items()} if isinstance(tb, dict) else tb.numpy(), t)


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed (optional extra mnistkit[jax])")
@pytest.mark.parametrize("name,split", PAIRS)
def test_jax_dataset_equals_load(every_dataset, name, split):
    from mnistkit.adapters.jax import jax_dataset

    for extra in _options(name):
        for holdout in HOLDOUTS:
            want = _expected(name, split, holdout, extra)
            got = jax_dataset(name, split, 1000, normalize=False, offline=True, **holdout, **extra)
            got = list(got) if holdout else [got]
            assert len(got) == len(want)
            for ds, (x, t) in zip(got, want, strict=True):
                ((xb, tb),) = list(ds)
                np.testing.assert_array_equal(np.asarray(xb)[..., 0], x)
                _check_labels({k: np.asarray(v) for k, v in tb.items()} if isinstance(tb, dict) else np.asarray(tb), t)
