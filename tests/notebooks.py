"""Running notebooks in a real Jupyter kernel (nbclient + ipykernel) and reading their outputs."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

KERNEL = "mnistkit-test-python"
TESTS = Path(__file__).resolve().parent


def kernel_spec(folder: Path) -> str:
    """A kernelspec running *this* interpreter, found first through ``JUPYTER_PATH``.

    Whatever ``python3`` kernels the machine has, the notebook then runs with
    the mnistkit under test.  Returns the kernel name.
    """
    spec = folder / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}))
    return KERNEL


@contextlib.contextmanager
def _jupyter_env(folder: Path):
    """JUPYTER_PATH (our kernelspec first) and a private runtime folder, for one execution only."""
    saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "JUPYTER_RUNTIME_DIR")}
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(folder), saved["JUPYTER_PATH"]]))
    os.environ["JUPYTER_RUNTIME_DIR"] = str(folder / "runtime")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def setup_cell(dataset_name: str = "tiny") -> str:
    """Code that registers the tests' synthetic dataset (tests/helpers.py) under ``dataset_name`` in the kernel."""
    return (
        f"import sys; sys.path.insert(0, {str(TESTS)!r})\n"
        "from helpers import make_synthetic\n"
        "from mnistkit import registry as _registry\n"
        f"_registry.DATASETS[{dataset_name!r}] = make_synthetic({dataset_name!r}).dataset"
    )


def execute(nb, folder: Path, timeout: int = 300):
    """Execute ``nb`` in a fresh kernel with ``folder`` as working directory; returns (nb, seconds)."""
    from nbclient import NotebookClient

    name = kernel_spec(folder / "jupyter")
    with _jupyter_env(folder / "jupyter"):
        started = time.perf_counter()
        NotebookClient(nb, kernel_name=name, timeout=timeout, resources={"metadata": {"path": str(folder)}}).execute()
        return nb, time.perf_counter() - started


def code_notebook(*sources: str):
    """A notebook of code cells."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    return nb


def png_pixels(output) -> np.ndarray:
    """The pixels of an output's image/png."""
    from PIL import Image

    data = base64.b64decode(output["data"]["image/png"])
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


def rendered_text(text: str) -> list[str]:
    """Stream text as a notebook shows it: a carriage return rewrites the line; blank lines dropped."""
    lines = [re.sub(r"^.*\r(?=[^\r]*$)", "", line.rstrip("\r")) for line in text.split("\n")]
    return [line for line in lines if line.strip()]


def stream(cell, name: str) -> str:
    """Everything a cell wrote to ``name`` (stdout or stderr)."""
    return "".join(o["text"] for o in cell.outputs if o["output_type"] == "stream" and o["name"] == name)


def rich(cell) -> list:
    """The cell's display_data and execute_result outputs, in order."""
    return [o for o in cell.outputs if o["output_type"] in ("display_data", "execute_result")]
