"""Write examples/quickstart.ipynb (no outputs) from the cells below: the notebook's source of truth.

    python tools/make_quickstart.py

The tests execute the notebook (tests/test_notebook.py) and tools/notebook_picture.py renders the
executed notebook into docs/quickstart.png for the README.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

CELLS = [
    (
        "markdown",
        """# mnistkit quickstart

Load MNIST, look at it, train a first classifier in a few lines of NumPy and look at its mistakes.
The first load downloads MNIST (11 MB, verified) into your cache folder; later loads take milliseconds.""",
    ),
    (
        "code",
        """import numpy as np

import mnistkit
from mnistkit import img_show, load_mnist

(x_train, t_train), (x_test, t_test) = load_mnist(normalize=True, flatten=True)
x_train.shape, t_train[:10]""",
    ),
    ("markdown", "A dataset shows as a card: splits, classes, licence, where it is, a sample of each class."),
    ("code", 'mnistkit.get_dataset("mnist")'),
    ("markdown", "`img_show` shows one image inline, enlarged 8x without blur:"),
    ("code", "img_show(x_train[0], label=t_train[0])"),
    ("markdown", "`mnistkit.grid` draws many samples at once: here the first ten of every class."),
    ("code", 'mnistkit.grid("mnist", per_class=10)'),
    ("markdown", "A first model: assign each test image to the class whose mean training image is nearest."),
    (
        "code",
        """means = np.stack([x_train[t_train == c].mean(axis=0) for c in range(10)])
# squared distances to the 10 means, without a (10000, 10, 784) array
dist = (x_test**2).sum(axis=1)[:, None] - 2 * x_test @ means.T + (means**2).sum(axis=1)
pred = dist.argmin(axis=1)
print(f"test accuracy: {(pred == t_test).mean():.4f}")""",
    ),
    ("markdown", "Its mistakes, each captioned `label->prediction` and framed in red:"),
    (
        "code",
        """mistakes = np.flatnonzero(pred != t_test)
mnistkit.grid(x_test, t_test, predictions=pred, indices=mistakes[:20], dataset="mnist")""",
    ),
    ("markdown", "Mini-batches for your own training loop: each `for` loop over `train` is one shuffled epoch."),
    (
        "code",
        """train = mnistkit.batches(x_train, t_train, batch_size=100, seed=0)
train""",
    ),
]


def build() -> nbformat.NotebookNode:
    """The quickstart notebook, without outputs."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, source in CELLS:
        make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
        nb.cells.append(make(source))
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"  # stable ids: regenerating gives the same file
    return nb


if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"
    nbformat.write(build(), out)
    print(f"wrote {out}")
