"""Known facts of the real MNIST files, when they are available (../shared/data/mnist or $MNISTKIT_REAL_DATA).

These tests are skipped on a fresh clone without the data; everything else uses synthetic data.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from mnistkit import load_mnist

REAL = Path(os.environ.get("MNISTKIT_REAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))
pytestmark = pytest.mark.skipif(
    not (REAL / "train-images-idx3-ubyte.gz").is_file(), reason=f"real MNIST not found at {REAL}"
)


@pytest.fixture(scope="module")
def real_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("real")
    shutil.copytree(REAL, home / "mnist")
    return home


def test_real_mnist_known_facts(real_home):
    (x, t), (xt, tt) = load_mnist(normalize=False, data_home=real_home, offline=True)
    assert x.shape == (60000, 784) and xt.shape == (10000, 784)
    assert t[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert tt[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(t).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(tt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    (xf, _), _ = load_mnist(data_home=real_home, offline=True)
    assert abs(float(xf.mean(dtype=np.float64)) - 0.1306605) < 1e-6
    assert abs(float(xf.std(dtype=np.float64)) - 0.3081078) < 1e-6


def test_recompressed_train_images_is_accepted_by_its_decoded_hash(real_home):
    manifest = (real_home / "mnist" / ".cache" / "train-images-idx3-ubyte.json").read_text()
    assert "ba891046e6505d7a" in manifest
