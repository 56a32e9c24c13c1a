"""A drop-in for ``torchvision.datasets.MNIST`` and its siblings, needing PyTorch but never torchvision.

Replace ``from torchvision import datasets`` by ``from mnistkit import torchvision as
datasets`` (or ``from torchvision.datasets import MNIST`` by ``from mnistkit.torchvision
import MNIST``): :class:`MNIST`, :class:`FashionMNIST`, :class:`KMNIST`,
:class:`EMNIST` and :class:`QMNIST` take torchvision's arguments and give its items
(a PIL image in mode "L" and an int, through ``transform`` and ``target_transform``),
attributes (``data``, ``targets``, ``classes``, ``class_to_idx``, ``train``, ``root``,
``raw_folder``, ...), length, ``repr`` and errors.

Behind them are mnistkit's mirrors, resumable downloads, verification of the decoded
bytes and memory-mapped cache.  The files live where torchvision keeps them,
``<root>/<Class>/raw/`` (``<root>/MNIST/raw/train-images-idx3-ubyte.gz``, ...): a root
that torchvision already filled (compressed or extracted files, EMNIST's ``gzip.zip``)
is used as it is, verified, without a second download.  mnistkit adds its cache
next to them (``raw/.cache/``, ``raw/.locks/``).  With ``download=True`` the files
come from ``$MNISTKIT_MIRROR``, then mnistkit's own data folder (a copy, no
network, when mnistkit already has them), then the built-in mirrors.

``data`` is a tensor over the cache's memory map, not a copy; a DataLoader worker
started by spawn receives a pickle without the pixels and maps the cache again.
"""

from __future__ import annotations

import os
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .errors import ArgumentError, MissingFilesError, MnistkitError

__all__ = ["EMNIST", "KMNIST", "MNIST", "QMNIST", "DatasetNotFoundError", "FashionMNIST"]

#: torchvision's message when ``download=False`` and the files are not in ``root``.
NOT_FOUND = "Dataset not found. You can use download=True to download it"


class DatasetNotFoundError(MnistkitError, RuntimeError):
    """The files are not in ``root`` and ``download`` is False: a ``RuntimeError``, as torchvision raises."""


def _torch():
    return _torch_module


try:  # the classes derive from torch's Dataset, as torchvision's do: PyTorch is needed to import this module
    import torch as _torch_module
except ImportError as err:
    from .errors import MissingDependencyError

    msg = "torch"
    raise MissingDependencyError(msg, extra="torch") from err


class _StandardTransform:
    """torchvision's ``StandardTransform``: holds ``transform`` and ``target_transform``, prints as torchvision."""

    def __init__(self, transform: Callable | None = None, target_transform: Callable | None = None) -> None:
        self.transform = transform
        self.target_transform = target_transform

    def __call__(self, sample: Any, target: Any) -> tuple[Any, Any]:
        if self.transform is not None:
            sample = self.transform(sample)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return sample, target

    @staticmethod
    def _format(transform: Callable, head: str) -> list[str]:
        lines = repr(transform).splitlines()
        return [f"{head}{lines[0]}"] + [" " * len(head) + line for line in lines[1:]]

    def __repr__(self) -> str:
        body = ["StandardTransform"]
        if self.transform is not None:
            body += self._format(self.transform, "Transform: ")
        if self.target_transform is not None:
            body += self._format(self.target_transform, "Target transform: ")
        return "\n".join(body)


_DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


