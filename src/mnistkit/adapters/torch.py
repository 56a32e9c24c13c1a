"""PyTorch: a map-style ``Dataset`` over the memory-mapped cache, and ready ``DataLoader``\\ s.

The dataset holds the cache's copy-on-write memory map of the uint8 images,
never a decoded copy.  DataLoader workers started by ``fork`` inherit the
map and read the same page-cache pages; workers started by ``spawn`` or
``forkserver`` receive a pickle without the images (the labels, the
hold-out's indices and a few hundred bytes) and map the cache file again on
first use.  Either way N workers
cost one copy of the data in memory, not N + 1.

PyTorch is imported only inside functions; without it,
:class:`~mnistkit.errors.MissingDependencyError` says what to install.
``MnistDataset`` is created on first access (``torch_dataset`` or
``from mnistkit.adapters.torch import MnistDataset``), so that this module
imports without PyTorch and pickles name a class that unpickling can find.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import MissingDependencyError

__all__ = ["torch_dataset", "torch_loaders", "MnistDataset"]


def _torch():
    try:
        import torch
    except ImportError as err:
        raise MissingDependencyError("torch", extra="torch") from err
    return torch


class _CachedImages:
    """The behaviour of :class:`MnistDataset`, kept free of PyTorch so this module imports without it."""

    def __init__(
        self,
        dataset: Any,
        home: os.PathLike,
        split: str,
        labels: np.ndarray,
        index: np.ndarray | None,
        images: np.ndarray | None,
        *,
        normalize: bool,
        flatten: bool,
        transform: Callable | None,
        target_transform: Callable | None,
    ) -> None:
        self.dataset, self.home, self.split = dataset, home, split
        self.labels = labels
        self.index = index
        self.normalize, self.flatten = normalize, flatten
        self.transform, self.target_transform = transform, target_transform
        self._images = images

    @property
    def images(self) -> np.ndarray:
        """The uint8 images, (N, H, W): the cache's memory map, mapped again after unpickling."""
        if self._images is None:
            from ..api import dataset_store

            # The cache exists (the parent built it): this only checks the manifest and maps the file.
            store = dataset_store(self.dataset, data_home=self.home, offline=True)
            self._images = store.load(self.dataset.file(self.dataset.split(self.split).images))
        return self._images

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_images"] = None  # never pickle the pixels: a spawned worker maps the cache file itself
        return state

    def __len__(self) -> int:
        return len(self.labels) if self.index is None else len(self.index)

    def _convert(self, raw: np.ndarray):
        """uint8 images (..., H, W) -> a tensor in the requested layout and type."""
        torch = _torch()
        out = torch.from_numpy(raw)  # may still be a view of the memory map: the next line copies
        # Either way one copy out of the map, so a tensor never aliases the dataset's pages.
        out = out.to(torch.float32).div_(255) if self.normalize else out.clone()  # float32 / 255 as NumPy
        lead = out.shape[:-2]
        return out.reshape(*lead, -1) if self.flatten else out.unsqueeze(-3)

    def __getitem__(self, i: int):
        n = len(self)
        if not -n <= i < n:
            msg = f"index {i} is out of range for {self.dataset.name} {self.split} with {n} images"
            raise IndexError(msg)
        j = int(i if self.index is None else self.index[i])
        image = self._convert(self.images[j])
        label = int(self.labels[j])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def __getitems__(self, indices: Sequence[int]) -> list:
        """A whole batch at once (DataLoader uses it): one gather and one conversion, not one per image."""
        if self.transform is not None or self.target_transform is not None:
            return [self[i] for i in indices]
        rows = np.asarray(indices, dtype=np.int64)
        n = len(self)
        if rows.size and (rows.min() < -n or rows.max() >= n):
            msg = f"indices out of range for {self.dataset.name} {self.split} with {n} images"
            raise IndexError(msg)
        rows = rows if self.index is None else self.index[rows]
        images = self._convert(self.images[rows])
        return list(zip(images, self.labels[rows].tolist()))

    def __repr__(self) -> str:
        part = "" if self.index is None else f", {len(self)} of {len(self.labels)} images"
        return f"MnistDataset({self.dataset.name!r}, split={self.split!r}{part})"


_made: dict[str, type] = {}


def _dataset_class() -> type:
    torch = _torch()  # checked on every call: the class is made once, the error is raised every time
    if "MnistDataset" not in _made:

        class MnistDataset(_CachedImages, torch.utils.data.Dataset):
            """A dataset split as a ``torch.utils.data.Dataset``; build it with :func:`torch_dataset`."""

        # Pickles refer to the class by module and name; the module's __getattr__ finds it there.
        MnistDataset.__module__ = __name__
        MnistDataset.__qualname__ = "MnistDataset"
        _made["MnistDataset"] = MnistDataset
    return _made["MnistDataset"]


