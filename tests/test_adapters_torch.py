"""The PyTorch adapter, for real: DataLoader workers, DistributedSampler, shared pages, one download.

Needs PyTorch (CI installs a CPU build); without it every test but the first is skipped.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import pickle
import sys

import numpy as np
import pytest

from mnistkit import MissingDependencyError, load
from mnistkit.idx import encode_idx
from mnistkit.registry import Dataset, FileSpec, Split


def test_without_torch_the_error_names_the_extra(monkeypatch):
    from mnistkit.adapters import torch as adapter

    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(MissingDependencyError, match=r"pip install 'mnistkit\[torch\]'"):
        adapter.torch_dataset("mnist")
    with pytest.raises(MissingDependencyError):
        adapter.torch_loaders("mnist")
    with pytest.raises(MissingDependencyError):
        adapter.MnistDataset  # noqa: B018


torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'mnistkit[torch]'")
from torch.utils.data import DataLoader, DistributedSampler, default_collate  # noqa: E402

from mnistkit.adapters.torch import MnistDataset, torch_dataset, torch_loaders  # noqa: E402


@pytest.mark.parametrize("normalize,flatten", [(True, False), (False, True), (True, True), (False, False)])
def test_items_are_tensors_in_the_requested_layout_equal_to_load(synth, home, normalize, flatten):
    synth.write(home)
    ds = torch_dataset("tiny", "test", normalize=normalize, flatten=flatten)
    x, t = load("tiny", "test", normalize=normalize, flatten=flatten)
    assert isinstance(ds, torch.utils.data.Dataset) and isinstance(ds, MnistDataset) and len(ds) == 20
    image, label = ds[3]
    assert image.shape == ((784,) if flatten else (1, 28, 28))
    assert image.dtype == (torch.float32 if normalize else torch.uint8)
    assert isinstance(label, int) and label == int(t[3])
    np.testing.assert_array_equal(image.numpy(), x[3])  # bit-identical to the NumPy loader
    image[...] = 0  # a tensor never aliases the dataset
    np.testing.assert_array_equal(ds[3][0].numpy(), x[3])
    with pytest.raises(IndexError, match="out of range"):
        ds[20]


def test_transforms_apply_per_item(synth, home):
    synth.write(home)
    ds = torch_dataset("tiny", "test", transform=lambda im: im * 2, target_transform=lambda t: t + 100)
    x, t = load("tiny", "test", flatten=False)
    loader = DataLoader(ds, batch_size=7)
    xb, tb = next(iter(loader))
    np.testing.assert_array_equal(xb.numpy(), x[:7] * 2)
    assert tb.tolist() == (t[:7].astype(int) + 100).tolist()


def test_dataloader_with_two_workers_yields_every_sample_once(synth, home):
    synth.write(home)
    ds = torch_dataset("tiny", "train")
    x, t = load("tiny", "train", flatten=False)
    loader = DataLoader(ds, batch_size=8, shuffle=True, num_workers=2, generator=torch.Generator().manual_seed(0))
    seen_x, seen_t = [], []
    for xb, tb in loader:
        assert xb.shape[1:] == (1, 28, 28) and xb.dtype == torch.float32 and tb.dtype == torch.int64
        seen_x.append(xb.numpy())
        seen_t.append(tb.numpy())
    got_x, got_t = np.concatenate(seen_x), np.concatenate(seen_t)
    order = np.argsort([int(np.flatnonzero((x == row).all(axis=(1, 2, 3)))[0]) for row in got_x])
    np.testing.assert_array_equal(got_x[order], x)  # every image exactly once
    np.testing.assert_array_equal(got_t[order], t)  # each with its own label


def test_distributed_sampler_splits_the_data_between_ranks(synth, home):
    synth.write(home)
    ds = torch_dataset("tiny", "train")
    _, t = load("tiny", "train")
    per_rank = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=3)
        sampler.set_epoch(1)
        indices = list(sampler)
        labels = torch.cat([tb for _, tb in DataLoader(ds, batch_size=4, sampler=sampler, num_workers=2)])
        assert labels.tolist() == t[indices].tolist()
        per_rank.append(indices)
    assert not set(per_rank[0]) & set(per_rank[1])
    assert sorted(per_rank[0] + per_rank[1]) == list(range(60))


def test_pickles_without_the_images_and_remaps_the_cache(synth, home):
    synth.write(home)
    ds = torch_dataset("tiny", "train", validation=0.2, validation_seed=0)[1]
    blob = pickle.dumps(ds)
    assert len(blob) < 4000  # dataset, paths, labels and index: no pixels (60 images are 47 kB)
    copy = pickle.loads(blob)
    assert type(copy) is MnistDataset and len(copy) == 12
    for i in range(len(ds)):
        np.testing.assert_array_equal(copy[i][0].numpy(), ds[i][0].numpy())


def test_spawned_workers_map_the_cache_themselves(synth, home):
    synth.write(home)
    ds = torch_dataset("tiny", "test", flatten=True)
    x, _ = load("tiny", "test")
    loader = DataLoader(ds, batch_size=10, num_workers=1, multiprocessing_context="spawn")
    np.testing.assert_array_equal(torch.cat([xb for xb, _ in loader]).numpy(), x)


def test_validation_parts_match_the_numpy_loader(synth, home):
    synth.write(home)
    train, val = torch_dataset("tiny", "train", validation=10, flatten=True)
    (_x, t), (xv, _tv) = load("tiny", "train", validation=10)
    assert (len(train), len(val)) == (50, 10)
    np.testing.assert_array_equal(torch.stack([val[i][0] for i in range(10)]).numpy(), xv)
    assert [train[i][1] for i in range(50)] == t.tolist()


def test_torch_loaders_are_ready_and_seeded(synth, home):
    synth.write(home)
    train, val, test = torch_loaders("tiny", batch_size=16, eval_batch_size=100, validation=12, seed=1)
    assert [len(loader.dataset) for loader in (train, val, test)] == [48, 12, 20]
    assert len(next(iter(test))[1]) == 20 and len(next(iter(val))[1]) == 12
    epoch = [torch.cat([tb for _, tb in train]) for _ in range(2)]
    again = torch.cat([tb for _, tb in torch_loaders("tiny", batch_size=16, validation=12, seed=1)[0]])
    assert torch.equal(epoch[0], again) and not torch.equal(epoch[0], epoch[1])
    assert len(torch_loaders("tiny")) == 2


# --- many ranks at once: one download ------------------------------------------------------------


def _rank(name, mirrors, barrier, queue):
    barrier.wait()  # all ranks start together
    ds = torch_dataset(name, "train", mirrors=mirrors)
    queue.put(float(ds[0][0].sum()))


@pytest.mark.skipif(sys.platform == "win32", reason="Windows has no fork (this test relies on it)")
def test_many_ranks_starting_at_once_download_once(synth, home, server):
    server.serve_dataset(synth)
    ranks = 4
    context = multiprocessing.get_context("fork")  # inherits the registered "tiny" and MNISTKIT_HOME
    barrier, queue = context.Barrier(ranks), context.Queue()
    processes = [context.Process(target=_rank, args=("tiny", server.url, barrier, queue)) for _ in range(ranks)]
    for p in processes:
        p.start()
    results = [queue.get(timeout=120) for _ in range(ranks)]
    for p in processes:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(set(results)) == 1
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        assert server.gets(f"/tiny/{name}") == 1


# --- workers share the memory map instead of copying it ------------------------------------------

BIG_N = 60_000  # 47 MB of pixels, as MNIST


@pytest.fixture
def big(home, monkeypatch):
    """A registered dataset "big" of BIG_N images, written uncompressed (quick to make)."""
    from mnistkit import registry

    rng = np.random.default_rng(0)
    arrays = {
        "big-images-idx3-ubyte": rng.integers(0, 256, (BIG_N, 28, 28), dtype=np.uint8),
        "big-labels-idx1-ubyte": rng.integers(0, 10, BIG_N).astype(np.uint8),
    }
    files = []
    (home / "big").mkdir(parents=True)
    for name, array in arrays.items():
        raw = encode_idx(array)
        (home / "big" / name).write_bytes(raw)
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        files.append(FileSpec(name, shape=array.shape, type_code=0x08, decoded_size=len(raw), decoded_sha256=digest))
    ds = Dataset("big", "big synthetic", tuple(files), (Split("train", *arrays),), (), tuple("0123456789"))
    monkeypatch.setitem(registry.DATASETS, "big", ds)
    return home / "big" / ".cache" / "big-images-idx3-ubyte.npy"


def _collate_with_memory(batch):
    """Default collate, plus this worker's resident (RSS), proportional (PSS) and copied pages of the map."""
    import psutil

    maps = psutil.Process().memory_maps(grouped=True)
    mapped = [m for m in maps if m.path.endswith("big-images-idx3-ubyte.npy")]
    x, t = default_collate(batch)
    worker = torch.utils.data.get_worker_info().id
    memory = [worker] + [sum(getattr(m, key) for m in mapped) for key in ("rss", "pss", "anonymous")]
    return x, t, torch.tensor(memory, dtype=torch.int64)