class _Base:
    """What torchvision's ``VisionDataset`` and ``MNIST`` share."""

    _registry_name = "mnist"
    _repr_indent = 4
    training_file = "training.pt"  # torchvision's legacy processed files (names only: never read here)
    test_file = "test.pt"
    classes: ClassVar[list[str]] = [f"{d} - {name}" for d, name in enumerate(_DIGIT_NAMES)]

    def __init__(
        self,
        root: str | os.PathLike,
        train: bool = True,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        download: bool = False,
    ) -> None:
        if isinstance(root, str):
            root = os.path.expanduser(root)
        self.root = root
        self.transform = transform
        self.target_transform = target_transform
        has_separate = transform is not None or target_transform is not None
        self.transforms = _StandardTransform(transform, target_transform) if has_separate else None
        self.train = train
        self._download = bool(download)
        # The registry entry, kept (and pickled): a spawned worker maps the cache of this very entry.
        self._entry = self._dataset()
        self._data, self._targets = self._load_data()

    # --- where the files are, and loading them through mnistkit --------------------------------

    @property
    def raw_folder(self) -> str:
        return os.path.join(self.root, type(self).__name__, "raw")

    @property
    def processed_folder(self) -> str:
        return os.path.join(self.root, type(self).__name__, "processed")

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}

    def _split(self) -> str:
        return "train" if self.train else "test"

    def _dataset(self):
        from .registry import get_dataset

        return get_dataset(self._registry_name)

    def _store(self, download: bool):
        """mnistkit's store of this dataset, its folder moved to torchvision's ``<root>/<Class>/raw``."""
        from .api import dataset_store
        from .settings import parse_mirrors, resolve_home
        from .store import CACHE_DIR

        if download:
            # Extra sources first, then mnistkit's own data folder (a mirror layout: a local copy, no network).
            mirrors = [*parse_mirrors(None)]
            try:
                mirrors.append(str(resolve_home(None)))
            except MnistkitError:  # no usable mnistkit data folder: only the other sources
                pass
            store = dataset_store(self._entry, data_home=self.root, mirrors=mirrors)
        else:
            store = dataset_store(self._entry, data_home=self.root, mirrors=[], offline=True)
        store.folder = Path(self.raw_folder)
        store.cache_folder = store.folder / CACHE_DIR
        return store

    def _part(self, *, download: bool | None = None, **options):
        """The split's rows and labels (:func:`mnistkit.api.select_parts`), or torchvision's error."""
        from .api import select_parts
        from .store import _NotAFolder

        download = self._download if download is None else download
        try:
            store = self._store(download)
            return select_parts(store, [self._split()], **options)[0]
        except _NotAFolder as err:
            if download:
                raise
            # A file where the root (or its <Class>/raw) must be: torchvision finds no data there either.
            msg = f"{NOT_FOUND} ({err})"
            raise DatasetNotFoundError(msg) from err
        except MissingFilesError as err:
            if download:
                raise
            # torchvision's words; where a file was there but is not the published data, say which and why.
            rejected = err.reason.partition("files found but rejected: ")[2]
            msg = f"{NOT_FOUND} ({rejected}; delete it or use download=True)" if rejected else NOT_FOUND
            raise DatasetNotFoundError(msg) from err

    def _load_data(self):
        torch = _torch()
        part = self._part(orientation=self._orientation)
        return torch.from_numpy(part.images), torch.from_numpy(part.labels.astype(np.int64))

    _orientation = "upright"

    # --- data and targets: a tensor over the map, replaceable as in torchvision ---------------------

    @property
    def data(self):
        """uint8 tensor (N, 28, 28): the cache's memory map (mapped again after unpickling)."""
        if self._data is None:
            torch = _torch()
            self._data = torch.from_numpy(self._part(download=False, orientation=self._orientation).images)
        return self._data

    @data.setter
    def data(self, value) -> None:
        self._data = value
        self._mapped = False

    @property
    def targets(self):
        """int64 tensor of the labels, (N,) (QMNIST: (N, 8))."""
        return self._targets

    @targets.setter
    def targets(self, value) -> None:
        self._targets = value

    _mapped = True

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if self._mapped:  # never pickle the pixels of the map: the receiver maps the cache itself
            state["_data"] = None
        return state

    # --- torchvision's deprecated names --------------------------------------------------------

    @property
    def train_labels(self):
        import warnings

        warnings.warn("train_labels has been renamed targets", stacklevel=2)
        return self.targets

    @property
    def test_labels(self):
        import warnings

        warnings.warn("test_labels has been renamed targets", stacklevel=2)
        return self.targets

    @property
    def train_data(self):
        import warnings

        warnings.warn("train_data has been renamed data", stacklevel=2)
        return self.data

    @property
    def test_data(self):
        import warnings

        warnings.warn("test_data has been renamed data", stacklevel=2)
        return self.data

    # --- items -------------------------------------------------------------------------------

    def _target(self, target):
        return int(target)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        from PIL import Image

        img, target = self.data[index], self._target(self.targets[index])
        img = Image.fromarray(np.ascontiguousarray(img.numpy()))  # uint8 (H, W): mode "L", as torchvision's
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __len__(self) -> int:
        return len(self.data)

    def extra_repr(self) -> str:
        return f"Split: {'Train' if self.train is True else 'Test'}"

    def __repr__(self) -> str:
        head = "Dataset " + type(self).__name__
        body = [f"Number of datapoints: {self.__len__()}"]
        if self.root is not None:
            body.append(f"Root location: {self.root}")
        body += self.extra_repr().splitlines()
        if self.transforms is not None:
            body += [repr(self.transforms)]
        return "\n".join([head] + [" " * self._repr_indent + line for line in body])


