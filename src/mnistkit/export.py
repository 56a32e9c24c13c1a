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

Nothing half-written is ever visible under a final name.  CSV and ``.npz``
files are written under a temporary name and renamed.  A PNG split is built in
``<out>/<split>.partial/`` (each PNG itself written under a temporary name and
renamed) and the folder is renamed to ``<out>/<split>`` when every image is
there, so an image-folder loader never sees a partial set; a ``.partial``
folder marks an interrupted export, and running the same export again
finishes it, keeping the images already written.  A finished split folder
holds a record (``.mnistkit-export.json``, hidden, a file: image-folder loaders
only look at sub-folders) so that exporting again skips it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np

from .errors import ArgumentError, OutputError, cannot_write, check_choice

__all__ = ["FORMATS", "class_folders", "export"]

FORMATS = ("png", "csv", "npz")
PARTIAL_SUFFIX = ".partial"  # <out>/<split>.partial: a PNG split being written
RECORD = ".mnistkit-export.json"  # in a finished PNG split folder: what it holds
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

    replacing = False
    try:
        yield tmp
        replacing = True
        _winfs.replace(tmp, path)  # Windows: retried while a reader holds the old file for a moment
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if replacing and _winfs.in_use(err):
            from .errors import files_in_use

            raise files_in_use([path], "replace") from None  # e.g. the old CSV open in a spreadsheet
        raise cannot_write(path, err) from err  # the final name: the temporary one means nothing to users
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _bar(total: int, desc: str, progress: bool | None):
    """A progress bar on stderr (a widget in a notebook), or None when progress is off."""
    from .notebook import progress_bar

    return progress_bar(total=total, desc=desc, unit="img", progress=progress, leave=False)


def write_png_folders(
    images: np.ndarray, labels: np.ndarray, classes: Sequence[str], out: Path, progress: bool | None = None
) -> list[Path]:
    """Write one PNG per image into ``out/<class folder>/<index>.png``; returns the paths.

    ``labels`` are class numbers 0..len(classes)-1 (see ``Dataset.class_index``).  Each PNG is
    written under a temporary name and renamed, so a PNG under its final name is always whole;
    PNGs already there are kept (this is how an interrupted export resumes).
    """
    from PIL import Image

    from .render import as_image

    folders = class_folders(classes)
    numbers = class_numbers(labels)
    width = len(str(max(len(images) - 1, 0)))
    present: dict[int, set[str]] = {}
    paths = []
    bar = _bar(len(images), out.name, progress)
    try:
        for index, (image, number) in enumerate(zip(images, numbers, strict=True)):
            number = int(number)
            folder = out / (folders[number] if 0 <= number < len(folders) else str(number))
            if number not in present:
                present[number] = _existing_pngs(folder)
            name = f"{index:0{width}d}.png"
            path = folder / name
            if name not in present[number]:
                tmp = folder / f".{name}.{os.getpid()}.tmp"
                try:
                    Image.fromarray(as_image(image)).save(tmp, format="PNG", optimize=False, compress_level=1)
                    os.replace(tmp, path)
                except BaseException:
                    _discard(tmp)
                    raise
            paths.append(path)
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()
    return paths


def _existing_pngs(folder: Path) -> set[str]:
    """Names of the finished PNGs in ``folder`` (created if absent); leftovers of a killed writer go."""
    folder.mkdir(parents=True, exist_ok=True)
    names = set()
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                _discard(Path(entry.path))
            elif entry.name.endswith(".png"):
                names.add(entry.name)
    return names