def __getattr__(name: str) -> Any:
    # PEP 562: the class exists on first access, which is when PyTorch gets imported.
    if name == "MnistDataset":
        return _dataset_class()
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def torch_dataset(
    name: str = "mnist",
    split: str = "train",
    *,
    normalize: bool = True,
    flatten: bool = False,
    transform: Callable | None = None,
    target_transform: Callable | None = None,
    validation: int | float | bool | None = None,
    validation_seed: int | None = None,
    stratify: bool = False,
    data_home: str | os.PathLike | None = None,
    mirrors: str | Sequence[str] | None = None,
    offline: bool | None = None,
    progress: bool | None = None,
):
    """One split of a dataset as a ``torch.utils.data.Dataset``, backed by the memory-mapped cache.

    The files are downloaded (under the store's inter-process lock, so that
    many ranks starting at once download once) and cached on the first call.

    Parameters
    ----------
    name, split : str
        Dataset and split, as in :func:`mnistkit.load`.
    normalize : bool, default True
        Images as float32 in [0, 1]; else uint8.
    flatten : bool, default False
        Images of shape (784,); else (1, 28, 28), PyTorch's channels-first layout.
    transform, target_transform : callable, optional
        Applied to each image tensor / integer label (as in torchvision).
    validation, validation_seed, stratify
        Hold out part of the split, as in :func:`mnistkit.load`.
    data_home, mirrors, offline, progress
        As in :func:`mnistkit.load`.

    Returns
    -------
    MnistDataset or tuple of two
        Items are ``(image, label)``: a tensor and an int (batched by the
        DataLoader into an int64 tensor).  With ``validation``, a pair
        ``(train_part, validation_part)`` of datasets sharing one memory map.

    Raises
    ------
    MissingDependencyError
        When PyTorch is not installed.
    ArgumentError, MissingFilesError, DownloadError
        As :func:`mnistkit.load`.

    Examples
    --------
    >>> from torch.utils.data import DataLoader                         # doctest: +SKIP
    >>> train = torch_dataset("mnist", "train")                          # doctest: +SKIP
    >>> x, t = next(iter(DataLoader(train, batch_size=64, num_workers=2)))  # doctest: +SKIP
    >>> x.shape, x.dtype, t.dtype                                        # doctest: +SKIP
    (torch.Size([64, 1, 28, 28]), torch.float32, torch.int64)
    """
    cls = _dataset_class()
    from ..api import _check_bool, dataset_store
    from ..batching import validation_split
    from ..registry import get_dataset

    ds = get_dataset(name)
    part = ds.split(split)
    store = dataset_store(ds, data_home=data_home, mirrors=mirrors, offline=offline, progress=progress)
    images = store.load(ds.file(part.images))
    labels = np.array(store.load(ds.file(part.labels)))  # small (1 byte a label): kept in memory, pickled
    options = dict(
        normalize=_check_bool(normalize, "normalize"),
        flatten=_check_bool(flatten, "flatten"),
        transform=transform,
        target_transform=target_transform,
    )

    def make(index: np.ndarray | None):
        return cls(ds, store.home, split, labels, index, images, **options)

    if validation is None or validation is False:
        return make(None)
    kept, held = validation_split(labels, validation, seed=validation_seed, stratify=stratify)
    return make(kept), make(held)


def torch_loaders(
    name: str = "mnist",
    *,
    batch_size: int = 64,
    eval_batch_size: int | None = None,
    num_workers: int = 0,
    seed: int | None = None,
    validation: int | float | bool | None = None,
    validation_seed: int | None = None,
    stratify: bool = False,
    normalize: bool = True,
    flatten: bool = False,
    data_home: str | os.PathLike | None = None,
    mirrors: str | Sequence[str] | None = None,
    offline: bool | None = None,
    progress: bool | None = None,
    **loader_options: Any,
) -> tuple:
    """Ready ``DataLoader``\\ s for the train and test splits (and a validation hold-out).

    Parameters
    ----------
    name : str, default "mnist"
        Any dataset with "train" and "test" splits.
    batch_size : int, default 64
        Training batch size.
    eval_batch_size : int, optional
        Batch size of the validation and test loaders; None means ``batch_size``.
    num_workers : int, default 0
        Worker processes per loader; they share the memory-mapped cache.
    seed : int, optional
        Seeds the training loader's shuffling (a new order every epoch, the
        same sequence of orders in every run); None: unseeded.
    validation, validation_seed, stratify
        Hold out part of the training split, as in :func:`mnistkit.load_mnist`.
    normalize, flatten
        As in :func:`torch_dataset`.
    data_home, mirrors, offline, progress
        As in :func:`mnistkit.load`.
    **loader_options
        Passed to every ``DataLoader`` (e.g. ``pin_memory=True``,
        ``persistent_workers=True``, ``multiprocessing_context="spawn"``).

    Returns
    -------
    tuple of torch.utils.data.DataLoader
        ``(train, test)``, or ``(train, validation, test)`` with ``validation``.
        Only the training loader shuffles.

    Examples
    --------
    >>> train, val, test = torch_loaders(batch_size=128, validation=True, num_workers=2)  # doctest: +SKIP
    """
    torch = _torch()
    from torch.utils.data import DataLoader

    common = dict(
        normalize=normalize, flatten=flatten, data_home=data_home, mirrors=mirrors, offline=offline, progress=progress
    )
    train = torch_dataset(
        name, "train", validation=validation, validation_seed=validation_seed, stratify=stratify, **common
    )
    test = torch_dataset(name, "test", **common)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    parts = train if isinstance(train, tuple) else (train,)
    loader_options["num_workers"] = num_workers
    loaders = [DataLoader(parts[0], batch_size, shuffle=True, generator=generator, **loader_options)]
    for ds in (*parts[1:], test):  # validation and test: the stored order
        loaders.append(DataLoader(ds, eval_batch_size or batch_size, shuffle=False, **loader_options))
    return tuple(loaders)
