"""batches() and validation_split(), and the validation= option of the loaders."""

from __future__ import annotations

import numpy as np
import pytest

from mnistkit import ArgumentError, batches, load, load_mnist, validation_split


def arrays(n=103):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    t = np.arange(n) % 10
    return x, t


def epoch_order(loader):
    return np.concatenate([tb for _, tb in loader]) if len(loader) else np.empty(0, int)


# --- batches -------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 10, 103, 500])
def test_every_sample_exactly_once_per_epoch_with_pairs_kept_together(batch_size):
    x, _t = arrays()
    x_id = np.arange(len(x))
    loader = batches(x, np.arange(len(x)), batch_size, seed=3)
    for _ in range(3):
        seen = []
        sizes = []
        for xb, ib in loader:
            np.testing.assert_array_equal(xb, x[ib])  # rows stay with their labels
            seen.append(ib)
            sizes.append(len(ib))
        assert sorted(np.concatenate(seen).tolist()) == x_id.tolist()
        assert len(sizes) == len(loader) and all(s == batch_size for s in sizes[:-1])


def test_shuffling_differs_between_epochs_and_is_reproducible_with_a_seed():
    x, _t = arrays()
    a, b = batches(x, np.arange(len(x)), 10, seed=7), batches(x, np.arange(len(x)), 10, seed=7)
    a_epochs = [epoch_order(a) for _ in range(3)]
    b_epochs = [epoch_order(b) for _ in range(3)]
    for ea, eb in zip(a_epochs, b_epochs, strict=True):
        np.testing.assert_array_equal(ea, eb)
    assert not np.array_equal(a_epochs[0], a_epochs[1]) and not np.array_equal(a_epochs[1], a_epochs[2])
    assert not np.array_equal(a_epochs[0], np.arange(len(x)))
    other = epoch_order(batches(x, np.arange(len(x)), 10, seed=8))
    assert not np.array_equal(other, a_epochs[0])
    # Replaying an epoch: set the counter back.
    a.epoch = 1
    np.testing.assert_array_equal(epoch_order(a), a_epochs[1])


def test_without_a_seed_runs_differ():
    x, t = arrays()
    assert not np.array_equal(epoch_order(batches(x, t, 10)), epoch_order(batches(x, t, 10)))