def _discard(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _read_record(folder: Path) -> dict | None:
    try:
        return json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def export_png_split(
    images: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    out: Path,
    record: dict,
    progress: bool | None = None,
) -> list[Path]:
    """Write one split as ``out/<class folder>/<index>.png``, visible under ``out`` only when whole.

    The images go to ``out.partial`` first (resumed if it is there from an interrupted run of the
    same export), which is renamed to ``out`` at the end.  ``record`` (dataset, split, count) is
    kept in the folder; a finished ``out`` with the same record is left as it is.

    Raises
    ------
    ArgumentError
        When ``out`` (or ``out.partial``) holds something other than this export.
    """
    with _export_lock(out.parent, progress):
        return _export_png_split(images, labels, classes, out, record, progress)


@contextmanager
def _export_lock(folder: Path, progress: bool | None) -> Iterator[None]:
    """Hold a lock on the output folder itself: a second export to the same folder waits for the first.

    Without it, two processes would write into one ``.partial`` folder and one would find it
    renamed under its feet, failing half-way.  The lock is ``flock`` on the folder (no lock file
    is left among the exported ones); the OS releases it when a holder dies.  Where there is no
    ``flock`` (Windows) exports are not serialised.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            from ._log import log

            log.info("waiting for another export to %s to finish", folder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _export_png_split(
    images: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    out: Path,
    record: dict,
    progress: bool | None = None,
) -> list[Path]:
    partial = out.with_name(out.name + PARTIAL_SUFFIX)
    names = [f"{i:0{len(str(max(len(images) - 1, 0)))}d}.png" for i in range(len(images))]
    folders = class_folders(classes)
    numbers = class_numbers(labels)

    def final_paths(root: Path) -> list[Path]:
        return [
            root / (folders[int(n)] if 0 <= int(n) < len(folders) else str(int(n))) / name
            for n, name in zip(numbers, names, strict=True)
        ]

    if out.exists():
        if _read_record(out) == record:
            # Finished by an earlier run; a PNG deleted since is written again (each one whole).
            write_png_folders(images, labels, classes, out, progress)
            return final_paths(out)
        msg = (
            f"{out} already exists and is not a finished PNG export of {record['dataset']} {record['split']}; "
            f"delete it or export to another folder"
        )
        raise ArgumentError(msg)
    if partial.exists() and _read_record(partial) is None:
        # Made by a run killed before its record was in place: nothing written in it yet.
        for stray in partial.glob(f"{RECORD}.*.tmp"):
            _discard(stray)
        if not any(partial.iterdir()):
            partial.rmdir()
    if partial.exists():
        if _read_record(partial) != record:
            msg = (
                f"{partial} is an unfinished export of something other than {record['dataset']} "
                f"{record['split']}; delete it or export to another folder"
            )
            raise ArgumentError(msg)
    else:
        partial.mkdir(parents=True)
        tmp = partial / f"{RECORD}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, partial / RECORD)
    write_png_folders(images, labels, classes, partial, progress)
    try:
        os.rename(partial, out)
    except FileNotFoundError:
        if _read_record(out) != record:  # else another process exporting the same split finished first
            raise
    return final_paths(out)


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
                    f"{int(label)},{','.join(row)}\n"
                    for label, row in zip(numbers[start : start + len(block)], cells, strict=True)
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
    with _atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: savez would append ".npz" to the name
        np.savez_compressed(fh, **cast("dict[str, Any]", arrays))  # x_/y_ keys, never savez's allow_pickle
    return path


def export(
    name: str,
    fmt: str,
    out: str | os.PathLike,
    *,
    splits: Sequence[str] | None = None,
    data_home: str | os.PathLike | None = None,
    mirrors: str | Sequence[str] | None = None,
    offline: bool | None = None,
    progress: bool | None = None,
    timeout: float | None = None,
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
    data_home, mirrors, offline, timeout : optional
        Where the data comes from, as in :func:`mnistkit.load`; missing files are downloaded.
    progress : bool, optional
        Progress bars on stderr; None means only when stderr is a terminal.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    from .api import load
    from .registry import get_dataset
    from .settings import Settings

    check_choice(fmt, "format", FORMATS)
    if not isinstance(out, (str, os.PathLike)) or not str(out).strip():
        msg = f"out={out!r} is not valid: give the folder to export to"
        raise ArgumentError(msg)
    if isinstance(splits, str):  # one split by name, not its letters
        splits = [splits]
    ds = get_dataset(name)
    chosen = list(dict.fromkeys(ds.split(s).name for s in splits)) if splits else [s.name for s in ds.splits]
    out = Path(out)
    check_out_folder(out)
    # Every file first: when some are missing, one error names all of them (not one split per run).
    from .api import _load_files, dataset_store

    settings = Settings.resolve(data_home, mirrors, offline, progress, timeout)
    store = dataset_store(ds, settings=settings)
    names = dict.fromkeys(f for s in chosen for f in (ds.split(s).images, ds.split(s).labels))
    _load_files(store, [ds.file(f) for f in names])
    make_out_folder(out)
    written: list[Path] = []
    arrays: dict[str, np.ndarray] = {}
    for split in chosen:
        images, labels = load(ds.name, split, normalize=False, flatten=False, **settings.keywords())
        images = images.reshape(len(images), *images.shape[-2:])
        try:
            if fmt == "png":
                record = {"dataset": ds.name, "split": split, "format": "png", "count": len(images)}
                written += export_png_split(images, ds.class_index(labels), ds.classes, out / split, record, progress)
            elif fmt == "csv":
                written.append(write_csv(images, labels, out / f"{ds.name}_{split}.csv", progress))
            else:
                arrays[f"x_{split}"], arrays[f"y_{split}"] = images, labels
            if fmt == "npz" and split == chosen[-1]:
                written.append(write_npz(arrays, out / f"{ds.name}.npz"))
        except OutputError:
            raise
        except OSError as err:
            # Name the folder the user chose, never a temporary file inside it.
            raise cannot_write(out, err) from err
    return written


def check_out_folder(out: Path) -> None:
    """Raise ArgumentError if a file stands where the output folder (or one of its parents) would be."""
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                what = "" if parent == out else f" (in the way of {out})"
                msg = f"{parent}{what} is a file, not a folder; choose a folder to export to"
                raise ArgumentError(msg)
            break


def make_out_folder(out: Path) -> None:
    """Create the output folder, or raise OutputError saying why it cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied", str(out))
    except OSError as err:
        raise cannot_write(out, err) from err
