"""The TensorFlow and JAX adapters: tested when the framework is installed, skipped (with the reason) if not.

The missing-dependency side is always tested.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from mnistkit import MissingDependencyError, load
from mnistkit.adapters.jax import jax_batches
from mnistkit.adapters.tf import tf_dataset

HAS_TF = importlib.util.find_spec("tensorflow") is not None
HAS_JAX = importlib.util.find_spec("jax") is not None


def test_without_tensorflow_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'mnistkit\[tensorflow\]'"):
        tf_dataset("mnist")


def test_without_jax_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)
    x = np.zeros((4, 2))
    with pytest.raises(MissingDependencyError, match=r"pip install 'mnistkit\[jax\]'"):
        jax_batches(x, np.zeros(4), 2)


@pytest.mark.skipif(not HAS_TF, reason="TensorFlow is not installed (optional extra mnistkit[tensorflow])")
def test_tf_dataset_batches_shapes_and_values(synth, home):
    import tensorflow as tf

    synth.write(home)
    x, _t = load("tiny", "test", flatten=False)
    ds = tf_dataset("tiny", "test", batch_size=8)
    xb, tb = next(iter(ds))
    assert xb.shape == (8, 28, 28, 1) and xb.dtype == tf.float32 and tb.dtype == tf.int64
    np.testing.assert_array_equal(xb.numpy()[..., 0], x[:8, 0])
    assert sum(int(b.shape[0]) for b, _ in ds) == 20
    assert sum(1 for _ in tf_dataset("tiny", "test", batch_size=8, drop_last=True)) == 2
    flat = next(iter(tf_dataset("tiny", "test", flatten=True, normalize=False)))[0]
    assert flat.shape == (784,) and flat.dtype == tf.uint8


@pytest.mark.skipif(not HAS_TF, reason="TensorFlow is not installed (optional extra mnistkit[tensorflow])")
def test_tf_dataset_shuffles_per_epoch_and_splits(synth, home):
    synth.write(home)
    train, val = tf_dataset("tiny", "train", shuffle=True, seed=0, validation=10, normalize=False)
    epochs = [np.array([int(tb) for _, tb in train]) for _ in range(2)]
    (_, t), (_, tv) = load("tiny", "train", validation=10)
    assert sorted(epochs[0].tolist()) == sorted(t.tolist()) and not np.array_equal(epochs[0], epochs[1])
    assert [int(tb) for _, tb in val] == tv.tolist()


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed (optional extra mnistkit[jax])")
def test_jax_batches_are_device_arrays_covering_every_sample():
    import jax

    x = np.arange(50 * 3, dtype=np.float32).reshape(50, 3)
    t = np.arange(50)
    loader = jax_batches(x, t, 8, seed=0)
    assert len(loader) == 7
    epochs = []
    for _ in range(2):
        seen = []
        for xb, tb in loader:
            assert isinstance(xb, jax.Array) and isinstance(tb, jax.Array)
            np.testing.assert_array_equal(np.asarray(xb), x[np.asarray(tb)])
            seen.append(np.asarray(tb))
        epochs.append(np.concatenate(seen))
    assert sorted(epochs[0].tolist()) == list(range(50)) and not np.array_equal(epochs[0], epochs[1])
    assert [len(tb) for _, tb in jax_batches(x, t, 8, drop_last=True)] == [8] * 6


def test_jax_dataset_without_jax_names_the_extra(monkeypatch):
    from mnistkit.adapters.jax import jax_dataset

    monkeypatch.setitem(sys.modules, "jax", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'mnistkit\[jax\]'"):
        jax_dataset("mnist", "test")


def test_torchvision_dropin_without_torch_names_the_extra(monkeypatch):
    import importlib

    import mnistkit

    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "mnistkit.torchvision", raising=False)
    monkeypatch.delattr(mnistkit, "torchvision", raising=False)
    with pytest.raises(MissingDependencyError, match=r"pip install 'mnistkit\[torch\]'"):
        importlib.import_module("mnistkit.torchvision")
    from mnistkit.keras import mnist  # the Keras drop-in needs neither TensorFlow nor PyTorch

    assert callable(mnist.load_data)
