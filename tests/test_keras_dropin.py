"""mnistkit.keras: Keras' load_data for MNIST and Fashion-MNIST, without TensorFlow or Keras.

Synthetic data stands in for the published files (registered under the real names); a Keras folder
(``$KERAS_HOME/datasets``) is made per test.  Where Keras is installed, its own ``fashion_mnist.load_data`` is
compared with ours on the real files (../shared/data), which Keras reads from its folder without downloading.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import family
import numpy as np
import pytest
from helpers import make_synthetic

from mnistkit import registry
from mnistkit.keras import datasets, fashion_mnist, keras_datasets_folder, mnist

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HAS_KERAS = importlib.util.find_spec("keras") is not None


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras" / "datasets"


@pytest.fixture
def synth_mnist(monkeypatch):
    synth = make_synthetic("mnist")  # pinned by its decoded checksums, as the real MNIST is
    monkeypatch.setitem(registry.DATASETS, "mnist", synth.dataset)
    return synth


def _check_keras_shape(result, n_train, n_test):
    (x, y), (xt, yt) = result
    for a, shape in ((x, (n_train, 28, 28)), (y, (n_train,)), (xt, (n_test, 28, 28)), (yt, (n_test,))):
        assert type(a) is np.ndarray and a.dtype == np.uint8 and a.shape == shape
        assert a.flags.c_contiguous and a.flags.writeable


def test_mnist_load_data_returns_what_keras_returns(synth_mnist, home, server, monkeypatch):
    server.serve_dataset(synth_mnist)
    monkeypatch.setenv("MNISTKIT_MIRROR", server.url)
    result = mnist.load_data()
    _check_keras_shape(result, 60, 20)
    (x, _y), (_xt, yt) = result
    np.testing.assert_array_equal(x, synth_mnist.arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(yt, synth_mnist.arrays["t10k-labels-idx1-ubyte.gz"])
    x[:] = 0  # writing into the result never changes the next one (no view of the cache)
    assert mnist.load_data()[0][0].any() and datasets.mnist is mnist


def test_mnist_npz_that_keras_cached_is_used_without_a_download(synth_mnist, keras_home, home, monkeypatch):
    monkeypatch.setenv("MNISTKIT_OFFLINE", "1")  # nothing anywhere but Keras' folder
    keras_home.mkdir(parents=True)
    a = synth_mnist.arrays
    np.savez_compressed(
        keras_home / "mnist.npz",
        x_train=a["train-images-idx3-ubyte.gz"],
        y_train=a["train-labels-idx1-ubyte.gz"],
        x_test=a["t10k-images-idx3-ubyte.gz"],
        y_test=a["t10k-labels-idx1-ubyte.gz"],
    )
    (_x, y), (xt, yt) = mnist.load_data()
    np.testing.assert_array_equal(xt, a["t10k-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(y, a["train-labels-idx1-ubyte.gz"])
    assert keras_datasets_folder() == keras_home
    # path= relative to Keras' folder, or absolute, as in Keras.
    shutil.move(keras_home / "mnist.npz", keras_home.parent / "elsewhere.npz")
    np.testing.assert_array_equal(mnist.load_data(path=str(keras_home.parent / "elsewhere.npz"))[1][1], yt)
    np.testing.assert_array_equal(mnist.load_data(path="../elsewhere.npz")[1][1], yt)
    assert not (home / "mnist").exists()  # mnistkit downloaded nothing


def test_an_npz_that_is_not_the_published_data_is_ignored(synth_mnist, keras_home, home, server, monkeypatch, caplog):
    server.serve_dataset(synth_mnist)
    monkeypatch.setenv("MNISTKIT_MIRROR", server.url)
    keras_home.mkdir(parents=True)
    a = synth_mnist.arrays
    wrong = a["train-images-idx3-ubyte.gz"].copy()
    wrong[0, 0, 0] ^= 1  # one pixel off
    np.savez(
        keras_home / "mnist.npz",
        x_train=wrong,
        y_train=a["train-labels-idx1-ubyte.gz"],
        x_test=a["t10k-images-idx3-ubyte.gz"],
        y_test=a["t10k-labels-idx1-ubyte.gz"],
    )
    (x, _), _ = mnist.load_data()
    np.testing.assert_array_equal(x, a["train-images-idx3-ubyte.gz"])
    assert "not the published MNIST" in caplog.text and server.gets("/mnist/train-images-idx3-ubyte.gz") == 1
    (keras_home / "mnist.npz").write_bytes(b"<html>not a zip</html>")  # a damaged file: also ignored
    np.testing.assert_array_equal(mnist.load_data()[0][0], a["train-images-idx3-ubyte.gz"])


def test_fashion_mnist_from_keras_folder_or_mnistkit(monkeypatch, keras_home, home, server):
    fam = family.mnist_layout("fashion-mnist")
    fam.register(monkeypatch)
    fam.serve(server)
    monkeypatch.setenv("MNISTKIT_MIRROR", server.url)
    (keras_home / "fashion-mnist").mkdir(parents=True)
    for name, data in fam.files["fashion-mnist"].items():  # Keras keeps the four .gz files there
        (keras_home / "fashion-mnist" / name).write_bytes(data)
    result = fashion_mnist.load_data()
    _check_keras_shape(result, 12, 5)
    np.testing.assert_array_equal(result[0][0], fam.arrays["train-images-idx3-ubyte.gz"])
    assert server.gets("/fashion-mnist/train-images-idx3-ubyte.gz") == 0  # Keras' copy was used
    shutil.rmtree(keras_home)
    shutil.rmtree(home / "fashion-mnist")
    np.testing.assert_array_equal(fashion_mnist.load_data()[1][1], fam.arrays["t10k-labels-idx1-ubyte.gz"])
    assert server.gets("/fashion-mnist/t10k-labels-idx1-ubyte.gz") == 1


@pytest.mark.skipif(not HAS_KERAS, reason="Keras is not installed (compare in a venv that has it)")
@pytest.mark.skipif(not (REAL / "fashion-mnist").is_dir(), reason="real Fashion-MNIST not found in ../shared/data")
def test_same_as_keras_fashion_mnist_on_the_real_files(keras_home, home, tmp_path):
    import subprocess
    import sys

    shutil.copytree(REAL / "fashion-mnist", keras_home / "fashion-mnist")  # Keras then reads them, no download
    # Keras fixes its folder when first imported: a fresh process sees KERAS_HOME, and refuses to go on
    # (rather than download) unless Keras looks exactly there.
    out = tmp_path / "keras.npz"
    script = (
        "import os, sys, numpy as np, keras\n"
        "from keras.src.backend import config\n"
        "if os.path.realpath(config.keras_home()) != os.path.realpath(os.environ['KERAS_HOME']):\n"
        "    sys.exit('Keras does not use KERAS_HOME here: not calling it (it would download)')\n"
        "(x, y), (xt, yt) = keras.datasets.fashion_mnist.load_data()\n"
        "np.savez(sys.argv[1], x=x, y=y, xt=xt, yt=yt, writeable=x.flags.writeable)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with np.load(out) as theirs:
        ours = fashion_mnist.load_data()
        for mine, key in zip((*ours[0], *ours[1]), ("x", "y", "xt", "yt"), strict=True):
            assert mine.dtype == theirs[key].dtype and mine.shape == theirs[key].shape
            np.testing.assert_array_equal(mine, theirs[key])
        assert not theirs["writeable"]  # Keras' arrays are read-only views; ours are writable (README says so)


@pytest.mark.skipif(not (REAL / "mnist").is_dir(), reason="real MNIST not found in ../shared/data")
def test_a_real_mnist_npz_is_recognised_by_its_content(keras_home, home, monkeypatch):
    from mnistkit import read_idx

    monkeypatch.setenv("MNISTKIT_OFFLINE", "1")
    monkeypatch.setenv("MNISTKIT_MIRROR", "")
    arrays = {
        k: read_idx(REAL / "mnist" / f)
        for k, f in (
            ("x_train", "train-images-idx3-ubyte.gz"),
            ("y_train", "train-labels-idx1-ubyte.gz"),
            ("x_test", "t10k-images-idx3-ubyte.gz"),
            ("y_test", "t10k-labels-idx1-ubyte.gz"),
        )
    }
    keras_home.mkdir(parents=True)
    np.savez_compressed(keras_home / "mnist.npz", **arrays)  # not Keras' file byte for byte: checked by content
    (x, y), (_xt, yt) = mnist.load_data()
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4] and yt[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    np.testing.assert_array_equal(x, arrays["x_train"])
