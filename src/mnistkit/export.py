"""Writing datasets out for other tools: PNG folders, CSV and ``.npz``.

* ``png``: ``<out>/<split>/<class folder>/<index>.png``, the layout that image
  tools (torchvision ``ImageFolder``, Keras ``image_dataset_from_directory``)
  read.  Those tools number classes by sorting folder names, so folders start
  with the zero-padded class number: ``0`` .. ``9`` for digits, ``0-T-shirt_top``
  style where the classes have names.
* ``csv``: ``<out>/<dataset>_<split>.csv`` with a ``label,pixel0,...,pixelN``
  header and one image per row, the common Kaggle layout.
* ``npz``: ``<out>/<dataset>.npz`` holding ``x_<split>`` (uint8, N x H x W) and
  ``y_<split>`` for every split, the Keras ``mnist.npz`` layout.

CSV and ``.npz`` files are written under a temporary name and renamed, so an
interrupted export never leaves a truncated file under the final name.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import check_choice

__all__ = ["FORMATS", "class_folders", "export"]

FORMATS = ("png", "csv", "npz")
_CSV_ROWS = 1024  # rows formatted per write: bounded memory, few write calls


def class_folders(classes: Sequence[str]) -> list[str]:
    """Folder names for the classes, sorting in class order.

    Examples
    --------
    >>> class_folders(["0", "1"])
    ['0', '1']
    >>> class_folders(["T-shirt/top", "Trouser"])
    ['0-T-shirt_top', '1-Trouser']
    """
    width = len(str(max(len(classes) - 1, 0)))
    names = []
    for number, name in enumerate(classes):
        prefix = f"{number:0{width}d}"
        safe = re.sub(r"[^\w.-]+", "_", name).strip("._")
        names.append(prefix if name == str(number) or not safe else f"{prefix}-{safe}")
    return names


def class_numbers(labels: np.ndarray) -> np.ndarray:
    """The class of each sample: the labels, or their first column for multi-column labels."""
    labels = np.asarray(labels)
    return labels[:, 0] if labels.ndim == 2 else labels


@contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed to it when the block succeeds."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # opened normally: the umask sets its mode
    from . import _winfs

    try:
        yield tmp
        try:
            _winfs.replace(tmp, path)  # Windows: retried while a reader holds the old file for a moment
        except OSError as err:
            if not _winfs.in_use(err):
                raise
            from .errors import files_in_use

            raise files_in_use([path], "replace") from None  # e.g. the old CSV open in a spreadsheet
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _bar(total: int, desc: str, progress: bool | None):
    """A tqdm bar on stderr, or None when progress is off (default: only on a terminal)."""
    if not (sys.stderr.isatty() if progress is None else progress):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, leave=False)


def write_png_folders(
    images: np.ndarray, labels: np.ndarray, classes: Sequence[str], out: Path, progress: bool | None = None
) -> list[Path]:
    """Write one PNG per image into ``out/<class folder>/<index>.png``; returns the paths.

    ``labels`` are class numbers 0..len(classes)-1 (see ``Dataset.class_index``).
    """
    from PIL import Image

    from .render import as_image

    folders = class_folders(classes)
    numbers = class_numbers(labels)
    width = len(str(max(len(images) - 1, 0)))
    made: set[int] = set()
    paths = []
    bar = _bar(len(images), out.name, progress)
    try:
        for index, (image, number) in enumerate(zip(images, numbers)):
            number = int(number)
            folder = out / (folders[number] if 0 <= number < len(folders) else str(number))
            if number not in made:
                folder.mkdir(parents=True, exist_ok=True)
                made.add(number)
            path = folder / f"{index:0{width}d}.png"
            Image.fromarray(as_image(image)).save(path, optimize=False, compress_level=1)
            paths.append(path)
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()
    return paths


def write_csv(images: np.ndarray, labels: np.ndarray, path: Path, progress: bool | None = None) -> Path:
    """Write ``label,pixel0,...`` rows, one image per row, with a header line."""
    flat = np.asarray(images).reshape(len(images), -1)
    numbers = class_numbers(labels)
    # One string per possible value: formatting becomes a table lookup and a join.
    text = np.array([str(v) for v in range(256)], dtype=object) if flat.dtype == np.uint8 else None
    bar = _bar(len(flat), path.name, progress)
    try:
        with _atomic_path(path) as tmp, open(tmp, "w", encoding="ascii", newline="") as fh:
            fh.write(",".join(["label", *(f"pixel{i}" for i in range(flat.shape[1]))]) + "\n")
            for start in range(0, len(flat), _CSV_ROWS):
                block = flat[start : start + _CSV_ROWS]
                cells = text[block] if text is not None else block.astype(str)
                lines = (
                    f"{int(label)},{','.join(row)}\n" for label, row in zip(numbers[start : start + len(block)], cells)
                )
                fh.writelines(lines)
                if bar is not None:
                    bar.update(len(block))
    finally:
        if bar is not None:
            bar.close()
    return path


def write_npz(arrays: dict[str, np.ndarray], path: Path) -> Path:
    """Write ``arrays`` into a compressed ``.npz`` at ``path``."""
    with _atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:  # a file object: savez would append ".npz" to the temporary name
            np.savez_compressed(fh, **arrays)
    return path


def export(
    name: str,
    fmt: str,
    out: str | os.PathLike,
    *,
    splits: Sequence[str] | None = None,
    data_home: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> list[Path]:
    """Export a dataset's splits as PNG folders, CSV files or one ``.npz``.

    Parameters
    ----------
    name : str
        Dataset name.
    fmt : {"png", "csv", "npz"}
        Output format; see the module docstring for the layouts.
    out : path-like
        Output folder (created if needed).
    splits : sequence of str, optional
        Splits to export; all of the dataset's when None.
    data_home : path-like, optional
        The data folder (see :func:`mnistkit.load`); missing files are downloaded.
    progress : bool, optional
        Progress bars on stderr; None means only when stderr is a terminal.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    from .api import load
    from .registry import get_dataset

    check_choice(fmt, "format", FORMATS)
    ds = get_dataset(name)
    chosen = [ds.split(s).name for s in splits] if splits else [s.name for s in ds.splits]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    arrays: dict[str, np.ndarray] = {}
    for split in chosen:
        images, labels = load(ds.name, split, normalize=False, flatten=False, data_home=data_home, progress=progress)
        images = images.reshape(len(images), *images.shape[-2:])
        if fmt == "png":
            written += write_png_folders(images, ds.class_index(labels), ds.classes, out / split, progress)
        elif fmt == "csv":
            written.append(write_csv(images, labels, out / f"{ds.name}_{split}.csv", progress))
        else:
            arrays[f"x_{split}"], arrays[f"y_{split}"] = images, labels
    if fmt == "npz":
        written.append(write_npz(arrays, out / f"{ds.name}.npz"))
    return written
