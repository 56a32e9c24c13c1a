"""Kernel detection, progress-bar choice and one-line reprs, without a kernel (see test_notebook.py for one)."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest

import mnistkit
from mnistkit import notebook
from mnistkit.registry import DATASETS
from mnistkit.store import Store


class _Shell:
    def __init__(self, config=None, kernel=None):
        self.config = config or {}
        self.kernel = kernel


class ZMQInteractiveShell(_Shell):
    pass


class QtShell(_Shell):
    pass


def _fake_ipython(monkeypatch, shell):
    module = types.ModuleType("IPython")
    module.get_ipython = lambda: shell
    monkeypatch.setitem(sys.modules, "IPython", module)


def test_no_kernel_without_ipython_imported(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert not notebook.in_kernel() and not notebook.widgets_available()


def test_terminal_ipython_is_not_a_kernel(monkeypatch):
    _fake_ipython(monkeypatch, _Shell(config={"TerminalInteractiveShell": {}}))
    assert not notebook.in_kernel()
    _fake_ipython(monkeypatch, None)  # IPython imported, no shell running (a script that imports it)
    assert not notebook.in_kernel()


def test_a_kernel_is_found_by_its_app_or_kernel_attribute(monkeypatch):
    _fake_ipython(monkeypatch, ZMQInteractiveShell(config={"IPKernelApp": {}}))
    assert notebook.in_kernel()
    _fake_ipython(monkeypatch, ZMQInteractiveShell(kernel=object()))
    assert notebook.in_kernel()


def test_widgets_need_ipywidgets_and_a_widget_front_end(monkeypatch):
    _fake_ipython(monkeypatch, ZMQInteractiveShell(kernel=object()))
    monkeypatch.setitem(sys.modules, "ipywidgets", types.ModuleType("ipywidgets"))
    monkeypatch.delenv("QT_API", raising=False)
    assert notebook.widgets_available()
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # not installed
    assert not notebook.widgets_available()
    monkeypatch.setitem(sys.modules, "ipywidgets", types.ModuleType("ipywidgets"))
    _fake_ipython(monkeypatch, QtShell(kernel=object()))  # qtconsole: a kernel, no widgets
    assert notebook.in_kernel() and not notebook.widgets_available()


def test_progress_defaults_off_outside_a_terminal_or_kernel(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert notebook.progress_bar(total=10, desc="x", unit="B", progress=None) is None  # pytest: not a tty
    bar = notebook.progress_bar(total=10, desc="x", unit="B", progress=True)
    assert type(bar).__module__ == "tqdm.std"
    bar.close()


def test_import_mnistkit_never_imports_ipython():
    code = "import sys, mnistkit; print([m for m in ('IPython', 'ipykernel', 'ipywidgets') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_dataset_repr_is_one_short_line(name):
    ds = mnistkit.get_dataset(name)
    text = repr(ds)
    assert "\n" not in text and len(text) < 160 and name in text and "FileSpec" not in text
    for split in ds.splits:
        assert f"{split.name} {ds.split_size(split.name):,}" in text
    for spec in ds.files:
        assert "\n" not in repr(spec) and len(repr(spec)) < 120


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_dataset_card_before_download(name, home):
    html = mnistkit.get_dataset(name)._repr_html_()
    ds = mnistkit.get_dataset(name)
    assert "not here yet" in html and "<img" not in html
    assert f"{ds.num_classes}: " in html and (ds.license.split()[0] in html)
    assert "<script" not in html


def test_other_public_objects_have_one_line_reprs(home):
    b = mnistkit.batches(np.zeros((250, 4)), np.zeros(250), 100, shuffle=False, drop_last=True)
    assert repr(b) == "<Batches of 100 from 250 samples: 2 per epoch, in order, drop_last, next epoch 0>"
    list(b)
    assert repr(b).endswith("next epoch 1>")
    assert repr(mnistkit.batches(np.zeros(3), np.zeros(3), 2)).startswith(
        "<Batches of 2 from 3 samples: 2 per epoch, shuffled, random seed"
    )
    assert repr(Store(mnistkit.get_dataset("mnist"))) == f"<Store mnist in {home / 'mnist'}, never downloads>"
    picture = mnistkit.grid(np.zeros((3, 28, 28), np.uint8))
    assert repr(picture).startswith(f"<mnistkit Picture {picture.width}x{picture.height} grey")


def test_card_states_follow_the_folder(synth, home):
    ds = synth.dataset
    card = ds._repr_html_
    assert "not here yet" in card()
    synth.write(home)
    (home / "tiny" / "t10k-labels-idx1-ubyte.gz").unlink()
    assert "some files in" in card() and "<img" not in card()
    synth.write(home)
    assert "downloaded in" in card() and "no cache built yet" in card()
    mnistkit.load("tiny", "train")
    mnistkit.load("tiny", "test")
    html = card()
    assert "cached in" in html and "cache built" not in html and html.count("<img") == 1
    npy = home / "tiny" / ".cache" / "train-images-idx3-ubyte.npy"
    npy.write_bytes(npy.read_bytes()[:100])  # a damaged cache entry: no samples, no error
    html = card()
    assert "cache built for test" in html and "<img" not in html
