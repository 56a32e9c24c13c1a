"""PyTorch: a map-style ``Dataset`` over the memory-mapped cache, and ready ``DataLoader``\\ s.

Rows, labels and hold-outs come from :func:`mnistkit.api.select_parts`, the
code :func:`mnistkit.load` uses, so a dataset here holds exactly the rows and
labels ``load`` returns (QMNIST ``test10k``/``test50k`` included).

The dataset holds the cache's copy-on-write memory map of the uint8 images,
never a decoded copy.  DataLoader workers started by ``fork`` inherit the
map and read the same page-cache pages; workers started by ``spawn`` or
``forkserver`` receive a pickle without the images (the labels, the
hold-out's indices and a few hundred bytes) and map the cache file again on
first use.  Either way N workers cost one copy of the data in memory, not N + 1.

A batch is one gather: ``ds[[3, 1, 4]]`` returns ``(images, labels)`` for
the three rows at once, and :func:`torch_loaders` feeds whole batches of
indices that way (a ``BatchSampler`` with automatic batching off), so no
per-item tensors are made and stacked again.

PyTorch is imported only inside functions; without it,
:class:`~mnistkit.errors.MissingDependencyError` says what to install.
``MnistDataset`` is created on first access (``torch_dataset`` or
``from mnistkit.adapters.torch import MnistDataset``), so that this module
imports without PyTorch and pickles name a class that unpickling can find.
"""

from __future__ import annotations

import numbers
import operator
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import ArgumentError, MissingDependencyError

__all__ = ["BatchOrder", "MnistDataset", "torch_dataset", "torch_loaders"]  # noqa: F822 - MnistDataset comes from __getattr__


_255 = np.float32(255)


def _torch():
    try:
        import torch
    except ImportError as err:
        msg = "torch"
        raise MissingDependencyError(msg, extra="torch") from err
    return torch