def test_workers_share_the_pages_of_the_memory_map(big):
    psutil = pytest.importorskip("psutil")
    if not hasattr(psutil.Process, "memory_maps"):
        pytest.skip("psutil cannot read memory maps on this platform")
    ds = torch_dataset("big", "train")
    size = big.stat().st_size
    loader = DataLoader(ds, batch_size=2000, shuffle=True, num_workers=2, collate_fn=_collate_with_memory)
    last = {}
    for _, _, memory in loader:
        worker, *values = memory.tolist()
        last[worker] = values
    assert sorted(last) == [0, 1]
    for rss, pss, copied in last.values():
        # Each worker read a random half of the images, so pages from all over the file are resident...
        assert rss > 0.5 * size
        # ...none of them copied (a copy-on-write page that was written would count as anonymous)...
        assert copied == 0
        # ...and shared: PSS splits a page between the processes mapping it, so it stays well below RSS.
        assert pss < 0.75 * rss
    # Not measured: a worker's total anonymous memory. It grows by tens of MB in any case (the allocator
    # keeps the freed batch buffers), so it cannot tell a copy of the data from ordinary churn.


# --- one gather per batch, the same order as DataLoader(shuffle=True) ------------------------------


def test_torch_loaders_shuffle_exactly_as_a_shuffling_dataloader(synth, home):
    synth.write(home)
    train, _test = torch_loaders("tiny", batch_size=16, seed=5)
    reference = DataLoader(torch_dataset("tiny", "train"), 16, shuffle=True, generator=torch.Generator().manual_seed(5))
    for _ in range(3):  # epoch after epoch: the same generator draws
        got, want = list(train), list(reference)
        assert [len(tb) for _, tb in got] == [16, 16, 16, 12]
        for (xa, ta), (xb, tb) in zip(got, want, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ta, tb) and ta.dtype == torch.int64
    assert train.batch_size is None and len(train) == 4  # automatic batching off: the sampler yields batches


