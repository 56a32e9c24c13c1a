"""load_mnist / load: the tutorial's contract for all eight option combinations, and more."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import mnistkit
from mnistkit import ArgumentError, load, load_mnist


def tutorial_reference(synth, normalize, flatten, one_hot_label):
    """What the classic tutorial helper returns, computed the tutorial's way from the raw bytes."""
    raw = synth.raw
    out = {}
    for key, name, offset in [
        ("train_img", "train-images-idx3-ubyte.gz", 16),
        ("train_label", "train-labels-idx1-ubyte.gz", 8),
        ("test_img", "t10k-images-idx3-ubyte.gz", 16),
        ("test_label", "t10k-labels-idx1-ubyte.gz", 8),
    ]:
        arr = np.frombuffer(raw[name], np.uint8, offset=offset)
        out[key] = arr.reshape(-1, 784) if key.endswith("img") else arr
    if normalize:
        for key in ("train_img", "test_img"):
            out[key] = out[key].astype(np.float32)
            out[key] /= 255.0
    if not flatten:
        for key in ("train_img", "test_img"):
            out[key] = out[key].reshape(-1, 1, 28, 28)
    if one_hot_label:
        for key in ("train_label", "test_label"):
            t = np.zeros((out[key].size, 10))
            for idx, row in enumerate(t):
                row[out[key][idx]] = 1
            out[key] = t
    return (out["train_img"], out["train_label"]), (out["test_img"], out["test_label"])


@pytest.mark.parametrize("normalize,flatten,one_hot_label", list(itertools.product([True, False], repeat=3)))
def test_eight_combinations_match_the_tutorial(synth, home, normalize, flatten, one_hot_label):
    synth.write(home)
    got = load_mnist(normalize, flatten, one_hot_label, dataset="tiny")
    want = tutorial_reference(synth, normalize, flatten, one_hot_label)
    for (gx, gt), (wx, wt) in zip(got, want, strict=True):
        assert gx.shape == wx.shape and gx.dtype == wx.dtype
        assert gt.shape == wt.shape and gt.dtype == wt.dtype
        np.testing.assert_array_equal(gx, wx)  # bit-identical, floats included
        np.testing.assert_array_equal(gt, wt)
        assert isinstance(gx, np.ndarray) and gx.flags.writeable and gt.flags.writeable


def test_defaults_are_the_tutorials(synth, home):
    synth.write(home)
    (x, t), (xt, _tt) = load_mnist(dataset="tiny")
    assert x.dtype == np.float32 and x.shape == (60, 784) and t.dtype == np.uint8 and t.shape == (60,)
    assert xt.shape == (20, 784)


def test_returned_arrays_never_alias_the_cache(synth, home):
    synth.write(home)
    for normalize in (False, True):
        (x, t), (xt, _tt) = load_mnist(normalize=normalize, dataset="tiny")
        x[:] = 7
        t[:] = 3
        xt[0, 0] = 1
        (x2, t2), (_xt2, _) = load_mnist(normalize=normalize, dataset="tiny")
        want = synth.arrays["train-images-idx3-ubyte.gz"].reshape(60, 784)
        np.testing.assert_array_equal(x2, (want / np.float32(255)).astype(np.float32) if normalize else want)
        np.testing.assert_array_equal(t2, synth.arrays["train-labels-idx1-ubyte.gz"])


@pytest.mark.parametrize("dtype", [np.float16, np.float64, "float32"])
def test_dtype_of_normalised_images(synth, home, dtype):
    synth.write(home)
    x, _ = load("tiny", "test", dtype=dtype)
    assert x.dtype == np.dtype(dtype)
    np.testing.assert_allclose(x, synth.arrays["t10k-images-idx3-ubyte.gz"].reshape(20, 784) / 255.0, rtol=1e-3)


def test_dtype_without_normalize_casts_raw_values(synth, home):
    synth.write(home)
    x, _ = load("tiny", "test", normalize=False, dtype=np.int32)
    assert x.dtype == np.int32 and x.max() > 1


def test_bad_arguments_give_argument_errors(synth, home):
    synth.write(home)
    with pytest.raises(ArgumentError, match="dataset='nope' is not known"):
        load_mnist(dataset="nope")
    with pytest.raises(ArgumentError, match="split='validation' is not a split of tiny"):
        load("tiny", "validation")
    with pytest.raises(ArgumentError, match="normalize='yes'"):
        load_mnist(normalize="yes")
    with pytest.raises(ArgumentError, match="cannot hold normalised values"):
        load("tiny", dtype=np.uint8)
    with pytest.raises(TypeError):
        load_mnist(True, True, False, "tiny")  # options beyond the tutorial's are keyword-only


def test_missing_files_error_says_what_where_and_from_where(home):
    with pytest.raises(mnistkit.MissingFilesError) as info:
        load_mnist(offline=True)
    text = str(info.value)
    assert "4 file(s) missing" in text and "t10k-labels-idx1-ubyte.gz" in text
    assert str(home / "mnist") in text
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz" in text
    assert isinstance(info.value, FileNotFoundError)


def test_public_surface_is_small_and_honest():
    for name in mnistkit.__all__:
        assert hasattr(mnistkit, name), name
    public = {n for n in dir(mnistkit) if not n.startswith("_")}
    import pkgutil

    modules = {m.name for m in pkgutil.iter_modules(mnistkit.__path__)}  # submodules are reachable, not exported
    assert public - modules <= set(mnistkit.__all__)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalising_in_parallel_blocks_is_bit_identical(synth, home, monkeypatch, dtype):
    from mnistkit import api

    monkeypatch.setattr(api, "_PARALLEL_BYTES", 1)  # tiny data takes the multi-threaded route
    monkeypatch.setattr(api, "_cores", lambda: 3)  # uneven blocks, even on a one-core runner
    synth.write(home)
    x, _ = load("tiny", "train", dtype=dtype)
    raw = synth.arrays["train-images-idx3-ubyte.gz"].reshape(60, 784)
    want = raw.astype(dtype)
    want /= dtype(255)
    assert x.dtype == dtype
    np.testing.assert_array_equal(x, want)


HEAVY = [
    "requests",
    "urllib3",
    "filelock",
    "zipfile",
    "PIL",
    "torch",
    "tensorflow",
    "jax",
    "tqdm",
    "logging",
    "zlib_ng",
    "lzma",
    "json",
    "hashlib",
    "tempfile",
    "platformdirs",
]


def _imported_by_mnistkit(prelude: str = "") -> list[str]:
    """The HEAVY modules that ``import mnistkit`` adds, in a fresh interpreter, after ``import numpy``.

    NumPy is imported first as the baseline: a bare ``import numpy`` 1.x already loads ``hashlib``
    (and 1.23 ``json``), which is NumPy's cost, not mnistkit's.
    """
    import subprocess
    import sys

    code = (
        f"import sys; {prelude}import numpy; before = set(sys.modules); import mnistkit; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules and m not in before))"
    )
    return eval(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def test_import_is_light():
    """`import mnistkit` loads no HTTP, locking, archive, image, logging or framework module: they come when used."""
    assert _imported_by_mnistkit() == []


def test_import_lightness_check_blames_what_mnistkit_imports():
    """The check can fail: a heavy module mnistkit pulled in (simulated by a hook on its import) is reported."""
    hook = (
        "import builtins; _real = builtins.__import__; "
        "builtins.__import__ = lambda n, *a, **k: "
        "(_real('tempfile') if n == 'mnistkit' else None) or _real(n, *a, **k); "
    )
    assert "tempfile" in _imported_by_mnistkit(hook)
