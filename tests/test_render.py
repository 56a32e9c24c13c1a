"""img_show and the terminal renderer work without a display."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mnistkit import ArgumentError, img_show
from mnistkit.render import as_image, terminal_lines

IMG = (np.arange(784) % 256).astype(np.uint8).reshape(28, 28)


@pytest.mark.parametrize(
    "form", [IMG.reshape(784), IMG, IMG.reshape(1, 28, 28), IMG.reshape(28, 28, 1), IMG / 255.0, IMG.astype(np.float32)]
)
def test_as_image_accepts_every_tutorial_form(form):
    out = as_image(form)
    assert out.shape == (28, 28) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, IMG)


def test_as_image_refuses_what_is_not_one_image():
    with pytest.raises(ArgumentError):
        as_image(np.zeros(783))
    with pytest.raises(ArgumentError):
        as_image(np.zeros((2, 28, 28)))


def test_img_show_without_display_prints_and_saves_png(capsys):
    path = img_show(IMG.reshape(784), label=5)
    out = capsys.readouterr().out
    assert "label: 5" in out and str(path) in out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) >= 28  # the character picture: one line per pixel row when not a terminal
    with Image.open(path) as im:
        small = np.asarray(im)[::4, ::4]  # saved enlarged 4x
    np.testing.assert_array_equal(small, IMG)
    path.unlink()


def test_terminal_half_blocks_encode_grey_levels():
    img = np.zeros((28, 28), np.uint8)
    img[0, 0] = 200  # top pixel of the first cell
    img[1, 0] = 50  # bottom pixel of the first cell
    lines = terminal_lines(img, color=True)
    assert len(lines) == 14
    assert lines[0].startswith("\x1b[38;2;200;200;200m\x1b[48;2;50;50;50m\u2580")
    plain = terminal_lines(img, color=False)
    assert len(plain) == 28 and plain[0][:2] != "  " and plain[1][:2] != "  " and plain[2][:2] == "  "


def test_montage_labels_every_row_on_every_supported_pillow():
    """Each row's label is drawn left of the cells (Pillow < 10.1 has only a fixed bitmap font: still drawn)."""
    from mnistkit.render import MONTAGE_PAD, montage

    images = np.zeros((20, 28, 28), np.uint8)
    labels = np.arange(20) % 10
    sheet = np.asarray(montage(images, labels, [str(c) for c in range(10)], per_class=2, scale=2))
    step, pad = 28 * 2 + MONTAGE_PAD * 2, MONTAGE_PAD * 2
    x0 = sheet.shape[1] - 2 * step
    assert x0 > pad
    for row in range(10):
        band = sheet[pad + row * step : pad + row * step + 56, :x0]
        assert (band < 128).any(), f"row {row} has no label"
