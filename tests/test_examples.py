"""The example scripts run end to end for one epoch on the synthetic "tiny" dataset (plumbing, not accuracy)."""

from __future__ import annotations

import importlib.util
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
HAS_MPL = importlib.util.find_spec("matplotlib") is not None


def run_example(script, monkeypatch, tmp_path, *extra):
    monkeypatch.syspath_prepend(str(EXAMPLES))  # for `from common import ...`, as when run as a script
    main = runpy.run_path(str(EXAMPLES / script))["main"]
    png = tmp_path / "curve.png"
    argv = ["--epochs", "1", "--dataset", "tiny", "--validation", "10", "--batch-size", "16", "--output", str(png)]
    return main([*argv, *extra]), png


def check(result, out, png, with_plot):
    assert "tiny: 50 training, 10 validation, 20 test" in out
    assert "epoch  1/1" in out and "test accuracy" in out
    assert len(result["history"]["loss"]) == 1 and 0 <= result["test_accuracy"] <= 1
    assert png.is_file() == with_plot
    if with_plot:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "matplotlib is not installed: no plot" in out


WITH_PLOT = pytest.param(True, marks=pytest.mark.skipif(not HAS_MPL, reason="matplotlib is not installed"))


@pytest.mark.parametrize("plot", [WITH_PLOT, False])
def test_numpy_example_runs_one_epoch(synth, home, monkeypatch, tmp_path, capsys, plot):
    synth.write(home)
    if not plot:
        monkeypatch.setitem(sys.modules, "matplotlib", None)
    result, png = run_example("train_numpy.py", monkeypatch, tmp_path)
    check(result, capsys.readouterr().out, png, plot)


def test_torch_example_runs_one_epoch_with_workers(synth, home, monkeypatch, tmp_path, capsys):
    pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'mnistkit[torch]'")
    synth.write(home)
    result, png = run_example("train_torch.py", monkeypatch, tmp_path, "--num-workers", "2", "--loader", "mnistkit")
    check(result, capsys.readouterr().out, png, HAS_MPL)


def test_torch_example_runs_one_epoch_through_the_torchvision_dropin(monkeypatch, tmp_path, capsys, server):
    pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'mnistkit[torch]'")
    from helpers import make_synthetic

    from mnistkit import registry

    synth = make_synthetic("mnist")  # stands in for MNIST, downloaded from a loopback mirror into the root
    monkeypatch.setitem(registry.DATASETS, "mnist", synth.dataset)
    server.serve_dataset(synth)
    monkeypatch.setenv("MNISTKIT_MIRROR", server.url)
    root = tmp_path / "root"
    monkeypatch.syspath_prepend(str(EXAMPLES))
    main = runpy.run_path(str(EXAMPLES / "train_torch.py"))["main"]
    argv = [
        "--epochs",
        "1",
        "--validation",
        "10",
        "--batch-size",
        "16",
        "--output",
        str(tmp_path / "c.png"),
        "--root",
        str(root),
        "--num-workers",
        "2",
    ]
    result = main(argv)
    out = capsys.readouterr().out
    assert "mnist: 50 training, 10 validation, 20 test" in out and 0 <= result["test_accuracy"] <= 1
    assert (root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file()  # where torchvision puts it