class MNIST(_Base, _torch_module.utils.data.Dataset):
    """`MNIST <http://yann.lecun.com/exdb/mnist/>`_ as ``torchvision.datasets.MNIST``.

    Parameters
    ----------
    root : str or pathlib.Path
        Folder holding (or to hold) ``MNIST/raw/train-images-idx3-ubyte[.gz]`` and
        the other files, as torchvision lays them out.
    train : bool, default True
        The training set; else the test set.
    transform, target_transform : callable, optional
        Applied to the PIL image / the int label of each item.
    download : bool, default False
        Fetch missing files (mnistkit's sources, verified); False raises
        :class:`DatasetNotFoundError` (a ``RuntimeError``) when they are not in ``root``.

    Examples
    --------
    >>> from mnistkit import torchvision as datasets                     # doctest: +SKIP
    >>> train = datasets.MNIST("data", train=True, download=True)        # doctest: +SKIP
    >>> img, label = train[0]                                            # doctest: +SKIP
    """

    # torchvision's class attributes, for code that reads them (e.g. to rewrite ``resources`` onto another
    # mirror): mnistkit fetches from its own sources, so changing them changes nothing.
    mirrors: ClassVar[list[str]] = [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ]
    resources: ClassVar[list[tuple[str, str]]] = [
        ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ]


class FashionMNIST(MNIST):
    """Fashion-MNIST as ``torchvision.datasets.FashionMNIST`` (parameters as :class:`MNIST`)."""

    _registry_name = "fashion-mnist"
    mirrors: ClassVar[list[str]] = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    resources: ClassVar[list[tuple[str, str]]] = [
        ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ]
    classes: ClassVar[list[str]] = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]


class KMNIST(MNIST):
    """Kuzushiji-MNIST as ``torchvision.datasets.KMNIST`` (parameters as :class:`MNIST`)."""

    _registry_name = "kmnist"
    mirrors: ClassVar[list[str]] = ["http://codh.rois.ac.jp/kmnist/dataset/kmnist/"]
    resources: ClassVar[list[tuple[str, str]]] = [
        ("train-images-idx3-ubyte.gz", "bdb82020997e1d708af4cf47b453dcf7"),
        ("train-labels-idx1-ubyte.gz", "e144d726b3acfaa3e44228e80efcd344"),
        ("t10k-images-idx3-ubyte.gz", "5c965bf0a639b31b8f53240b1b52f4d7"),
        ("t10k-labels-idx1-ubyte.gz", "7320c461ea6c1c855c0b718fb2a4b134"),
    ]
    classes: ClassVar[list[str]] = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]


_MERGED = {"c", "i", "j", "k", "l", "m", "o", "p", "s", "u", "v", "w", "x", "y", "z"}
_ALL = set(string.digits + string.ascii_letters)


