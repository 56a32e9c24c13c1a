"""mnistkit in a real Jupyter kernel: notebooks executed with nbclient + ipykernel.

Each test runs a notebook in a fresh kernel and checks what a notebook user would see:
the outputs' MIME types, image sizes and pixels (against references computed here).
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("nbclient", reason="nbclient is in the test extra: pip install '.[test]'")
pytest.importorskip("ipykernel", reason="ipykernel is in the test extra: pip install '.[test]'")

from helpers import Server

from mnistkit.render import MONTAGE_PAD
from notebooks import code_notebook, execute, png_pixels, rendered_text, rich, setup_cell, stream

ROOT = Path(__file__).resolve().parents[1]
RED = (220, 0, 0)


def _no_errors(nb) -> None:
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", "\n".join(out.get("traceback", []))


def test_img_show_is_an_inline_png_upscaled_without_blur_and_echoes_nothing(synth, home, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # where a terminal img_show would write its PNG
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("DISPLAY", ":0")  # a desktop notebook: still inline, never a window
    synth.write(home)
    nb = code_notebook(
        setup_cell(),
        "import mnistkit\nx, t = mnistkit.load('tiny', 'test', normalize=True, flatten=True)\n"
        "import sys; print('IPython' in sys.modules)",
        "mnistkit.img_show(x[3])",
        "mnistkit.img_show(x[4].reshape(28, 28), label=int(t[4]), scale=3)",
        "mnistkit.img_show(x[5]); mnistkit.img_show(x[6])",
    )
    nb, _ = execute(nb, tmp_path)
    _no_errors(nb)
    images = synth.arrays["t10k-images-idx3-ubyte.gz"]
    labels = synth.arrays["t10k-labels-idx1-ubyte.gz"]
    first, second, both = nb.cells[2], nb.cells[3], nb.cells[4]
    # one display_data, no execute_result: nothing echoes as the cell's value
    assert [o["output_type"] for o in first.outputs] == ["display_data"]
    assert set(first.outputs[0]["data"]) == {"image/png", "text/plain"}
    assert len(first.outputs[0]["data"]["text/plain"].splitlines()) == 28  # the character picture, for text front ends
    pixels = png_pixels(first.outputs[0])
    assert pixels.shape == (224, 224)  # 28 x 8
    np.testing.assert_array_equal(pixels, np.kron(images[3], np.ones((8, 8), np.uint8)))  # normalised, then back
    assert stream(second, "stdout") == f"label: {labels[4]}\n"
    np.testing.assert_array_equal(png_pixels(rich(second)[0]), np.kron(images[4], np.ones((3, 3), np.uint8)))
    assert [o["output_type"] for o in both.outputs] == ["display_data", "display_data"]
    assert list((tmp_path / "tmp").iterdir()) == []  # no temporary PNG in a notebook


def _grid_reference(images, labels, k, scale, sheet):
    """Check the per-class layout: cell (row c, col j) holds the j-th image of class c, enlarged."""
    step, pad = 28 * scale + MONTAGE_PAD * scale, MONTAGE_PAD * scale
    h, w = sheet.shape[:2]
    assert (h - pad) % step == 0 and (h - pad) // step == 10
    for c in range(10):
        picks = np.flatnonzero(labels == c)[:k]
        for col in range(k):
            y, x = h - (10 - c) * step, w - (k - col) * step
            cell = sheet[y : y + 28 * scale, x : x + 28 * scale]
            if col < len(picks):
                np.testing.assert_array_equal(cell, np.kron(images[picks[col]], np.ones((scale, scale), np.uint8)))
            else:
                assert (cell == 255).all()


def test_grid_renders_inline_and_marks_mistakes_in_red(synth, home, tmp_path):
    synth.write(home)
    nb = code_notebook(
        setup_cell(),
        "import numpy as np, mnistkit\nmnistkit.grid('tiny', split='test', per_class=3, scale=2)",
        "x, t = mnistkit.load('tiny', 'test', normalize=False, flatten=True)\n"
        "pred = t.copy(); pred[[0, 5]] = (t[[0, 5]] + 1) % 10\n"
        "g = mnistkit.grid(x, t, predictions=pred, indices=[0, 1, 5, 7], dataset='tiny', columns=2, scale=3)\n"
        "g.save('mistakes.png'); print(repr(g)); g",
        "mnistkit.grid(x, t, predictions=pred, per_class=2, dataset='tiny')",
    )
    nb, _ = execute(nb, tmp_path)
    _no_errors(nb)
    images = synth.arrays["t10k-images-idx3-ubyte.gz"]
    labels = synth.arrays["t10k-labels-idx1-ubyte.gz"]
    per_class, mistakes, per_class_pred = nb.cells[1], nb.cells[2], nb.cells[3]
    out = rich(per_class)
    assert [o["output_type"] for o in out] == ["execute_result"]
    assert set(out[0]["data"]) == {"image/png", "text/plain"}
    assert "\n" not in out[0]["data"]["text/plain"]
    sheet = png_pixels(out[0])
    assert sheet.ndim == 2  # grey without predictions
    _grid_reference(images, labels, 3, 2, sheet)

    (result,) = rich(mistakes)
    rgb = png_pixels(result)
    assert rgb.ndim == 3 and rgb.shape[2] == 3
    from PIL import Image

    with Image.open(tmp_path / "mistakes.png") as saved:  # save() wrote the same picture
        np.testing.assert_array_equal(np.asarray(saved), rgb)
    assert f"{rgb.shape[1]}x{rgb.shape[0]}" in stream(mistakes, "stdout")
    scale, pad = 3, MONTAGE_PAD * 3
    cell_h = rgb.shape[0] // 2 - pad  # two rows: image + caption per row
    for i, index in enumerate([0, 1, 5, 7]):
        x = pad + (i % 2) * (84 + pad)
        y = pad + (i // 2) * (rgb.shape[0] - pad) // 2
        want = np.kron(images[index], np.ones((scale, scale), np.uint8))
        np.testing.assert_array_equal(rgb[y : y + 84, x : x + 84], np.stack([want] * 3, axis=-1))
        border = rgb[y - 1, x : x + 84]  # the frame line just above the image
        if index in (0, 5):
            assert (border == RED).all()
            caption = rgb[y + 84 : y + cell_h, x : x + 84]
            assert (np.abs(caption.astype(int) - RED).sum(axis=-1) < 60).any()  # red caption text
        else:
            assert (border == 255).all()
    sheet = png_pixels(rich(per_class_pred)[0])
    assert sheet.ndim == 3 and (sheet == RED).all(axis=-1).sum() > 0


def test_dataset_card_html_with_samples_once_cached_and_a_one_line_repr(synth, home, tmp_path):
    synth.write(home)
    nb = code_notebook(
        setup_cell(),
        "import mnistkit\nds = mnistkit.get_dataset('tiny')\nds",
        "mnistkit.load('tiny'); ds",
        "b = mnistkit.batches(*mnistkit.load('tiny', 'test'), batch_size=8, seed=3); b",
    )
    nb, _ = execute(nb, tmp_path)
    _no_errors(nb)
    before, after, batches = (rich(nb.cells[i])[0]["data"] for i in (1, 2, 3))
    assert set(before) == {"text/html", "text/plain"}
    plain = before["text/plain"]
    assert "\n" not in plain and len(plain) < 120 and "train 60, test 20" in plain
    assert "downloaded in" in before["text/html"] and "<img" not in before["text/html"]
    html = after["text/html"]
    for fact in ("tiny", "train 60, test 20", "10: 0, 1, 2", "cache built for train", str(home / "tiny")):
        assert fact in html
    (b64,) = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
        row = np.asarray(im)
    pad, step = MONTAGE_PAD * 2, 56 + MONTAGE_PAD * 2
    assert row.shape == (pad + step, pad + 10 * step)  # one row: the first train image of each class
    images = synth.arrays["train-images-idx3-ubyte.gz"]
    labels = synth.arrays["train-labels-idx1-ubyte.gz"]
    for c in range(10):
        want = np.kron(images[np.flatnonzero(labels == c)[0]], np.ones((2, 2), np.uint8))
        np.testing.assert_array_equal(row[pad : pad + 56, pad + c * step : pad + c * step + 56], want)
    assert batches["text/plain"] == "<Batches of 8 from 20 samples: 3 per epoch, shuffled, seed 3, next epoch 0>"


def test_download_progress_is_a_widget_or_one_updating_line(synth, home, tmp_path):
    pytest.importorskip("ipywidgets", reason="ipywidgets is in the test extra")
    with Server() as srv:
        srv.serve_dataset(synth)
        nb = code_notebook(
            setup_cell(),
            f"import mnistkit\nx, t = mnistkit.load('tiny', 'test', mirrors={srv.url!r})",
            "import sys; sys.modules['ipywidgets'] = None  # a kernel without widgets\n"
            f"x, t = mnistkit.load('tiny', 'train', mirrors={srv.url!r})",
            "from mnistkit.notebook import progress_bar\n"
            "bar = progress_bar(total=500, desc='many', unit='img', progress=None, mininterval=0, miniters=1)\n"
            "for _ in range(500): bar.update(1)\n"
            "bar.close()",
        )
        nb, _ = execute(nb, tmp_path)
    _no_errors(nb)
    widgets, text, many = nb.cells[1], nb.cells[2], nb.cells[3]
    views = [o for o in rich(widgets) if "application/vnd.jupyter.widget-view+json" in o["data"]]
    assert len(views) == 2  # one widget bar per downloaded file (images, labels)
    assert "it/s" not in stream(widgets, "stderr")  # no text bar besides
    assert not [o for o in rich(text) if "application/vnd.jupyter.widget-view+json" in o["data"]]
    assert "IProgress" not in stream(text, "stderr")  # tqdm.auto's warning: we chose text ourselves
    lines = rendered_text(stream(text, "stderr"))
    # Two files are fetched at once, so their bars may interleave on the stream: a line per file, plus
    # at most one stale start line per file, and each file's last line finished.
    names = {line.split(":")[0] for line in lines}
    assert len(names) == 2 and len(lines) <= 4, lines
    assert all("100%" in [ln for ln in lines if ln.startswith(name)][-1] for name in names), lines
    raw = stream(many, "stderr")
    assert raw.count("\r") >= 100  # it did update hundreds of times...
    assert len(rendered_text(raw)) == 1  # ...on one line


def _quickstart(tmp_path, setup: str | None):
    import nbformat

    nb = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    if setup:
        nb.cells.insert(0, nbformat.v4.new_code_cell(setup))
    nb, _seconds = execute(nb, tmp_path)
    _no_errors(nb)
    return nb


def _check_quickstart(nb, offset: int) -> None:
    code = [c for c in nb.cells[offset:] if c.cell_type == "code"]
    kinds = [sorted({m for o in rich(c) for m in o["data"]}) for c in code]
    assert kinds == [
        ["text/plain"],  # shapes and labels
        ["text/html", "text/plain"],  # the dataset card
        ["image/png", "text/plain"],  # img_show (display_data)
        ["image/png", "text/plain"],  # grid per class
        [],  # accuracy: printed
        ["image/png", "text/plain"],  # the mistakes
        ["text/plain"],  # Batches
    ]
    assert [o["output_type"] for o in code[2].outputs if o["output_type"] != "stream"] == ["display_data"]
    assert png_pixels(rich(code[2])[0]).shape == (224, 224)
    assert png_pixels(rich(code[3])[0]).shape[0] == 4 + 10 * 60  # ten classes, scale 2
    assert re.fullmatch(r"test accuracy: 0\.\d{4}\n", stream(code[4], "stdout"))
    assert "<img" in rich(code[1])[0]["data"]["text/html"]  # cached by the first cell: samples shown


def test_quickstart_notebook_runs_on_synthetic_mnist(synth, home, tmp_path):
    """examples/quickstart.ipynb, every cell as shipped, on a synthetic stand-in registered as "mnist"."""
    from helpers import make_synthetic

    make_synthetic("mnist").write(home)
    nb = _quickstart(tmp_path, setup_cell("mnist"))
    _check_quickstart(nb, 1)


REAL = ROOT.parent / "shared" / "data" / "mnist"


@pytest.mark.skipif(not (REAL / "train-images-idx3-ubyte.gz").is_file(), reason=f"real MNIST not found at {REAL}")
def test_quickstart_notebook_on_real_mnist(home, tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTKIT_MIRROR", str(REAL.parent))  # a folder source: copied and verified like a download
    monkeypatch.setenv("MNISTKIT_OFFLINE", "1")
    nb = _quickstart(tmp_path, None)
    _check_quickstart(nb, 0)
    accuracy = float(stream([c for c in nb.cells if c.cell_type == "code"][4], "stdout").split()[-1])
    assert 0.81 < accuracy < 0.83  # nearest class mean on MNIST: 0.8203