@pytest.mark.parametrize("n,batch_size", [(103, 10), (100, 10), (5, 10)])
def test_drop_last_is_respected(n, batch_size):
    x, t = arrays(n)
    kept = batches(x, t, batch_size, drop_last=True, seed=0)
    assert len(kept) == n // batch_size
    got = [len(tb) for _, tb in kept]
    assert got == [batch_size] * (n // batch_size)
    full = [len(tb) for _, tb in batches(x, t, batch_size, seed=0)]
    assert sum(full) == n and len(full) == -(-n // batch_size)


def test_unshuffled_batches_are_views_in_order_and_shuffled_ones_copy_only_a_batch():
    x, t = arrays()
    first_x, first_t = next(iter(batches(x, t, 10, shuffle=False)))
    assert np.shares_memory(first_x, x)
    np.testing.assert_array_equal(first_t, t[:10])
    xb, _ = next(iter(batches(x, t, 10, seed=0)))
    assert not np.shares_memory(xb, x) and xb.shape == (10, 3)


def test_works_on_a_memory_map(tmp_path):
    x, t = arrays(50)
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    got = np.concatenate([xb for xb, _ in batches(mapped, t, 8, shuffle=False)])
    np.testing.assert_array_equal(got, x)


@pytest.mark.parametrize(
    "kwargs",
    [dict(batch_size=0), dict(batch_size=2.5), dict(batch_size=True), dict(batch_size=4, seed=-1)],
)
def test_bad_arguments_raise_argument_error(kwargs):
    x, t = arrays()
    with pytest.raises(ArgumentError):
        batches(x, t, **kwargs)


def test_lengths_must_match():
    x, t = arrays()
    with pytest.raises(ArgumentError, match="103 samples but t has 102"):
        batches(x, t[:-1], 4)


# --- validation_split ----------------------------------------------------------------------------


def check_partition(train, val, n):
    assert not set(train.tolist()) & set(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(n))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)


def test_default_is_the_last_samples():
    labels = np.arange(60000) % 10
    train, val = validation_split(labels, True)
    check_partition(train, val, 60000)
    assert val.tolist() == list(range(50000, 60000))
    train, val = validation_split(labels, 0.25)
    assert val[0] == 45000 and len(val) == 15000


@pytest.mark.parametrize("stratify", [False, True])
def test_seeded_split_is_disjoint_deterministic_and_seed_dependent(stratify):
    labels = np.random.default_rng(1).integers(0, 10, 1000)
    a = validation_split(labels, 0.2, seed=5, stratify=stratify)
    b = validation_split(labels, 0.2, seed=5, stratify=stratify)
    c = validation_split(labels, 0.2, seed=6, stratify=stratify)
    check_partition(*a, 1000)
    assert len(a[1]) == 200
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    assert not np.array_equal(a[1], np.arange(800, 1000))  # random, not the tail


@pytest.mark.parametrize("seed", [None, 0])
def test_stratified_split_keeps_class_proportions(seed):
    rng = np.random.default_rng(2)
    # Unbalanced classes: 500, 300, 150, 50 samples.
    labels = rng.permutation(np.repeat(np.arange(4), [500, 300, 150, 50]))
    train, val = validation_split(labels, 0.1, seed=seed, stratify=True)
    check_partition(train, val, 1000)
    assert np.bincount(labels[val], minlength=4).tolist() == [50, 30, 15, 5]
    if seed is None:  # the last members of each class
        for k in range(4):
            members = np.flatnonzero(labels == k)
            assert set(members[-np.sum(labels[val] == k) :].tolist()) <= set(val.tolist())


def test_stratified_totals_are_exact_with_uneven_remainders():
    labels = np.repeat(np.arange(3), [7, 7, 7])
    _train, val = validation_split(labels, 5, stratify=True)
    counts = np.bincount(labels[val], minlength=3)
    assert counts.sum() == 5 and counts.max() - counts.min() <= 1
    onehot = np.eye(3)[labels]
    np.testing.assert_array_equal(validation_split(onehot, 5, stratify=True)[1], val)


@pytest.mark.parametrize("size", [0, 100, 1.0, 0.0, -3, "10", None, 1.5])
def test_bad_sizes_raise_argument_error(size):
    with pytest.raises(ArgumentError, match="validation="):
        validation_split(np.zeros(100), size)


# --- the loaders' validation= option ------------------------------------------------------------


def test_load_mnist_validation_returns_three_disjoint_pairs(synth, home):
    synth.write(home)
    (x, t), (xv, tv), (xt, _tt) = load_mnist(dataset="tiny", validation=10, normalize=False)
    (x_all, t_all), (xt_ref, _) = load_mnist(dataset="tiny", normalize=False)
    assert x.shape == (50, 784) and xv.shape == (10, 784) and xt.shape == (20, 784)
    np.testing.assert_array_equal(np.concatenate([x, xv]), x_all)
    np.testing.assert_array_equal(np.concatenate([t, tv]), t_all)
    np.testing.assert_array_equal(xt, xt_ref)


def test_load_validation_with_options_and_seed_matches_indices(synth, home):
    synth.write(home)
    kwargs = dict(normalize=True, flatten=False, one_hot_label=True, validation=0.2, validation_seed=1, stratify=True)
    (x, _t), (xv, tv) = load("tiny", "train", **kwargs)
    x_all, t_all = load("tiny", "train", normalize=True, flatten=False, one_hot_label=True)
    kept, held = validation_split(t_all.argmax(1), 0.2, seed=1, stratify=True)
    np.testing.assert_array_equal(xv, x_all[held])
    np.testing.assert_array_equal(x, x_all[kept])
    np.testing.assert_array_equal(tv, t_all[held])
    assert x.dtype == np.float32 and xv.shape == (12, 1, 28, 28) and tv.shape == (12, 10)
    # 6 images per class, 12 held out: one per class, the two left over to the first classes.
    assert np.bincount(tv.argmax(1)).tolist() == [2, 2, 1, 1, 1, 1, 1, 1, 1, 1]
    assert x.flags.writeable and xv.flags.writeable


def test_tail_hold_out_of_raw_images_is_copy_on_write_and_never_changes_the_cache(synth, home):
    synth.write(home)
    (x, _), (xv, _) = load("tiny", "train", normalize=False, validation=10)
    xv[:] = 0
    x[:] = 0
    (x2, _), (xv2, _) = load("tiny", "train", normalize=False, validation=10)
    assert xv2.any() and x2.any()


def test_validation_larger_than_the_training_set_names_the_argument(synth, home):
    synth.write(home)
    with pytest.raises(ArgumentError, match="validation=True holds out 10000 of 60"):
        load_mnist(dataset="tiny", validation=True)