class _CachedImages:
    """The behaviour of :class:`MnistDataset`, kept free of PyTorch so this module imports without it.

    ``labels`` are this part's own labels (``len(self)`` of them, as ``load`` returns them);
    ``index`` maps an item to its row of the split's images (None: the identity).
    """

    def __init__(
        self,
        dataset: Any,
        home: os.PathLike,
        split: str,
        labels: np.ndarray,
        index: np.ndarray | None,
        images: np.ndarray | None,
        *,
        orientation: str,
        normalize: bool,
        flatten: bool,
        transform: Callable | None,
        target_transform: Callable | None,
    ) -> None:
        self.dataset, self.home, self.split, self.orientation = dataset, home, split, orientation
        self.labels = labels
        self.index = index
        self.normalize, self.flatten = normalize, flatten
        self.transform, self.target_transform = transform, target_transform
        self._images = images

    @property
    def images(self) -> np.ndarray:
        """The split's uint8 images, (n, H, W): the cache's memory map, mapped again after unpickling."""
        if self._images is None:
            from ..api import dataset_store, select_parts

            # The cache exists (the parent built it): this only checks the manifests and maps the files.
            store = dataset_store(self.dataset, data_home=self.home, offline=True)
            self._images = select_parts(store, [self.split], orientation=self.orientation)[0].images
        return self._images

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_images"] = None  # never pickle the pixels: a spawned worker maps the cache file itself
        state["_gather_from"] = state["_labels64"] = None  # derived: made again on first use
        return state

    _gather_from: np.ndarray | None = None
    _labels64: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def _convert(self, raw: np.ndarray):
        """uint8 images (..., H, W) -> a tensor in the requested layout and type."""
        torch = _torch()
        out = torch.from_numpy(raw)  # may still be a view of the memory map: the next line copies
        # Either way one copy out of the map, so a tensor never aliases the dataset's pages.
        out = out.to(torch.float32).div_(255) if self.normalize else out.clone()  # float32 / 255 as NumPy
        lead = out.shape[:-2]
        return out.reshape(*lead, -1) if self.flatten else out.unsqueeze(-3)

    def _label(self, i: int):
        """Item ``i``'s label: the class as an int, or QMNIST's table row as ``{column: int}``."""
        value = self.labels[i]
        if self.labels.dtype.names:
            return dict(zip(self.labels.dtype.names, value.tolist(), strict=True))
        return int(value)

    def _batch_labels(self, rows: np.ndarray):
        """Labels of ``rows`` as default_collate would batch the items': int64 tensors."""
        torch = _torch()
        if self.labels.dtype.names:
            picked = self.labels[rows]
            return {name: torch.from_numpy(picked[name].astype(np.int64)) for name in picked.dtype.names}
        if self._labels64 is None:
            self._labels64 = self.labels.astype(np.int64)
        return torch.from_numpy(np.take(self._labels64, rows))

    def _rows(self, indices: Any) -> np.ndarray:
        """Item numbers (a sequence, array, tensor, slice or boolean mask) as a non-negative int64 array."""
        n = len(self)
        if isinstance(indices, slice):
            indices = range(*indices.indices(n))
        if hasattr(indices, "numpy") and not isinstance(indices, np.ndarray):  # a tensor
            indices = indices.cpu().numpy()
        rows = np.asarray(indices)
        if rows.dtype == np.bool_:  # a mask over the items, as in NumPy and PyTorch indexing
            if rows.shape != (n,):
                msg = (
                    f"a boolean mask of shape {rows.shape} cannot select from {self.dataset.name} {self.split} "
                    f"with {n} images"
                )
                raise IndexError(msg)
            rows = np.flatnonzero(rows)
        elif rows.size and rows.dtype.kind not in "iu":  # never truncate 1.5 or "1" to a row number
            msg = f"indices must be integers, not {rows.dtype}: got {np.ravel(rows)[:3].tolist()}"
            raise TypeError(msg)
        rows = rows.astype(np.int64).reshape(-1)
        if rows.size and (rows.min() < -n or rows.max() >= n):
            msg = f"indices out of range for {self.dataset.name} {self.split} with {n} images"
            raise IndexError(msg)
        return rows if not rows.size or rows.min() >= 0 else np.where(rows < 0, rows + n, rows)

    def __getitem__(self, i: Any):
        if not isinstance(i, numbers.Integral):
            if isinstance(i, slice) or np.ndim(i) != 0:
                return self.batch(i)
            i = operator.index(i)  # a 0-d integer array or tensor; TypeError for anything else
        n = len(self)
        if not -n <= i < n:
            msg = f"index {i} is out of range for {self.dataset.name} {self.split} with {n} images"
            raise IndexError(msg)
        i = int(i) % n
        j = i if self.index is None else int(self.index[i])
        image = self._convert(self.images[j])
        label = self._label(i)
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def batch(self, indices: Sequence[int]):
        """Items ``indices`` as one batch ``(images, labels)``, gathered in one call.

        The same tensors ``default_collate`` makes of ``[ds[i] for i in indices]``
        (labels int64; a dict of int64 columns with QMNIST's ``label_table``), made
        without per-item tensors.  With a ``transform`` or ``target_transform`` the
        items are made one by one (transforms apply per item) and collated.
        """
        torch = _torch()
        if self.transform is not None or self.target_transform is not None:
            from torch.utils.data import default_collate

            return default_collate([self[int(i)] for i in self._rows(indices)])
        # The training loop's path: every step below is one NumPy or torch call on the whole batch.
        rows = indices if type(indices) is np.ndarray and indices.dtype == np.int64 else self._rows(indices)
        if self._gather_from is None:
            # A plain ndarray view of the map: np.memmap's subclass hooks cost more than the gather of a batch.
            self._gather_from = self.images.view(np.ndarray)
        try:
            labels = self._batch_labels(rows)  # np.take checks the bounds (and wraps negative indices)
            images = np.take(self._gather_from, rows if self.index is None else np.take(self.index, rows), axis=0)
        except IndexError:
            msg = f"indices out of range for {self.dataset.name} {self.split} with {len(self)} images"
            raise IndexError(msg) from None
        # The layout is set on the NumPy side (a reshape of a fresh array is free; a torch op is not).
        images = images.reshape(len(images), -1) if self.flatten else images.reshape(len(images), 1, *images.shape[1:])
        if self.normalize:
            # load's own conversion (a float32 division), in one pass: bit-identical to load().
            return torch.from_numpy(np.divide(images, _255, dtype=np.float32)), labels
        return torch.from_numpy(images), labels  # a fresh gather: it aliases nothing

    def __getitems__(self, indices: Sequence[int]) -> list:
        """The items of a batch, for a DataLoader's automatic batching: gathered in one call."""
        if self.transform is not None or self.target_transform is not None:
            return [self[int(i)] for i in indices]
        images, labels = self.batch(indices)
        if isinstance(labels, dict):
            rows = self._rows(indices)
            return list(zip(images, [self._label(int(i)) for i in rows], strict=True))
        return list(zip(images, labels.tolist(), strict=True))

    def __repr__(self) -> str:
        return f"MnistDataset({self.dataset.name!r}, split={self.split!r}, {len(self)} images)"


