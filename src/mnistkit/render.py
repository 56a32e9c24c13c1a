"""Pictures of images: in the terminal (no display needed), as PNG files and in notebooks.

The terminal renderer draws two pixel rows per text line with the Unicode
upper half block, the upper pixel as foreground and the lower as background
colour, in grey levels; it works over SSH and in CI logs.  Where colour
escapes cannot be used (output is not a terminal) it falls back to a plain
character ramp.  :class:`Picture` is an image that notebooks show inline
(``_repr_png_``) and that saves to a file; :func:`grid` makes one from many
samples, and the CLI's ``grid`` command is the same code.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import ArgumentError, MnistkitError, cannot_write

if TYPE_CHECKING:
    from .registry import Dataset

__all__ = ["Picture", "as_image", "grid", "has_display", "img_show", "save_png", "terminal_lines"]

#: Pixels between montage cells and around the montage, before scaling.
MONTAGE_PAD = 2
#: The largest enlargement :func:`save_png` takes (28 x 64 = 1792 pixels a side).
MAX_SCALE = 64
#: The longest side of a montage, in pixels: beyond it, image viewers give up.
MAX_SIDE = 16384

_RAMP = " .:-=+*#%@"
_HALF = "\u2580"  # upper half block


def as_image(img: np.ndarray) -> np.ndarray:
    """Turn one image, flat or not, uint8 or float, into a 2-D uint8 array.

    Parameters
    ----------
    img : array-like
        Shape (784,), (28, 28), (1, 28, 28) or (28, 28, 1) (any square size
        works for the flat form).  Floats are taken as [0, 1] when their
        maximum is at most 1, else as 0..255.

    Returns
    -------
    numpy.ndarray
        uint8 array of shape (H, W).
    """
    arr = np.asarray(img)
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr.reshape(arr.shape[1:] if arr.shape[0] == 1 else arr.shape[:2])
    if arr.ndim == 1:
        side = round(arr.size**0.5)
        if side * side != arr.size or side == 0:
            msg = f"a flat image of {arr.size} pixels is not square; pass it as (height, width)"
            raise ArgumentError(msg)
        arr = arr.reshape(side, side)
    if arr.ndim != 2:
        msg = f"expected one image of shape (784,), (28, 28) or (1, 28, 28), got shape {np.shape(img)}"
        raise ArgumentError(msg)
    if arr.dtype.kind == "f":
        finite = arr[np.isfinite(arr)]  # an all-NaN image: black, without numpy's "All-NaN slice" warning
        top = float(finite.max()) if finite.size else 0.0
        scale = 255.0 if top <= 1.0 else 1.0
        return np.clip(np.nan_to_num(arr) * scale + 0.5, 0, 255).astype(np.uint8)
    if arr.dtype.kind == "b":
        return arr.astype(np.uint8) * 255
    return np.clip(arr, 0, 255).astype(np.uint8)


def terminal_lines(img: np.ndarray, *, color: bool = True) -> list[str]:
    """Render an image as text lines.

    Parameters
    ----------
    img : array-like
        See :func:`as_image`.
    color : bool
        Grey levels with 24-bit colour escapes and half blocks (two pixel rows
        per line); else a character ramp, one pixel row per line, two
        characters per pixel so the picture keeps its proportions.

    Returns
    -------
    list of str
    """
    pixels = as_image(img)
    if not color:
        idx = (pixels.astype(np.uint16) * (len(_RAMP) - 1) + 127) // 255
        return ["".join(_RAMP[i] * 2 for i in row) for row in idx]
    if pixels.shape[0] % 2:
        pixels = np.vstack([pixels, np.zeros((1, pixels.shape[1]), np.uint8)])
    lines = []
    for top, bottom in zip(pixels[0::2], pixels[1::2], strict=True):
        cells = [f"\x1b[38;2;{a};{a};{a}m\x1b[48;2;{b};{b};{b}m{_HALF}" for a, b in zip(top, bottom, strict=True)]
        lines.append("".join(cells) + "\x1b[0m")
    return lines


def check_png_path(path: str | os.PathLike, name: str = "path") -> Path:
    """``path`` as a Path if a PNG can be written there, else ArgumentError saying why.

    It must end in ``.png`` (any case) and not be a folder, and its folder must exist.
    ``name`` is how the message calls it (``--png`` on the command line).
    """
    if not str(path).strip():
        msg = f"{name} is empty; give a file name ending in .png"
        raise ArgumentError(msg)
    path = Path(path)
    if path.is_dir():
        msg = f"{name} {path} is a folder; give a file name ending in .png"
        raise ArgumentError(msg)
    if path.suffix.lower() != ".png":
        got = f"ends in {path.suffix!r}" if path.suffix else "has no extension"
        msg = f"{name} {path} {got}: a PNG file name must end in .png"
        raise ArgumentError(msg)
    folder = path.parent
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        msg = f"{name} {path}: the folder {folder} {what}; create it first or choose another place"
        raise ArgumentError(msg)
    if not os.access(folder, os.W_OK | os.X_OK):
        msg = f"{name} {path}: the folder {folder} is not writable for you; choose another place"
        raise ArgumentError(msg)
    return path


def check_scale(scale: object, name: str = "scale", top: int = MAX_SCALE) -> int:
    """``scale`` if it is a whole number from 1 to ``top``, else ArgumentError."""
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, (int, np.integer)) or not 1 <= scale <= top:
        msg = f"{name}={scale!r} is not valid: give a whole number from 1 to {top}"
        raise ArgumentError(msg)
    return int(scale)


def write_png(picture, path: str | os.PathLike) -> Path:
    """Write a PIL image as a PNG at ``path`` (checked by :func:`check_png_path`), whole or not at all.

    It is written under a temporary name beside ``path`` and renamed, so an interrupted or failed
    write never leaves a truncated PNG under the final name.
    """
    path = check_png_path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        picture.save(tmp, format="PNG")
        os.replace(tmp, path)
    except OSError as err:
        _discard(tmp)
        raise cannot_write(path, err) from err
    except BaseException:
        _discard(tmp)
        raise
    return path


def _discard(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def save_png(img: np.ndarray, path: str | os.PathLike, *, scale: int = 1) -> Path:
    """Save one image as a greyscale PNG, enlarged ``scale`` times (1 to :data:`MAX_SCALE`).

    Raises
    ------
    ArgumentError
        For a path that does not end in ``.png``, is a folder or lies in a missing folder, or a bad scale.
    OutputError
        When the file cannot be written.
    """
    from PIL import Image

    scale = check_scale(scale)
    path = check_png_path(path)
    pixels = as_image(img)
    if scale > 1:
        pixels = np.kron(pixels, np.ones((scale, scale), np.uint8))
    return write_png(Image.fromarray(pixels, mode="L"), path)


#: Largest picture :func:`grid` draws (pixels); beyond it, an ArgumentError says how to show fewer.
MAX_GRID_PIXELS = 50_000_000
_RED = (220, 0, 0)


class Picture:
    """An image that notebooks show inline and that saves to a file.

    Returned by :func:`grid`; :func:`img_show` displays one in a notebook.
    In Jupyter (and VS Code, Colab) a Picture left as a cell's value renders
    as a PNG (``_repr_png_``); ``save(path)`` writes it; ``numpy.asarray`` gives
    its pixels; ``to_pil()`` a Pillow image.

    Parameters
    ----------
    pixels : numpy.ndarray
        uint8, shape (H, W) for grey or (H, W, 3) for colour.
    """

    def __init__(self, pixels: np.ndarray) -> None:
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8 or not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
            msg = f"a Picture needs uint8 pixels of shape (H, W) or (H, W, 3), got {pixels.dtype} {pixels.shape}"
            raise ArgumentError(msg)
        self.pixels = pixels
        self._png: bytes | None = None

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.pixels.shape[0])

    @property
    def mode(self) -> str:
        """Pillow's mode: ``"L"`` (grey) or ``"RGB"``."""
        return "L" if self.pixels.ndim == 2 else "RGB"

    def to_pil(self):
        """The picture as a ``PIL.Image.Image`` (a copy)."""
        from PIL import Image

        return Image.fromarray(self.pixels, mode=self.mode)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.pixels if dtype is None else self.pixels.astype(dtype)

    def _repr_png_(self) -> bytes:
        """PNG bytes: what Jupyter shows for a Picture."""
        if self._png is None:
            import io

            buffer = io.BytesIO()
            self.to_pil().save(buffer, format="PNG", optimize=False, compress_level=6)
            self._png = buffer.getvalue()
        return self._png

    def __repr__(self) -> str:
        kind = "grey" if self.mode == "L" else "colour"
        return f"<mnistkit Picture {self.width}x{self.height} {kind}: .save(path) writes it, notebooks show it>"

    def save(self, path: str | os.PathLike, format: str | None = None) -> Path:  # noqa: A002
        """Write the picture to ``path``; the format follows the name (``.png``, ``.jpg``, ...).

        The file appears complete or not at all (written under a temporary
        name in the same folder, then renamed).

        Parameters
        ----------
        path : path-like
            The file to write.
        format : str, optional
            A Pillow format name ("PNG"); None: from the file name's extension.

        Returns
        -------
        pathlib.Path
            ``path``.

        Raises
        ------
        ArgumentError
            The name has no known image extension, is a folder, or its folder does not exist.
        DataFolderError
            The folder cannot be written (permissions, full disk).
        """
        from PIL import Image

        path = Path(path)
        if path.is_dir():
            msg = f"{path} is a folder: give a file name such as {path / 'picture.png'}"
            raise ArgumentError(msg)
        if format is None:
            format = Image.registered_extensions().get(path.suffix.lower())  # noqa: A001
            if format is None:
                msg = f"cannot tell an image format from the name {str(path)!r}: use a name ending in .png"
                raise ArgumentError(msg)
        folder = path.parent
        if not folder.is_dir():
            msg = f"cannot save {path.name}: the folder {folder} does not exist; create it first"
            raise ArgumentError(msg)
        image = self.to_pil()
        if format.upper() in ("JPEG", "JPG") and image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        import threading

        tmp = folder / f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"  # unique per writer
        try:
            image.save(tmp, format=format)
            os.replace(tmp, path)
        except OSError as err:
            _remove(tmp)
            from .errors import DataFolderError

            msg = f"cannot write {path}: {err.strerror or err}; choose a folder you can write to"
            raise DataFolderError(msg) from None
        except BaseException:
            _remove(tmp)
            raise
        return path


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def upscale(pixels: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement: each pixel becomes a ``scale`` x ``scale`` block (no blur)."""
    if scale == 1:
        return pixels
    return np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)


def _class_numbers(values: np.ndarray, dataset) -> np.ndarray:
    """Class numbers 0..C-1 from labels or predictions as a user has them.

    1-D labels as loaded (the dataset's ``label_offset`` removed), one-hot rows
    or per-class scores (argmax), a QMNIST label table (its class column).
    """
    values = np.asarray(values)
    if values.dtype.names:  # QMNIST label_table=True: the "class" field
        values = values[values.dtype.names[0]]
    if values.ndim == 2:
        if dataset is not None and dataset.label_columns and values.dtype.kind in "iu":
            return dataset.class_index(values)
        return values.argmax(axis=1).astype(np.int64)  # one-hot labels or model scores
    if values.ndim != 1:
        msg = f"labels and predictions must be one per image, shape (N,) or (N, classes); got {values.shape}"
        raise ArgumentError(msg)
    if dataset is not None:
        return dataset.class_index(values)
    return values.astype(np.int64)


def grid(
    images: np.ndarray | str,
    labels: np.ndarray | None = None,
    *,
    predictions: np.ndarray | None = None,
    indices: np.ndarray | list[int] | None = None,
    per_class: int | None = None,
    split: str = "train",
    dataset: str | Dataset | None = None,
    classes: list[str] | tuple[str, ...] | None = None,
    columns: int | None = None,
    scale: int = 2,
    captions: bool = True,
    data_home: str | os.PathLike | None = None,
) -> Picture:
    """A picture of many samples: one labelled row per class, or the images you pick.

    Two layouts:

    * **per class** (the default when there are labels and no ``indices``):
      row ``c`` holds the first ``per_class`` images of class ``c`` in order,
      labelled on the left with its number (and name); the cells are aligned
      on the right edge, so with ``pad = 2 * scale`` cell ``(row, col)`` starts
      at ``x = width - (per_class - col) * (W*scale + pad)``.  A class with
      fewer samples leaves its row's end blank.
    * **given images** (``indices=...``, or no labels): the images in the given
      order, ``columns`` per row, each captioned with its label.

    With ``predictions``, a cell whose prediction differs from its label gets
    a red frame and the caption ``label->prediction`` in red (per class: just
    ``->prediction`` under the cell, the row says the label), so the mistakes
    of a model stand out.

    Parameters
    ----------
    images : numpy.ndarray or str
        Images (N, 784), (N, 28, 28) or (N, 1, 28, 28), uint8 or float in
        [0, 1]; or a dataset name, whose ``split`` is loaded (downloaded if needed).
    labels : numpy.ndarray, optional
        One label per image, as loaded (one-hot rows work too).
    predictions : numpy.ndarray, optional
        One predicted label (or a row of class scores) per image, numbered as the labels.
    indices : sequence of int, optional
        The images to show, in this order (e.g. ``np.flatnonzero(pred != t)[:20]``).
    per_class : int, optional
        Samples per class in the per-class layout (default 8).
    split : str, default "train"
        The split to load when ``images`` is a dataset name.
    dataset : str or Dataset, optional
        The dataset the arrays come from: gives class names and label
        numbering (EMNIST letters start at 1).  Default: the name passed as
        ``images``, else class names are the label numbers.
    classes : sequence of str, optional
        Class names, overriding the dataset's.
    columns : int, optional
        Cells per row in the given-images layout (default: up to 10).
    scale : int, default 2
        Each image is enlarged ``scale`` times, nearest-neighbour.
    captions : bool, default True
        Caption the cells of the given-images layout.
    data_home : path-like, optional
        Data folder when ``images`` is a dataset name.

    Returns
    -------
    Picture
        Shown inline as a cell's value in a notebook; ``.save("grid.png")`` writes it.

    Raises
    ------
    ArgumentError
        Bad sizes or counts, lengths that differ, or a picture over
        :data:`MAX_GRID_PIXELS` pixels.

    Examples
    --------
    >>> mnistkit.grid("mnist", per_class=10)                                    # doctest: +SKIP
    >>> mnistkit.grid(x_test, t_test, predictions=pred,
    ...               indices=np.flatnonzero(pred != t_test)[:30])              # doctest: +SKIP
    """
    from .registry import Dataset, get_dataset

    for name, value, minimum in (("scale", scale, 1), ("per_class", per_class, 1), ("columns", columns, 1)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum
        ):
            msg = f"{name}={value!r}: expected an integer >= {minimum}"
            raise ArgumentError(msg)
    ds = None
    if isinstance(images, str):
        from .api import load

        if labels is not None:
            msg = "labels= is for arrays; with a dataset name the split's own labels are used"
            raise ArgumentError(msg)
        ds = get_dataset(images)
        images, labels = load(ds.name, split, normalize=False, flatten=False, data_home=data_home)
    elif dataset is not None:
        ds = dataset if isinstance(dataset, Dataset) else get_dataset(dataset)
    images = np.asarray(images) if not isinstance(images, np.ndarray) else images
    n = len(images)
    if n == 0:
        msg = "no images to show: the array is empty"
        raise ArgumentError(msg)
    label_nums = None if labels is None else _class_numbers(labels, ds)
    pred_nums = None if predictions is None else _class_numbers(predictions, ds)
    for what, nums in (("labels", label_nums), ("predictions", pred_nums)):
        if nums is not None and len(nums) != n:
            msg = f"{n} images but {len(nums)} {what}: give one per image"
            raise ArgumentError(msg)
    if classes is None:
        if ds is not None:
            classes = ds.classes
        else:
            known = [a for a in (label_nums, pred_nums) if a is not None]
            top = max((int(a.max()) for a in known if len(a)), default=-1)
            classes = tuple(str(c) for c in range(top + 1))
    classes = tuple(str(c) for c in classes)
    if indices is not None and per_class is not None:
        msg = "give either indices= (the images to show) or per_class= (samples per class), not both"
        raise ArgumentError(msg)
    if indices is None and label_nums is not None:
        return _per_class(images, label_nums, pred_nums, classes, per_class or 8, scale)
    if per_class is not None:
        msg = "per_class= needs labels: pass labels, or indices= to pick the images"
        raise ArgumentError(msg)
    picks = np.arange(n) if indices is None else np.asarray(indices).reshape(-1)
    if picks.dtype.kind == "b":  # a boolean mask (pred != t) picks the images where it is True
        if len(picks) != n:
            msg = f"a boolean indices mask must have one value per image ({n}), got {len(picks)}"
            raise ArgumentError(msg)
        picks = np.flatnonzero(picks)
    if picks.dtype.kind not in "iu" and len(picks):
        msg = f"indices must be integers (or a boolean mask), got {picks.dtype}"
        raise ArgumentError(msg)
    if len(picks) == 0:
        msg = "indices selects no image: nothing to show"
        raise ArgumentError(msg)
    bad = picks[(picks < -n) | (picks >= n)]
    if len(bad):
        msg = f"index {int(bad[0])} is out of range for {n} images"
        raise ArgumentError(msg)
    return _given(images, picks, label_nums, pred_nums, classes, columns, scale, captions)


def _font(size: int):
    """Pillow's default font at ``size`` pixels; before Pillow 10.1, its only one: a fixed 11-pixel bitmap."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: load_default() takes no size
        return ImageFont.load_default()


def _font_height(font) -> int:
    """Pixels a line of ``font`` takes: its size (a bitmap font has none: the height of its tallest glyphs)."""
    size = getattr(font, "size", None)
    return int(size) if size else int(font.getmask("Ag|").size[1])


def _text(draw, xy: tuple[int, int], text: str, font, fill, anchor: str) -> None:
    """``draw.text`` at an anchor (``"lm"``: left middle, ``"ma"``: middle top), for every font.

    Pillow's bitmap font (the only one before Pillow 10.1) takes no anchor: it is placed by hand
    from its own rendered size.
    """
    from PIL import ImageFont

    if isinstance(font, ImageFont.FreeTypeFont):
        draw.text(xy, text, fill=fill, font=font, anchor=anchor)
        return
    width, height = font.getmask(text).size
    x, y = xy
    if anchor[0] == "m":
        x -= width // 2
    if anchor[1] == "m":
        y -= height // 2
    draw.text((x, y), text, fill=fill, font=font)


def _check_size(width: int, height: int, count: int, scale: int) -> None:
    if width * height > MAX_GRID_PIXELS:
        msg = (
            f"a grid of {count} images at scale {scale} would be {width}x{height} pixels "
            f"(the limit is {MAX_GRID_PIXELS:,}); show fewer images or use a smaller scale"
        )
        raise ArgumentError(msg)


def _cell_pixels(image: np.ndarray, scale: int) -> np.ndarray:
    return upscale(as_image(image), scale)


def _per_class(images, labels, predictions, classes, per_class, scale) -> Picture:
    from PIL import Image, ImageDraw

    first = as_image(images[0])
    cell_h, cell_w = first.shape[0] * scale, first.shape[1] * scale
    step_w, step_h = cell_w + MONTAGE_PAD * scale, cell_h + MONTAGE_PAD * scale
    if len(classes) * step_h > MAX_SIDE:
        msg = (
            f"{len(classes)} rows at scale={scale} would make a picture over {MAX_SIDE} pixels tall; "
            f"use a scale of at most {max(1, MAX_SIDE // (len(classes) * (first.shape[0] + MONTAGE_PAD)))}"
        )
        raise ArgumentError(msg)
    if (per_class + 1) * step_w > MAX_SIDE:  # +1: room for the labels
        msg = (
            f"per_class={per_class} at scale={scale} would make a picture over {MAX_SIDE} pixels wide; "
            f"at this scale at most {max(1, MAX_SIDE // step_w - 1)} fit in a row"
        )
        raise ArgumentError(msg)
    pad = MONTAGE_PAD * scale
    names = [str(c) if name == str(c) else f"{c} {name}" for c, name in enumerate(classes)]
    _check_size(per_class * (cell_w + pad), len(names) * (cell_h + pad), len(names) * per_class, scale)  # early
    font = _font(max(10, min(40, cell_h // 2)))
    small = _font(max(10, min(16, cell_w // 4)))
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))
    label_w = max(int(measure.textlength(name, font=font)) for name in names) + 2 * pad
    caption_h = (_font_height(small) + pad) if predictions is not None else 0
    row_h = cell_h + caption_h + pad
    width = label_w + per_class * (cell_w + pad) + pad
    height = pad + len(names) * row_h
    _check_size(width, height, len(names) * per_class, scale)
    colour = predictions is not None
    sheet = Image.new("RGB" if colour else "L", (width, height), (255, 255, 255) if colour else 255)
    draw = ImageDraw.Draw(sheet)
    black = (0, 0, 0) if colour else 0
    x0 = width - per_class * (cell_w + pad)
    frame = max(1, pad // 2)
    names_of = _namer(classes, "->{}", small, cell_w + pad, measure)
    for row, name in enumerate(names):
        y = pad + row * row_h
        _text(draw, (pad, y + cell_h // 2), name, font, black, "lm")
        for col, index in enumerate(np.flatnonzero(labels == row)[:per_class]):
            x = x0 + col * (cell_w + pad)
            sheet.paste(Image.fromarray(_cell_pixels(images[index], scale), mode="L"), (x, y))
            if predictions is not None and predictions[index] != row:
                draw.rectangle(
                    (x - frame, y - frame, x + cell_w + frame - 1, y + cell_h + frame - 1), outline=_RED, width=frame
                )
                text = "->" + names_of(int(predictions[index]))
                _text(draw, (x + cell_w // 2, y + cell_h + frame), text, small, _RED, "ma")
    return Picture(np.asarray(sheet))


def _namer(classes, pattern: str, font, room: int, measure):
    """Label -> caption text: class names if ``pattern`` (``"{}"``, ``"->{}"``, ``"{}->{}"``) filled with
    the longest name fits ``room`` pixels, else numbers.

    Decided once per picture, so captions never mix names and numbers.
    """
    widest = max((measure.textlength(c, font=font) for c in classes), default=0.0)
    fits = measure.textlength(pattern.replace("{}", ""), font=font) + pattern.count("{}") * widest <= room

    def name(label: int) -> str:
        return classes[label] if fits and 0 <= label < len(classes) else str(label)

    return name


def _given(images, picks, labels, predictions, classes, columns, scale, captions) -> Picture:
    from PIL import Image, ImageDraw

    first = as_image(images[int(picks[0])])
    cell_h, cell_w = first.shape[0] * scale, first.shape[1] * scale
    pad = MONTAGE_PAD * scale
    columns = min(len(picks), columns or 10)
    rows = -(-len(picks) // columns)
    small = _font(max(10, min(16, cell_w // 4)))
    captioned = captions and (labels is not None or predictions is not None)
    caption_h = (_font_height(small) + pad) if captioned else 0
    row_h = cell_h + caption_h + pad
    width = pad + columns * (cell_w + pad)
    height = pad + rows * row_h
    _check_size(width, height, len(picks), scale)
    colour = predictions is not None and labels is not None
    sheet = Image.new("RGB" if colour else "L", (width, height), (255, 255, 255) if colour else 255)
    draw = ImageDraw.Draw(sheet)
    black = (0, 0, 0) if colour else 0
    frame = max(1, pad // 2)
    name_of = _namer(classes, "{}->{}" if colour else "{}", small, cell_w + pad, draw)
    for i, index in enumerate(picks):
        index = int(index)
        x = pad + (i % columns) * (cell_w + pad)
        y = pad + (i // columns) * row_h
        pixels = as_image(images[index])
        if pixels.shape != first.shape:
            msg = f"image {index} has shape {pixels.shape}, the first {first.shape}: a grid needs one size"
            raise ArgumentError(msg)
        sheet.paste(Image.fromarray(upscale(pixels, scale), mode="L"), (x, y))
        wrong = colour and predictions[index] != labels[index]
        if wrong:
            draw.rectangle(
                (x - frame, y - frame, x + cell_w + frame - 1, y + cell_h + frame - 1), outline=_RED, width=frame
            )
        if not captioned:
            continue
        if labels is None:
            text = name_of(int(predictions[index]))
        elif wrong:
            text = f"{name_of(int(labels[index]))}->{name_of(int(predictions[index]))}"
        else:
            text = name_of(int(labels[index]))
        _text(draw, (x + cell_w // 2, y + cell_h + frame), text, small, _RED if wrong else black, "ma")
    return Picture(np.asarray(sheet))


def has_display() -> bool:
    """Whether a window can be opened: macOS and Windows always, elsewhere with X11 or Wayland."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _inline_scale(pixels: np.ndarray) -> int:
    """Enlargement for a notebook: a 28x28 digit becomes 224x224 (8x), big images stay as they are."""
    return max(1, 224 // max(pixels.shape))


def _show_png_path() -> Path:
    """The one PNG file ``img_show`` rewrites on each call: ``<tmp>/mnistkit-<user>/img_show.png``.

    A private folder (mode 0700, owned by this user, not a symlink), so nobody
    else can swap the file; one file, so calls never pile up temporary PNGs.
    """
    import tempfile

    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    folder = Path(tempfile.gettempdir()) / f"mnistkit-{user}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(folder)
        import stat

        if not stat.S_ISDIR(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
            msg = f"{folder} is not a folder of this user"
            raise PermissionError(msg)
        if info.st_mode & 0o077:  # ours but open to others: they could plant links at our temporary names
            os.chmod(folder, 0o700)
    except OSError:
        folder = Path(tempfile.mkdtemp(prefix="mnistkit-"))  # someone else's: a fresh private one
    return folder / "img_show.png"


def img_show(img: np.ndarray, *, label: object = None, scale: int | None = None) -> Path | None:
    """Show one image: inline in a notebook, in a window with a display, else in the terminal.

    Accepts what the tutorial's ``img_show`` accepts and more: a flat (784,)
    or (28, 28) or (1, 28, 28) image, uint8 or float.

    * In a Jupyter kernel (JupyterLab, Notebook, VS Code, Colab): the image is
      shown inline as a PNG, enlarged nearest-neighbour (a 28x28 image 8x, to
      224x224), and nothing is returned, so nothing echoes as the cell's value.
    * With a display: a window (Pillow's viewer).
    * Otherwise it never fails: it prints the picture to stdout and writes a
      PNG copy (enlarged 4x) to one file per user in the temporary folder,
      ``mnistkit-<user>/img_show.png``, replaced on each call, saying where.

    Parameters
    ----------
    img : array-like
        The image.
    label : object, optional
        Printed above the picture.
    scale : int, optional
        Enlargement in a notebook (default: 8 for 28x28, so the image is 224 pixels wide).

    Returns
    -------
    pathlib.Path or None
        The PNG written in the terminal case, else None.
    """
    from .notebook import in_kernel

    pixels = as_image(img)
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1):
        msg = f"scale={scale!r}: expected an integer >= 1"
        raise ArgumentError(msg)
    if in_kernel():
        from .notebook import display

        if label is not None:
            print(f"label: {label}")
        picture = Picture(upscale(pixels, scale or _inline_scale(pixels)))
        # The text version is for front ends that show no images (jupyter console, text exports).
        display({"image/png": picture._repr_png_(), "text/plain": "\n".join(terminal_lines(pixels, color=False))})
        return None
    if has_display():
        from PIL import Image

        try:
            Image.fromarray(pixels, mode="L").show()
            return None
        except Exception:  # no viewer installed: fall through to the terminal
            pass
    out = sys.stdout
    color = hasattr(out, "isatty") and out.isatty() and os.environ.get("TERM") != "dumb"
    if label is not None:
        print(f"label: {label}", file=out)
    print("\n".join(terminal_lines(pixels, color=color)), file=out)
    path = _show_png_path()
    try:
        Picture(upscale(pixels, 4)).save(path)
    except MnistkitError:  # the temporary folder is not writable: the picture above is enough
        print("(no display: picture shown above)", file=out)
        return None
    print(f"(no display: picture shown above, PNG saved to {path})", file=out)
    return path
