"""The loader benchmark runs end to end on tiny synthetic data, so it cannot rot (PyTorch needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_synthetic

pytest.importorskip("torch", reason="PyTorch is not installed: the loader benchmark measures PyTorch loaders")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "loaders.py"


def test_loader_benchmark_runs_on_tiny_data_and_writes_its_page(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name, gz in make_synthetic().gz.items():
        (data / name).write_bytes(gz)
    doc = tmp_path / "loaders.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            str(data),
            "--repeat",
            "1",
            "--batch-size",
            "8",
            "--device",
            "cpu",
            "--doc",
            str(doc),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "not the published MNIST" in proc.stderr
    for row in (
        "mnistkit.torchvision.MNIST + ",
        "(per item), default_collate",
        "torch_loaders (one gather per batch)",
        "floor: np.take",
        "floor: index_select",
        "device-resident (whole split on cpu",
    ):
        assert row in proc.stdout, row
    text = doc.read_text()
    assert "tiny test data (not MNIST)" in text and "Regenerate: `python benchmarks/loaders.py" in text
    assert "of the gather floor" in text