_made: dict[str, type] = {}


def _dataset_class() -> type:
    torch = _torch()  # checked on every call: the class is made once, the error is raised every time
    if "MnistDataset" not in _made:
        base: Any = torch.utils.data.Dataset  # a base known only at run time: PyTorch is optional

        class MnistDataset(_CachedImages, base):
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
    orientation: str = "upright",
    label_table: bool = False,
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
    Item ``i`` holds the image and label :func:`mnistkit.load` returns at ``i``.

    Parameters
    ----------
    name, split : str
        Dataset and split, as in :func:`mnistkit.load` (QMNIST's ``test10k``
        and ``test50k`` are rows 0:10000 and 10000:60000 of ``test``).
    normalize : bool, default True
        Images as float32 in [0, 1]; else uint8.
    flatten : bool, default False
        Images of shape (784,); else (1, 28, 28), PyTorch's channels-first layout.
    orientation : {"upright", "stored"}, default "upright"
        As in :func:`mnistkit.load` (EMNIST's published images are transposed).
    label_table : bool, default False
        QMNIST only: labels are the whole row of its label table as
        ``{column: int}`` (batched into a dict of int64 tensors), not the class.
    transform, target_transform : callable, optional
        Applied to each image tensor / label (as in torchvision).
    validation, validation_seed, stratify
        Hold out part of the split, as in :func:`mnistkit.load`.
    data_home, mirrors, offline, progress
        As in :func:`mnistkit.load`.

    Returns
    -------
    MnistDataset or tuple of two
        Items are ``(image, label)``: a tensor and the class as an int (as
        ``load`` gives it: EMNIST letters 1..26), batched by the DataLoader
        into an int64 tensor.  ``ds[list_of_indices]`` is a whole batch in one
        gather.  With ``validation``, a pair ``(train_part, validation_part)``
        of datasets sharing one memory map.

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
    from ..api import _check_bool, dataset_store, select_parts

    options = dict(
        orientation=orientation,
        normalize=_check_bool(normalize, "normalize"),
        flatten=_check_bool(flatten, "flatten"),
        transform=transform,
        target_transform=target_transform,
    )
    store = dataset_store(name, data_home=data_home, mirrors=mirrors, offline=offline, progress=progress)
    parts = select_parts(
        store,
        [split],
        orientation=orientation,
        label_table=label_table,
        validation=validation,
        validation_seed=validation_seed,
        stratify=stratify,
    )
    # Each part keeps its own labels (small: pickled to spawned workers) and shares the images' map.
    made = [
        cls(part.dataset, store.home, split, part.taken_labels(), part.index, part.images, **options) for part in parts
    ]
    return made[0] if len(made) == 1 else tuple(made)


class BatchOrder:
    """Whole batches of item numbers, one epoch per iteration: a sampler for ``DataLoader(batch_size=None)``.

    Shuffled, the order is exactly that of ``BatchSampler(RandomSampler(ds, generator=g), ...)``
    (the same ``torch.randperm`` draw from the same generator, or from a seed drawn from torch's
    global generator when ``generator`` is None), cut into slices of one array instead of being
    yielded one number at a time and regrouped into lists.

    Parameters
    ----------
    n : int
        Number of items.
    batch_size : int
        Items per batch.
    drop_last : bool
        Drop a last, smaller batch.
    shuffle : bool
        A new random order every epoch; else the stored order.
    generator : torch.Generator, optional
        Source of the orders.
    """

    def __init__(self, n: int, batch_size: int, drop_last: bool, shuffle: bool, generator: Any = None) -> None:
        self.n, self.batch_size, self.drop_last = n, batch_size, drop_last
        self.shuffle, self.generator = shuffle, generator

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self):
        # A generator: nothing is drawn before the first batch is asked for, as with RandomSampler.
        if self.shuffle:
            torch = _torch()
            generator = self.generator
            if generator is None:  # what RandomSampler does without a generator
                generator = torch.Generator()
                generator.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
            order = torch.randperm(self.n, generator=generator).numpy()
        else:
            order = np.arange(self.n)
        size = self.batch_size
        for b in range(len(self)):
            yield order[b * size : (b + 1) * size]
        if self.shuffle and self.generator is not None:
            # RandomSampler draws a second permutation (for a remainder of 0 samples) once it is exhausted;
            # drawing it too keeps the generator, hence the next epoch's order, where DataLoader(shuffle=True) has it.
            torch.randperm(self.n, generator=self.generator)


