"""benchmarks/cloud.py end to end on tiny files, against moto's S3 on 127.0.0.1, so it cannot rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cloud.py"


def test_cloud_benchmark_runs_on_tiny_data_and_writes_its_page(tmp_path, synth):
    pytest.importorskip("s3fs", reason="needs the test extra (fsspec, s3fs, moto[server])")
    pytest.importorskip("moto", reason="needs moto[server] (pip install '.[test]')")
    synth.write(tmp_path / "data")
    doc = tmp_path / "cloud.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FSSPEC_"))}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "data" / "tiny"), "--repeat", "1", "--doc", str(doc)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = doc.read_text()
    for row in (
        "| publish, cold (verify, upload, index) |",
        "| load_mnist cold, S3 mirror (download, verify, cache) |",
        "| load_mnist cold, `mnistkit serve` mirror (HTTP) |",
        "| verify_mirror of the S3 mirror",
    ):
        assert row in text, row
    assert "not the published MNIST: registered as a dataset of their own" in text
