"""The benchmark script runs end to end on tiny synthetic data, peers disabled, so it cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import make_synthetic

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def test_benchmark_runs_on_tiny_data_and_writes_its_page(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name, gz in make_synthetic().gz.items():
        (data / name).write_bytes(gz)
    doc = tmp_path / "benchmarks.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            str(data),
            "--repeat",
            "1",
            "--cold-repeat",
            "1",
            "--no-peers",
            "--doc",
            str(doc),
            "--json",
            str(tmp_path / "results.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "registering it as dataset 'bench-data'" in proc.stderr  # not the published MNIST
    for row in (
        "mnistkit | cold",
        "mnistkit | warm: float32, one-hot",
        "tutorial | warm: uint8",
        "keras | npz",
        "floor | np.fromfile",
        "import | import numpy, mnistkit",
    ):
        assert row in proc.stdout, row
    assert "not installed" not in proc.stdout  # every row that runs without peers produced numbers
    text = doc.read_text()
    assert "## Targets (issue 4)" in text and "Regenerate: `python benchmarks/bench.py" in text
    assert (tmp_path / "results.json").stat().st_size > 0