def _loader_class() -> type:
    """``GatherLoader``: a ``DataLoader`` whose in-process iteration skips the per-batch machinery."""
    torch = _torch()
    if "GatherLoader" not in _made:
        base: Any = torch.utils.data.DataLoader  # a base known only at run time: PyTorch is optional

        class GatherLoader(base):
            """A ``DataLoader`` over whole batches (``batch_size=None`` and a :class:`BatchOrder` sampler).

            With worker processes or ``pin_memory`` it is the ``DataLoader`` it derives from.  In the
            calling process (``num_workers=0``) it fetches each batch straight from the dataset: the
            dataset makes it in one gather, and the DataLoader's own per-batch work (profiler ranges,
            fetcher, collate dispatch) would cost about a third of that again.
            """

            def __iter__(self):
                if self.num_workers > 0 or self.pin_memory or self.collate_fn is not _as_is:
                    return super().__iter__()
                return self._in_process()

            def _in_process(self):
                # Every DataLoader epoch draws its workers' base seed from the generator, workers or not:
                # draw it too, so the sampler's permutations (the same generator) stay DataLoader's.
                torch.empty((), dtype=torch.int64).random_(generator=self.generator)
                batch = self.dataset.batch  # the sampler yields int64 arrays: no dispatch on the index type
                for rows in self.sampler:
                    yield batch(rows)

        GatherLoader.__module__ = __name__
        GatherLoader.__qualname__ = "GatherLoader"
        _made["GatherLoader"] = GatherLoader
    return _made["GatherLoader"]


def _as_is(batch: Any) -> Any:
    """The collate function of one-gather loaders: the dataset already made the batch."""
    return batch


def _check_batch_size(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        msg = f"{name}={value!r}: expected an integer >= 1"
        raise ArgumentError(msg)
    return int(value)


#: ``torch.Generator.manual_seed`` takes integers in this range (negative ones are remapped).
_SEED_RANGE = (-(2**63), 2**64 - 1)


def _check_seed(value: Any) -> int | None:
    """A seed for ``torch.Generator.manual_seed``: None or an integer (NumPy integers too)."""
    if value is None:
        return None
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, numbers.Integral)
        or not (_SEED_RANGE[0] <= int(value) <= _SEED_RANGE[1])
    ):
        msg = f"seed={value!r}: expected None or an integer from -2**63 to 2**64-1"
        raise ArgumentError(msg)
    return int(value)


