"""mnistkit: the MNIST family as NumPy arrays, verified, cached and fast.

>>> from mnistkit import load_mnist                                  # doctest: +SKIP
>>> (x_train, t_train), (x_test, t_test) = load_mnist()              # doctest: +SKIP

The public surface is small; everything else lives in modules by concern:
``idx`` (the file format), ``registry`` (datasets as data), ``sources``
(mirrors and downloads), ``remote`` and ``mirror`` (object-store mirrors, publishing),
``store`` (data folder, locks, cache), ``api`` (loading with options),
``batching`` (mini-batches, validation hold-outs),
``render`` (pictures), ``notebook`` (Jupyter display, progress bars), ``cli`` (the command line); ``adapters`` holds the
PyTorch, TensorFlow and JAX glue, imported only when used.
"""

from ._version import __version__
from .api import label_mapping, load, load_mnist
from .batching import batches, validation_split
from .errors import (
    ArgumentError,
    ChecksumError,
    DataFolderError,
    DownloadError,
    FilesUnavailableError,
    IdxFormatError,
    LockTimeout,
    MissingDependencyError,
    MissingFilesError,
    MnistkitError,
    MnistkitWarning,
    RegistryMismatchError,
)
from .idx import read_idx, write_idx
from .registry import Dataset, datasets, get_dataset, register_dataset
from .render import Picture, grid, img_show

__all__ = [
    "ArgumentError",
    "ChecksumError",
    "DataFolderError",
    "Dataset",
    "DownloadError",
    "FilesUnavailableError",
    "IdxFormatError",
    "LockTimeout",
    "MissingDependencyError",
    "MissingFilesError",
    "MnistkitError",
    "MnistkitWarning",
    "Picture",
    "RegistryMismatchError",
    "__version__",
    "batches",
    "datasets",
    "get_dataset",
    "grid",
    "img_show",
    "label_mapping",
    "load",
    "load_mnist",
    "publish",
    "read_idx",
    "register_dataset",
    "validation_split",
    "verify_mirror",
    "write_idx",
]


def __getattr__(name: str):
    # publish and verify_mirror (mnistkit.mirror) are loaded on first use: `import mnistkit` stays light.
    if name in ("publish", "verify_mirror"):
        from . import mirror

        return getattr(mirror, name)
    msg = f"module 'mnistkit' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted([*globals(), "publish", "verify_mirror"])
