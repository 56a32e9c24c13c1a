"""A drop-in for ``keras.datasets.mnist`` and ``keras.datasets.fashion_mnist``, without TensorFlow or Keras.

Replace ``from keras.datasets import mnist`` (or ``tensorflow.keras.datasets``) by
``from mnistkit.keras import mnist``; ``mnist.load_data()`` returns what Keras
returns: ``(x_train, y_train), (x_test, y_test)``, uint8 arrays of shapes
(60000, 28, 28), (60000,), (10000, 28, 28) and (10000,).  Behind it are mnistkit's
mirrors, resumable downloads, verification and cache.

Files Keras already downloaded are used instead of a new download: an
``mnist.npz`` in Keras' cache folder (``$KERAS_HOME/datasets``, by default
``~/.keras/datasets``) when its arrays are the published data (checked against
the checksums of MNIST's decoded files), and Fashion-MNIST's four ``.gz`` files
in ``<that folder>/fashion-mnist/`` (verified like any source).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np

__all__ = ["datasets", "fashion_mnist", "keras_datasets_folder", "mnist"]

#: SHA-256 of the ``mnist.npz`` Keras downloads (the ``file_hash`` Keras itself pins).
KERAS_MNIST_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"

Pairs = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def keras_datasets_folder() -> Path:
    """Keras' download folder: ``$KERAS_HOME/datasets``, else ``~/.keras/datasets``."""
    home = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    return Path(home).expanduser() / "datasets"


def _idx_sha256(array: np.ndarray) -> str:
    """``sha256:`` of ``array`` written as a uint8 IDX file (what the registry pins for MNIST)."""
    import hashlib

    from .idx import encode_idx

    return "sha256:" + hashlib.sha256(encode_idx(np.ascontiguousarray(array, dtype=np.uint8))).hexdigest()


def _keras_npz(path: Path) -> Pairs | None:
    """The four arrays of a Keras ``mnist.npz`` when they are the published MNIST, else None."""
    import hashlib
    import logging
    import zipfile

    from .registry import get_dataset

    log = logging.getLogger("mnistkit")
    if not path.is_file():
        return None
    try:
        sha = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                sha.update(chunk)
        digest = sha.hexdigest()
        with np.load(path, allow_pickle=False) as f:
            arrays = [np.asarray(f[key]) for key in ("x_train", "y_train", "x_test", "y_test")]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:  # EOFError: a 0-byte file
        log.warning("ignoring %s: not a readable Keras mnist.npz (%s)", path, err)
        return None
    if digest != KERAS_MNIST_NPZ_SHA256:
        # Not the file Keras downloads (re-saved, or other data): accept its arrays only if they are MNIST's.
        ds = get_dataset("mnist")
        specs = [ds.file(s.images) for s in ds.splits[:1]] + [ds.file(ds.splits[0].labels)]
        specs += [ds.file(ds.splits[1].images), ds.file(ds.splits[1].labels)]
        for array, spec in zip(arrays, specs, strict=True):
            if array.dtype != np.uint8 or array.shape != spec.shape or _idx_sha256(array) != spec.decoded_sha256:
                log.warning("ignoring %s: its arrays are not the published MNIST", path)
                return None
    x_train, y_train, x_test, y_test = arrays
    return (x_train, y_train), (x_test, y_test)


def _load(name: str, mirrors: list[str] | None = None) -> Pairs:
    from .api import load_mnist

    (x, t), (xt, tt) = load_mnist(normalize=False, flatten=False, dataset=name, mirrors=mirrors)
    # Keras returns (N, 28, 28) arrays of its own, not views of a cache: copies, C-contiguous.
    return (np.array(x[:, 0]), np.array(t)), (np.array(xt[:, 0]), np.array(tt))


def _mnist_load_data(path: str = "mnist.npz") -> Pairs:
    """Load the MNIST dataset as ``keras.datasets.mnist.load_data`` does.

    Parameters
    ----------
    path : str, default "mnist.npz"
        Where Keras caches the dataset, relative to Keras' download folder
        (``~/.keras/datasets``; an absolute path is used as it is).  A file
        there whose arrays are the published MNIST is used; otherwise the data
        comes from mnistkit's data folder (downloaded and verified if need be).
        Nothing is written to Keras' folder.

    Returns
    -------
    (x_train, y_train), (x_test, y_test) : tuple of tuples of numpy.ndarray
        uint8 arrays: images (60000, 28, 28) and (10000, 28, 28), labels
        (60000,) and (10000,), as Keras returns them.

    Raises
    ------
    MissingFilesError, DownloadError
        When the data is neither in Keras' folder nor obtainable by mnistkit.

    Examples
    --------
    >>> from mnistkit.keras import mnist                          # doctest: +SKIP
    >>> (x_train, y_train), (x_test, y_test) = mnist.load_data()   # doctest: +SKIP
    """
    found = _keras_npz(keras_datasets_folder() / os.fspath(path))
    if found is not None:
        return found
    return _load("mnist")


def _fashion_mnist_load_data() -> Pairs:
    """Load Fashion-MNIST as ``keras.datasets.fashion_mnist.load_data`` does.

    The four ``.gz`` files Keras keeps in ``~/.keras/datasets/fashion-mnist/``
    are used when present (verified like any source, copied into mnistkit's
    data folder); otherwise they are downloaded by mnistkit.

    Returns
    -------
    (x_train, y_train), (x_test, y_test) : tuple of tuples of numpy.ndarray
        uint8 arrays: images (60000, 28, 28) and (10000, 28, 28), labels
        (60000,) and (10000,), as Keras returns them.

    Examples
    --------
    >>> from mnistkit.keras import fashion_mnist                          # doctest: +SKIP
    >>> (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()   # doctest: +SKIP
    """
    from .settings import parse_mirrors

    # Keras' folder has mnistkit's mirror layout (<base>/fashion-mnist/<file>): a local source, tried first.
    keras = keras_datasets_folder()
    mirrors = [str(keras)] if (keras / "fashion-mnist").is_dir() else []
    return _load("fashion-mnist", mirrors + parse_mirrors(None))


mnist = SimpleNamespace(load_data=_mnist_load_data)
mnist.__doc__ = "``keras.datasets.mnist``: ``load_data(path='mnist.npz')``."
fashion_mnist = SimpleNamespace(load_data=_fashion_mnist_load_data)
fashion_mnist.__doc__ = "``keras.datasets.fashion_mnist``: ``load_data()``."
#: ``keras.datasets``: so that ``from mnistkit import keras`` serves ``keras.datasets.mnist.load_data()``.
datasets = SimpleNamespace(mnist=mnist, fashion_mnist=fashion_mnist)
