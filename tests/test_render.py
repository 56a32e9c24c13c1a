"""img_show and the terminal renderer work without a display."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
from PIL import Image

import mnistkit
from mnistkit import ArgumentError, Picture, grid, img_show
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


def test_img_show_without_display_prints_and_saves_png(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    path = img_show(IMG.reshape(784), label=5)
    out = capsys.readouterr().out
    assert "label: 5" in out and str(path) in out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) >= 28  # the character picture: one line per pixel row when not a terminal
    with Image.open(path) as im:
        pixels = np.asarray(im)
    np.testing.assert_array_equal(pixels, np.kron(IMG, np.ones((4, 4), np.uint8)))  # enlarged 4x, no blur


def test_img_show_reuses_one_png_instead_of_a_new_file_per_call(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    paths = {img_show(np.full((28, 28), v, np.uint8)) for v in (0, 100, 200)}
    assert len(paths) == 1
    (path,) = paths
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["img_show.png"]
    assert (path.parent.stat().st_mode & 0o077) == 0  # a private folder
    with Image.open(path) as im:
        assert (np.asarray(im) == 200).all()  # the last call's picture


def test_img_show_does_not_follow_a_foreign_symlink(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    victim = tmp_path / "victim"
    victim.mkdir()
    import os

    user = os.getuid()
    (tmp_path / f"mnistkit-{user}").symlink_to(victim)  # planted by someone else
    path = img_show(IMG)
    assert victim not in path.parents and list(victim.iterdir()) == []


def test_picture_save_is_atomic_and_refuses_bad_names(tmp_path):
    picture = Picture(IMG)
    assert picture.save(tmp_path / "a.png") == tmp_path / "a.png"
    with Image.open(tmp_path / "a.png") as im:
        np.testing.assert_array_equal(np.asarray(im), IMG)
    for bad, words in (
        (tmp_path / "a.pgn", "cannot tell an image format"),
        (tmp_path / "first", "cannot tell an image format"),
        (tmp_path, "is a folder"),
        (tmp_path / "nodir" / "y.png", "does not exist"),
    ):
        with pytest.raises(ArgumentError, match=words):
            picture.save(bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # no temporary file left
    picture.save(tmp_path / "b.jpg")  # other formats by name
    with Image.open(tmp_path / "b.jpg") as im:
        assert im.format == "JPEG"
    assert picture._repr_png_().startswith(b"\x89PNG")
    np.testing.assert_array_equal(np.asarray(picture), IMG)


def test_grid_accepts_every_image_form_and_label_numbering():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    labels = np.arange(30) % 10
    ref = np.asarray(grid(images, labels, per_class=2))
    for form in (images.reshape(30, 784), images.reshape(30, 1, 28, 28), images / np.float32(255)):
        np.testing.assert_array_equal(np.asarray(grid(form, labels, per_class=2)), ref)
    one_hot = np.eye(10)[labels]
    np.testing.assert_array_equal(np.asarray(grid(images, one_hot, per_class=2)), ref)
    # EMNIST letters: labels 1..26 as published, row 0 is class "Aa" (label 1)
    letters = grid(images[:26], np.arange(1, 27), per_class=1, dataset="emnist-letters")
    cell = np.asarray(letters)[-(26 * 60) : -(26 * 60) + 56, -60 : -60 + 56]
    np.testing.assert_array_equal(cell, np.kron(images[0], np.ones((2, 2), np.uint8)))


def test_grid_given_indices_mask_and_captions():
    images = np.stack([np.full((28, 28), 10 * i, np.uint8) for i in range(12)])
    labels = np.arange(12) % 10
    pred = labels.copy()
    pred[3] = 7
    by_mask = np.asarray(grid(images, labels, predictions=pred, indices=pred != labels))
    by_index = np.asarray(grid(images, labels, predictions=pred, indices=[3]))
    np.testing.assert_array_equal(by_mask, by_index)
    assert by_index.shape[1] == 4 + 60  # one cell
    np.testing.assert_array_equal(by_index[4:60, 4:60], np.full((56, 56, 3), 30, np.uint8))
    bare = np.asarray(grid(images, indices=[-1, 0], columns=1, scale=1))  # no labels: no captions
    assert bare.shape == (2 + 2 * 30, 2 + 30)
    np.testing.assert_array_equal(bare[2:30, 2:30], images[11])


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"per_class": 0}, "per_class=0"),
        ({"scale": 0}, "scale=0"),
        ({"scale": -3}, "scale=-3"),
        ({"scale": 2.5}, "scale=2.5"),
        ({"columns": 0}, "columns=0"),
        ({"indices": []}, "selects no image"),
        ({"indices": [40]}, "index 40 is out of range for 30 images"),
        ({"indices": [0.5]}, "must be integers"),
        ({"indices": [0], "per_class": 2}, "not both"),
        ({"per_class": 7000, "scale": 8}, "would (be|make)"),
        ({"predictions": np.zeros(29)}, "30 images but 29 predictions"),
    ],
)
def test_grid_bad_arguments_are_one_line(kwargs, words):
    images = np.zeros((30, 28, 28), np.uint8)
    with pytest.raises(ArgumentError, match=words) as err:
        grid(images, np.arange(30) % 10, **kwargs)
    assert "\n" not in str(err.value)


def test_grid_without_labels_refuses_per_class():
    with pytest.raises(ArgumentError, match="per_class= needs labels"):
        grid(np.zeros((3, 28, 28), np.uint8), per_class=2)
    with pytest.raises(ArgumentError, match="empty"):
        grid(np.zeros((0, 28, 28), np.uint8))


def test_terminal_half_blocks_encode_grey_levels():
    img = np.zeros((28, 28), np.uint8)
    img[0, 0] = 200  # top pixel of the first cell
    img[1, 0] = 50  # bottom pixel of the first cell
    lines = terminal_lines(img, color=True)
    assert len(lines) == 14
    assert lines[0].startswith("\x1b[38;2;200;200;200m\x1b[48;2;50;50;50m\u2580")
    plain = terminal_lines(img, color=False)
    assert len(plain) == 28 and plain[0][:2] != "  " and plain[1][:2] != "  " and plain[2][:2] == "  "


def test_per_class_mistakes_are_framed_exactly_where_prediction_differs():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    labels = np.arange(40) % 10
    pred = labels.copy()
    wrong = {3, 17, 28}
    pred[list(wrong)] = (labels[list(wrong)] + 1) % 10
    sheet = np.asarray(grid(images, labels, predictions=pred, per_class=4, scale=2))
    assert sheet.ndim == 3
    h, w, _ = sheet.shape
    row_h = (h - 4) // 10
    for c in range(10):
        for col, index in enumerate(np.flatnonzero(labels == c)[:4]):
            y, x = 4 + c * row_h, w - (4 - col) * 60
            cell = sheet[y : y + 56, x : x + 56]
            np.testing.assert_array_equal(cell[..., 0], np.kron(images[index], np.ones((2, 2), np.uint8)))
            above = sheet[y - 1, x : x + 56]
            assert (above == (220, 0, 0)).all() == (index in wrong), index


def test_captions_use_names_only_when_every_name_fits():
    from PIL import Image, ImageDraw

    from mnistkit.render import _font, _namer

    fashion = mnistkit.get_dataset("fashion-mnist").classes
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))
    small = _namer(fashion, "{}->{}", _font(14), 60, measure)
    assert [small(0), small(9)] == ["0", "9"]  # "Ankle boot->Ankle boot" is wider than a 56-pixel cell
    big = _namer(fashion, "{}->{}", _font(14), 8 * 28 + 16, measure)
    assert [big(0), big(9), big(12)] == ["T-shirt/top", "Ankle boot", "12"]


def test_grid_labels_every_row_and_captions_on_every_supported_pillow():
    """Row labels and captions are drawn (Pillow < 10.1 has only a fixed bitmap font, which takes no anchor)."""
    from mnistkit.render import MONTAGE_PAD

    images = np.zeros((20, 28, 28), np.uint8)
    labels = np.arange(20) % 10
    sheet = np.asarray(grid(images, labels, per_class=2, scale=2))
    step, pad = 28 * 2 + MONTAGE_PAD * 2, MONTAGE_PAD * 2
    x0 = sheet.shape[1] - 2 * step
    assert x0 > pad
    for row in range(10):
        band = sheet[pad + row * step : pad + row * step + 56, :x0]
        assert (band < 128).any(), f"row {row} has no label"
    white = np.full((3, 28, 28), 255, np.uint8)
    shown = np.asarray(grid(white, np.array([1, 2, 3]), predictions=np.array([1, 5, 3]), indices=[0, 1, 2], scale=2))
    cells = pad + 56  # the first row: images from pad to pad + 56, captions below
    captions = shown[cells : cells + 30]
    assert (captions[..., 1] < 128).any(), "no caption drawn"
    assert ((captions[..., 0] > 150) & (captions[..., 1] < 80)).any(), "the mistake's caption is not red"
