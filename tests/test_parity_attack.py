"""Attacks on the parity promises of load, the hold-outs and the PyTorch adapter, with wrong values.

References are computed here from the synthetic family's own arrays (tests/family.py), not from ``load``:
the published rows, orientation, QMNIST row slices and label tables, decoded without mnistkit.
"""

from __future__ import annotations

import importlib.util

import family
import numpy as np
import pytest

from mnistkit import load, registry, validation_split
from mnistkit.errors import ArgumentError

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed (optional extra mnistkit[torch])")


@pytest.fixture(scope="module")
def families():
    return [family.mnist_layout("mnist"), family.emnist(), family.qmnist()]


@pytest.fixture
def registered(families, monkeypatch, home):
    arrays = {}
    for fam in families:
        fam.register(monkeypatch)
        fam.write(home)
        arrays.update(fam.arrays)
    return arrays


def _reference(arrays, name, split, orientation="upright", table=False):
    """uint8 images (n, 28, 28) and labels of a split, straight from the published arrays."""
    ds = registry.DATASETS[name]
    sp = ds.split(split)
    x, t = arrays[ds.file(sp.images).name], arrays[ds.file(sp.labels).name]
    if sp.rows is not None:
        x, t = x[sp.rows[0] : sp.rows[1]], t[sp.rows[0] : sp.rows[1]]
    if ds.file(sp.images).transposed and orientation == "upright":
        x = x.transpose(0, 2, 1)
    if t.ndim == 2 and not table:
        t = t[:, 0]
    return x, t


@pytest.mark.parametrize(
    "name,split",
    [
        ("emnist-letters", "train"),
        ("emnist-byclass", "test"),
        ("qmnist", "test10k"),
        ("qmnist", "test50k"),
        ("qmnist", "nist"),
        ("mnist", "test"),
    ],
)
def test_load_equals_an_independent_decoding(registered, name, split):
    ds = registry.DATASETS[name]
    x_ref, t_ref = _reference(registered, name, split)
    x, t = load(name, split, offline=True)
    want = x_ref.reshape(len(x_ref), -1).astype(np.float32) / np.float32(255)
    assert x.dtype == np.float32 and x.tobytes() == want.tobytes()  # bit for bit the tutorial's x / 255
    np.testing.assert_array_equal(t, t_ref)
    _, hot = load(name, split, one_hot_label=True, offline=True)
    assert hot.shape == (len(t_ref), ds.num_classes)
    np.testing.assert_array_equal(hot.argmax(1) + ds.label_offset, t_ref)
    x, _ = load(name, split, orientation="stored", normalize=False, flatten=False, offline=True)
    stored = x_ref.transpose(0, 2, 1) if ds.file(ds.split(split).images).transposed else x_ref
    np.testing.assert_array_equal(x[:, 0], stored)


@pytest.mark.parametrize("stratify", ["no", "False", 2, None, 0.5])
def test_stratify_must_be_a_bool_in_load(registered, stratify):
    # Was: any truthy value (the string "False" included) silently stratified, None silently did not.
    with pytest.raises(ArgumentError, match="stratify="):
        load("mnist", "train", validation=4, stratify=stratify, offline=True)


def test_stratify_must_be_a_bool_in_validation_split():
    with pytest.raises(ArgumentError, match="stratify="):
        validation_split(np.arange(10) % 2, 4, stratify="no")
    # numpy booleans and 0/1 stay accepted, like the other switches
    assert validation_split(np.arange(10) % 2, 4, stratify=np.True_)[1].tolist() == [6, 7, 8, 9]


@needs_torch
@pytest.mark.parametrize("stratify", ["no", None])
def test_stratify_must_be_a_bool_in_torch_dataset(registered, stratify):
    from mnistkit.adapters.torch import torch_dataset

    with pytest.raises(ArgumentError, match="stratify="):
        torch_dataset("mnist", "train", validation=4, stratify=stratify, offline=True)


@needs_torch
def test_torch_loaders_take_a_numpy_integer_seed(registered):
    import torch
    from torch.utils.data import DataLoader

    from mnistkit.adapters.torch import torch_dataset, torch_loaders

    # Was: TypeError "an integer is required" from torch.Generator.manual_seed.
    train, _ = torch_loaders("mnist", batch_size=5, seed=np.int64(3), offline=True)
    ref = DataLoader(
        torch_dataset("mnist", "train", offline=True),
        batch_size=5,
        shuffle=True,
        generator=torch.Generator().manual_seed(3),
    )
    assert torch.equal(torch.cat([t for _, t in train]), torch.cat([t for _, t in ref]))


@needs_torch
@pytest.mark.parametrize("seed", [1.5, "3", True, [1], 2**70])
def test_torch_loaders_refuse_a_bad_seed_in_one_line(registered, seed):
    from mnistkit.adapters.torch import torch_loaders

    # Was: RuntimeError/ValueError from inside torch, not an mnistkit error.
    with pytest.raises(ArgumentError, match=r"seed=.*integer"):
        torch_loaders("mnist", seed=seed, offline=True)


@needs_torch
@pytest.mark.parametrize("workers", [-1, 1.5, "2", True])
def test_torch_loaders_refuse_bad_num_workers(registered, workers):
    from mnistkit.adapters.torch import torch_loaders

    # Was: ValueError/TypeError from DataLoader, or 1.5 accepted.
    with pytest.raises(ArgumentError, match="num_workers="):
        torch_loaders("mnist", num_workers=workers, offline=True)