def test_torch_loaders_with_workers_and_drop_last(synth, home):
    synth.write(home)
    train, test = torch_loaders("tiny", batch_size=16, seed=2, num_workers=2, drop_last=True)
    again, _ = torch_loaders("tiny", batch_size=16, seed=2, drop_last=True)
    a = torch.cat([tb for _, tb in train])
    assert len(a) == 48 and torch.equal(a, torch.cat([tb for _, tb in again]))
    assert [len(tb) for _, tb in test] == [16]


def test_torch_loaders_accept_a_collate_fn_of_items(synth, home):
    synth.write(home)
    seen = []

    def collate(items):
        seen.append(len(items))
        return default_collate(items)

    train, _ = torch_loaders("tiny", batch_size=25, seed=0, collate_fn=collate)
    assert sum(len(tb) for _, tb in train) == 60 and seen == [25, 25, 10]


def test_indexing_by_list_slice_and_tensor_is_one_batch(synth, home):
    synth.write(home)
    ds = torch_dataset("tiny", "test", flatten=True)
    x, t = load("tiny", "test")
    for index in ([3, 0, 19, -1], np.array([3, 0, 19, -1]), torch.tensor([3, 0, 19, -1])):
        xb, tb = ds[index]
        np.testing.assert_array_equal(xb.numpy(), x[[3, 0, 19, -1]])
        assert tb.tolist() == t[[3, 0, 19, -1]].tolist()
    np.testing.assert_array_equal(ds[2:5][0].numpy(), x[2:5])
    assert ds[torch.tensor(4)][1] == int(t[4])  # a 0-d tensor is one item
    with pytest.raises(IndexError, match="out of range"):
        ds[[0, 20]]
    with pytest.raises(TypeError):
        ds[1.5]


def test_qmnist_test10k_and_test50k_are_their_rows_and_items_hold_the_class(home, monkeypatch):
    import family

    fam = family.qmnist()
    fam.register(monkeypatch)
    fam.write(home)
    table = fam.arrays["qmnist-test-labels-idx2-int.gz"]
    images = fam.arrays["qmnist-test-images-idx3-ubyte.gz"]
    for split, rows in (("test10k", slice(0, 4)), ("test50k", slice(4, 12)), ("test", slice(0, 12))):
        ds = torch_dataset("qmnist", split, normalize=False, offline=True)
        assert len(ds) == len(images[rows])
        image, label = ds[0]
        assert type(label) is int and label == table[rows][0, 0]
        np.testing.assert_array_equal(image[0].numpy(), images[rows][0])
        _xb, tb = next(iter(DataLoader(ds, batch_size=100)))
        assert tb.tolist() == table[rows][:, 0].tolist()  # a tensor of classes, not 8 columns
        full = torch_dataset("qmnist", split, label_table=True, offline=True)
        assert full[1][1]["writer_id"] == table[rows][1, 2]
        batch = next(iter(DataLoader(full, batch_size=100)))[1]
        assert batch["duplicate"].tolist() == table[rows][:, 6].tolist()