def _check_workers(value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 0:
        msg = f"num_workers={value!r}: expected an integer >= 0 (0: load in the main process)"
        raise ArgumentError(msg)
    return int(value)


def torch_loaders(
    name: str = "mnist",
    *,
    batch_size: int = 64,
    eval_batch_size: int | None = None,
    num_workers: int = 0,
    seed: int | None = None,
    drop_last: bool = False,
    validation: int | float | bool | None = None,
    validation_seed: int | None = None,
    stratify: bool = False,
    normalize: bool = True,
    flatten: bool = False,
    orientation: str = "upright",
    label_table: bool = False,
    data_home: str | os.PathLike | None = None,
    mirrors: str | Sequence[str] | None = None,
    offline: bool | None = None,
    progress: bool | None = None,
    **loader_options: Any,
) -> tuple:
    """Ready ``DataLoader``\\ s for the train and test splits (and a validation hold-out).

    Each batch is fetched in one gather: the loaders draw whole batches of
    indices (a ``BatchSampler`` over the usual ``RandomSampler`` or
    ``SequentialSampler``) and ask the dataset for them at once, so the order is
    that of ``DataLoader(ds, batch_size, shuffle=True, generator=...)`` and the
    batches are the same tensors, without making and stacking one tensor per image.

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
        same sequence of orders in every run); None: unseeded.  Any integer
        ``torch.Generator.manual_seed`` takes (NumPy integers too).
    drop_last : bool, default False
        Drop the last, smaller batch of every loader.
    validation, validation_seed, stratify
        Hold out part of the training split, as in :func:`mnistkit.load_mnist`.
    normalize, flatten, orientation, label_table
        As in :func:`torch_dataset`.
    data_home, mirrors, offline, progress
        As in :func:`mnistkit.load`.
    **loader_options
        Passed to every ``DataLoader`` (e.g. ``pin_memory=True``,
        ``persistent_workers=True``, ``multiprocessing_context="spawn"``).
        A ``collate_fn`` here receives lists of ``(image, label)`` items as
        with automatic batching (the batch is still gathered in one call).

    Returns
    -------
    tuple of torch.utils.data.DataLoader
        ``(train, test)``, or ``(train, validation, test)`` with ``validation``.
        Only the training loader shuffles.  ``loader.batch_sampler`` (or, for
        one-gather loaders, ``loader.sampler``) is the ``BatchSampler``.

    Raises
    ------
    ArgumentError
        For a ``batch_size``, ``seed`` or ``num_workers`` that is not a valid integer,
        and as :func:`torch_dataset`.

    Examples
    --------
    >>> train, val, test = torch_loaders(batch_size=128, validation=True, num_workers=2)  # doctest: +SKIP
    """
    torch = _torch()
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

    from ..api import _check_bool

    batch_size = _check_batch_size(batch_size, "batch_size")
    eval_batch_size = batch_size if eval_batch_size is None else _check_batch_size(eval_batch_size, "eval_batch_size")
    drop_last = _check_bool(drop_last, "drop_last")
    seed = _check_seed(seed)
    num_workers = _check_workers(num_workers)
    common: dict[str, Any] = dict(
        normalize=normalize,
        flatten=flatten,
        orientation=orientation,
        label_table=label_table,
        data_home=data_home,
        mirrors=mirrors,
        offline=offline,
        progress=progress,
    )
    train = torch_dataset(
        name, "train", validation=validation, validation_seed=validation_seed, stratify=stratify, **common
    )
    test = torch_dataset(name, "test", **common)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    parts = train if isinstance(train, tuple) else (train,)
    loader_options["num_workers"] = num_workers

    def loader(ds, size: int, shuffle: bool):
        gen = generator if shuffle else None
        if "collate_fn" in loader_options:  # the caller's collate expects a list of items: __getitems__
            inner = RandomSampler(ds, generator=generator) if shuffle else SequentialSampler(ds)
            batches = BatchSampler(inner, size, drop_last)
            return DataLoader(ds, batch_sampler=batches, generator=gen, **loader_options)
        # Automatic batching off: each "index" is a whole batch, and ds[batch] gathers it in one call.
        order = BatchOrder(len(ds), size, drop_last, shuffle, generator)
        return _loader_class()(ds, batch_size=None, sampler=order, generator=gen, collate_fn=_as_is, **loader_options)

    loaders = [loader(parts[0], batch_size, True)]
    for ds in (*parts[1:], test):  # validation and test: the stored order
        loaders.append(loader(ds, eval_batch_size, False))
    return tuple(loaders)