@needs_torch
def test_torch_dataset_boolean_mask_selects_rows(registered):
    import torch

    from mnistkit.adapters.torch import torch_dataset

    ds = torch_dataset("mnist", "train", normalize=False, offline=True)
    x_ref, t_ref = _reference(registered, "mnist", "train")
    mask = np.zeros(len(ds), dtype=bool)
    mask[[2, 5]] = True
    # Was: the mask read as the indices 0/1, i.e. len(ds) copies of items 0 and 1.
    for chosen in (mask, torch.from_numpy(mask)):
        x, t = ds[chosen]
        np.testing.assert_array_equal(x[:, 0].numpy(), x_ref[[2, 5]])
        assert t.tolist() == t_ref[[2, 5]].tolist()
    with pytest.raises(IndexError, match="mask"):
        ds[mask[:-1]]


@needs_torch
@pytest.mark.parametrize("indices", [[1.5, 2], np.array([0.9]), ["1"]])
def test_torch_dataset_refuses_non_integer_indices(registered, indices):
    from mnistkit.adapters.torch import torch_dataset

    ds = torch_dataset("mnist", "train", offline=True)
    # Was: 1.5 and 0.9 silently truncated to rows 1 and 0.
    with pytest.raises(TypeError, match="integer"):
        ds[indices]


@pytest.mark.parametrize("option", ["shuffle", "drop_last"])
@pytest.mark.parametrize("value", ["no", None, 2])
def test_batches_switches_must_be_bools(option, value):
    from mnistkit import batches

    # Was: bool(value), so shuffle="no" shuffled and drop_last=None kept the last batch without a word.
    with pytest.raises(ArgumentError, match=f"{option}="):
        batches(np.zeros(4), np.zeros(4), 2, **{option: value})


@pytest.mark.skipif(
    importlib.util.find_spec("jax") is None, reason="JAX is not installed (optional extra mnistkit[jax])"
)
def test_jax_dataset_shuffle_must_be_a_bool(registered):
    from mnistkit.adapters.jax import jax_dataset

    with pytest.raises(ArgumentError, match="shuffle="):
        jax_dataset("mnist", "train", 4, shuffle="no", offline=True)


def test_registry_contradicted_by_an_uncompressed_published_copy_is_a_registry_mismatch(monkeypatch, home):
    """A copy whose decoded bytes have the pinned decoded SHA-256 is the published data (README: an uncompressed
    or re-compressed copy is accepted), so a registry number it contradicts is the registry's bug.

    Was: "either it is not the published file (replace it), or ..." -- the real re-compressed MNIST train images
    in ../shared/data got this verdict too.
    """
    import dataclasses
    import gzip
    import hashlib

    from mnistkit.errors import RegistryMismatchError
    from mnistkit.registry import idx_file

    fam = family.mnist_layout("fashion-mnist")
    ds = fam.datasets["fashion-mnist"]
    name = "train-labels-idx1-ubyte.gz"
    decoded = gzip.decompress(fam.files["fashion-mnist"][name])
    n = ds.file(name).shape[0]
    wrong = idx_file(name, (n - 1,), decoded_sha256="sha256:" + hashlib.sha256(decoded).hexdigest())
    ds = dataclasses.replace(ds, files=tuple(wrong if f.name == name else f for f in ds.files))
    monkeypatch.setitem(registry.DATASETS, ds.name, ds)
    fam.write(home)
    (home / "fashion-mnist" / name).write_bytes(decoded)  # an uncompressed copy under the published name
    with pytest.raises(RegistryMismatchError) as err:
        load("fashion-mnist", "train", offline=True)
    message = str(err.value)
    assert f"the registry says {n - 1}, the file's IDX header says {n}" in message
    assert str(home / "fashion-mnist" / name) in message and "\n" not in message


@pytest.mark.parametrize("body", [b"<!DOCTYPE html><html>moved</html>", b"PK\x03\x04 cut short"])
def test_label_mapping_with_an_unreadable_archive_in_the_folder_still_gives_the_table(home, body):
    """label_mapping needs no archive; an HTML page saved as gzip.zip (one EMNIST mirror has served one) must
    not make it fail.  Was: IdxFormatError "...emnist-letters-mapping.txt: not a valid IDX file"."""
    import mnistkit
    from mnistkit.errors import MnistkitWarning

    (home / "emnist").mkdir(parents=True)
    (home / "emnist" / "gzip.zip").write_bytes(body)
    with pytest.warns(MnistkitWarning, match=r"gzip\.zip.*not the published archive"):
        table = mnistkit.label_mapping("emnist-letters")
    # The published letters table: label k is the k-th letter, capital then small.
    assert table == {k: chr(64 + k) + chr(96 + k) for k in range(1, 27)}


def test_numpy_booleans_for_validation_mean_what_python_ones_do(registered):
    # Was: validation=np.True_ refused ("expected ... or True"), np.False_ refused instead of meaning "none".
    _x, t = load("mnist", "train", offline=True, validation=np.False_)
    assert len(t) == registry.DATASETS["mnist"].split_size("train")
    _train, held = validation_split(np.arange(20_000) % 10, np.True_)
    assert len(held) == 10_000 and held[0] == 10_000