class EMNIST(MNIST):
    """EMNIST as ``torchvision.datasets.EMNIST``: images as published (transposed), labels as stored.

    Parameters
    ----------
    root : str or pathlib.Path
        Folder holding (or to hold) ``EMNIST/raw/``: torchvision's extracted
        ``emnist-<split>-*-ubyte`` files or the ``gzip.zip`` archive.
    split : {"byclass", "bymerge", "balanced", "letters", "digits", "mnist"}
        Which EMNIST dataset.
    **kwargs
        ``train``, ``transform``, ``target_transform``, ``download`` as :class:`MNIST`.
    """

    splits = ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")
    classes_split_dict: ClassVar[dict[str, list[str]]] = {
        "byclass": sorted(_ALL),
        "bymerge": sorted(_ALL - _MERGED),
        "balanced": sorted(_ALL - _MERGED),
        "letters": ["N/A", *string.ascii_lowercase],
        "digits": list(string.digits),
        "mnist": list(string.digits),
    }
    _orientation = "stored"  # torchvision gives EMNIST's images as published: transposed

    def __init__(self, root: str | os.PathLike, split: str, **kwargs: Any) -> None:
        self.split = _verify_str_arg(split, "split", self.splits)
        self.training_file = f"training_{split}.pt"
        self.test_file = f"test_{split}.pt"
        super().__init__(root, **kwargs)
        self.classes = self.classes_split_dict[self.split]  # type: ignore[misc]  # per split, as torchvision's EMNIST

    @property
    def _registry_name(self) -> str:  # type: ignore[override]
        return f"emnist-{self.split}"

    def _dataset(self):
        """The registry entry; where torchvision left the extracted files and no archive, those files."""
        from dataclasses import replace

        ds = super()._dataset()
        raw = Path(self.raw_folder)
        if (raw / "gzip.zip").exists():
            return ds
        members = [spec for spec in ds.files if spec.archive is not None]
        if not all(any((raw / name).is_file() for name in spec.spellings) for spec in members):
            return ds
        # torchvision extracted the members (and may have deleted the archive): read them as plain IDX files.
        # EMNIST publishes no checksum of its members, so (as in the archive) their IDX header vouches for them.
        plain = tuple(replace(spec, archive=None, member=None) for spec in members)
        return replace(ds, files=plain)


class QMNIST(MNIST):
    """QMNIST as ``torchvision.datasets.QMNIST``.

    Parameters
    ----------
    root : str or pathlib.Path
        Folder holding (or to hold) ``QMNIST/raw/`` with the published files
        (compressed or extracted).
    what : {"train", "test", "test10k", "test50k", "nist"}, optional
        Which part; None means "train" or "test" after ``train``.
    compat : bool, default True
        Items' targets are the class (an int); else the row of the 8-column
        label table (an int64 tensor).  ``targets`` is the (N, 8) table either way.
    train : bool, default True
        Used when ``what`` is None.
    **kwargs
        ``transform``, ``target_transform``, ``download`` as :class:`MNIST`.
    """

    _registry_name = "qmnist"
    subsets: ClassVar[dict[str, str]] = {
        "train": "train",
        "test": "test",
        "test10k": "test",
        "test50k": "test",
        "nist": "nist",
    }

    def __init__(
        self,
        root: str | os.PathLike,
        what: str | None = None,
        compat: bool = True,
        train: bool = True,
        **kwargs: Any,
    ) -> None:
        if what is None:
            what = "train" if train else "test"
        self.what = _verify_str_arg(what, "what", tuple(self.subsets))
        self.compat = compat
        self.data_file = what + ".pt"
        self.training_file = self.data_file
        self.test_file = self.data_file
        super().__init__(root, train, **kwargs)

    def _split(self) -> str:
        return self.what

    def _load_data(self):
        torch = _torch()
        part = self._part(label_table=True)
        table = part.labels  # structured, one int32 field per column, native order
        columns = np.stack([table[name] for name in table.dtype.names], axis=1).astype(np.int64)
        return torch.from_numpy(part.images), torch.from_numpy(columns)

    def _target(self, target):
        return int(target[0]) if self.compat else target

    def extra_repr(self) -> str:
        return f"Split: {self.what}"


def _verify_str_arg(value: Any, arg: str, valid: tuple[str, ...]) -> str:
    """torchvision's check of a string argument: a ValueError naming the valid values."""
    if not isinstance(value, str):
        msg = f"Expected type str for argument {arg}, but got type {type(value)}."
        raise ArgumentError(msg)
    if value not in valid:
        msg = f"Unknown value '{value}' for argument {arg}. Valid values are {{{', '.join(repr(v) for v in valid)}}}."
        raise ArgumentError(msg)
    return value
