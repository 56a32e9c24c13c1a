"""Pictures of images: in the terminal (no display needed) and as PNG files.

The terminal renderer draws two pixel rows per text line with the Unicode
upper half block, the upper pixel as foreground and the lower as background
colour, in grey levels; it works over SSH and in CI logs.  Where colour
escapes cannot be used (output is not a terminal) it falls back to a plain
character ramp.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from .errors import ArgumentError

__all__ = ["as_image", "terminal_lines", "save_png", "montage", "img_show", "has_display"]

#: Pixels between montage cells and around the montage, before scaling.
MONTAGE_PAD = 2

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
        side = int(round(arr.size**0.5))
        if side * side != arr.size or side == 0:
            msg = f"a flat image of {arr.size} pixels is not square; pass it as (height, width)"
            raise ArgumentError(msg)
        arr = arr.reshape(side, side)
    if arr.ndim != 2:
        msg = f"expected one image of shape (784,), (28, 28) or (1, 28, 28), got shape {np.shape(img)}"
        raise ArgumentError(msg)
    if arr.dtype.kind == "f":
        top = float(np.nanmax(arr)) if arr.size else 0.0
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
    for top, bottom in zip(pixels[0::2], pixels[1::2]):
        cells = [f"\x1b[38;2;{a};{a};{a}m\x1b[48;2;{b};{b};{b}m{_HALF}" for a, b in zip(top, bottom)]
        lines.append("".join(cells) + "\x1b[0m")
    return lines


def save_png(img: np.ndarray, path: str | os.PathLike, *, scale: int = 1) -> Path:
    """Save one image as a greyscale PNG, optionally enlarged ``scale`` times."""
    from PIL import Image

    pixels = as_image(img)
    if scale > 1:
        pixels = np.kron(pixels, np.ones((scale, scale), np.uint8))
    path = Path(path)
    Image.fromarray(pixels, mode="L").save(path)
    return path


def montage(
    images: np.ndarray,
    labels: np.ndarray,
    classes: tuple[str, ...] | list[str],
    *,
    per_class: int = 8,
    scale: int = 2,
):
    """A picture of ``per_class`` samples of every class, one labelled row per class.

    Row ``c`` holds the first ``per_class`` images whose label is ``c``, in
    order; a class with fewer samples leaves its row's end blank.  The label
    column is on the left; the cells are aligned on the right edge, so cell
    ``(row, col)`` starts at ``x = width - (per_class - col) * (W*scale + pad)``
    and ``y = height - (rows - row) * (H*scale + pad)`` with
    ``pad = MONTAGE_PAD * scale``.

    Parameters
    ----------
    images : numpy.ndarray
        Images of shape (N, H, W) (or anything :func:`as_image` takes per image).
    labels : numpy.ndarray
        Class numbers of shape (N,).
    classes : sequence of str
        Class names; row ``c`` is labelled ``"c name"`` (just ``c`` when the name is ``str(c)``).
    per_class : int
        Samples per class.
    scale : int
        Enlargement factor of each image.

    Returns
    -------
    PIL.Image.Image
        A greyscale image: white background, black labels, the images as they are.
    """
    from PIL import Image, ImageDraw, ImageFont

    if per_class < 1 or scale < 1:
        msg = f"per_class={per_class} and scale={scale} must both be at least 1"
        raise ArgumentError(msg)
    labels = np.asarray(labels)
    first = as_image(images[0])
    cell_h, cell_w = first.shape[0] * scale, first.shape[1] * scale
    pad = MONTAGE_PAD * scale
    names = [str(c) if name == str(c) else f"{c} {name}" for c, name in enumerate(classes)]
    try:
        font = ImageFont.load_default(size=max(10, cell_h // 2))
        anchored = True
    except TypeError:  # Pillow < 10.1: only the fixed 11-pixel bitmap font, which takes no anchor
        font = ImageFont.load_default()
        anchored = False
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))
    label_w = max(int(measure.textlength(name, font=font)) for name in names) + 2 * pad
    width = label_w + per_class * (cell_w + pad) + pad
    height = pad + len(names) * (cell_h + pad)
    sheet = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(sheet)
    x0 = width - per_class * (cell_w + pad)
    for row, name in enumerate(names):
        y = pad + row * (cell_h + pad)
        if anchored:
            draw.text((pad, y + cell_h // 2), name, fill=0, font=font, anchor="lm")
        else:  # centre the bitmap text's own height on the row by hand
            draw.text((pad, y + (cell_h - font.getmask(name).size[1]) // 2), name, fill=0, font=font)
        for col, index in enumerate(np.flatnonzero(labels == row)[:per_class]):
            pixels = np.kron(as_image(images[index]), np.ones((scale, scale), np.uint8))
            sheet.paste(Image.fromarray(pixels, mode="L"), (x0 + col * (cell_w + pad), y))
    return sheet


def has_display() -> bool:
    """Whether a window can be opened: macOS and Windows always, elsewhere with X11 or Wayland."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def img_show(img: np.ndarray, *, label: object = None) -> Path | None:
    """Show one image: in a window where there is a display, else in the terminal.

    Accepts what the tutorial's ``img_show`` accepts and more: a flat (784,)
    or (28, 28) or (1, 28, 28) image, uint8 or float.  Without a display it
    never fails: it prints the picture to stdout and saves a PNG copy in the
    temporary folder, saying where.

    Parameters
    ----------
    img : array-like
        The image.
    label : object, optional
        Printed above the picture in the terminal.

    Returns
    -------
    pathlib.Path or None
        The PNG written when there was no display, else None.
    """
    pixels = as_image(img)
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
    import tempfile

    fd, name = tempfile.mkstemp(prefix="mnistkit-", suffix=".png")
    os.close(fd)
    path = save_png(pixels, name, scale=4)
    print(f"(no display: picture shown above, PNG saved to {path})", file=out)
    return path
