"""Careless-user attacks on the torchvision and Keras drop-ins: defects found and fixed, and guards that held."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_synthetic

from mnistkit import registry
from mnistkit.keras import mnist


@pytest.fixture
def synth_mnist(monkeypatch):
    synth = make_synthetic("mnist")
    monkeypatch.setitem(registry.DATASETS, "mnist", synth.dataset)
    return synth


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04"], ids=["empty", "zip-header-only"])
def test_keras_npz_left_empty_by_an_interrupted_download_is_ignored(
    content, synth_mnist, tmp_path, home, server, monkeypatch, caplog
):
    # An interrupted Keras download leaves a 0-byte (or cut) mnist.npz: np.load raises EOFError, which escaped.
    server.serve_dataset(synth_mnist)
    monkeypatch.setenv("MNISTKIT_MIRROR", server.url)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    folder = tmp_path / "keras" / "datasets"
    folder.mkdir(parents=True)
    (folder / "mnist.npz").write_bytes(content)
    (x, _), _ = mnist.load_data()
    np.testing.assert_array_equal(x, synth_mnist.arrays["train-images-idx3-ubyte.gz"])
    assert "mnist.npz" in caplog.text


def test_torchvision_root_that_is_a_file_raises_torchvisions_runtime_error(tmp_path, home):
    # torchvision: RuntimeError("Dataset not found...") when root is a file and download=False.
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'mnistkit[torch]'")
    del torch
    from mnistkit import torchvision as mk

    root = tmp_path / "data"
    root.write_text("not a folder")
    for cls in (mk.MNIST, mk.FashionMNIST, mk.KMNIST):
        with pytest.raises(RuntimeError, match=r"^Dataset not found\. You can use download=True to download it"):
            cls(str(root), train=False)
    with pytest.raises(RuntimeError, match=r"^Dataset not found"):
        mk.QMNIST(root, what="test10k")
    with pytest.raises(RuntimeError, match=r"^Dataset not found"):
        mk.EMNIST(root, split="mnist")
    # A file where torchvision's <root>/<Class> folder goes: the same error, naming that file.
    other = tmp_path / "other"
    other.mkdir()
    (other / "MNIST").write_text("not a folder")
    with pytest.raises(RuntimeError, match=r"^Dataset not found.*MNIST is a file"):
        mk.MNIST(other)


def _emnist_root(monkeypatch, root, keep_archive):
    pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'mnistkit[torch]'")
    import family

    from test_torchvision_dropin import torchvision_layout

    fam = family.emnist()
    fam.register(monkeypatch)
    torchvision_layout([fam], root, keep_archives=keep_archive)
    return fam


def test_emnist_truncated_archive_or_members_raise_torchvisions_error(monkeypatch, tmp_path, home):
    pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'mnistkit[torch]'")
    from mnistkit import torchvision as mk

    # A cut gzip.zip (an interrupted download) and no extracted members: not found, never a traceback.
    cut = tmp_path / "cut"
    _emnist_root(monkeypatch, cut, keep_archive=True)
    raw = cut / "EMNIST" / "raw"
    for p in raw.iterdir():
        if p.name != "gzip.zip":
            p.unlink()
    body = (raw / "gzip.zip").read_bytes()
    (raw / "gzip.zip").write_bytes(body[: len(body) // 2])
    with pytest.raises(RuntimeError, match=r"^Dataset not found"):
        mk.EMNIST(cut, split="letters", train=False)

    # Extracted members only, one of them cut short: not used.
    ext = tmp_path / "ext"
    _emnist_root(monkeypatch, ext, keep_archive=False)
    member = ext / "EMNIST" / "raw" / "emnist-letters-test-images-idx3-ubyte"
    member.write_bytes(member.read_bytes()[:100])
    with pytest.raises(RuntimeError, match=r"^Dataset not found"):
        mk.EMNIST(ext, split="letters", train=False)


def test_torchvision_mirrors_and_resources_can_be_read_and_rewritten():
    # The 2020 workaround for yann.lecun.com being down reads MNIST.resources: it raised AttributeError.
    pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'mnistkit[torch]'")
    from mnistkit import torchvision as mk

    for cls, _folder in ((mk.MNIST, "mnist"), (mk.FashionMNIST, "fashion-mnist"), (mk.KMNIST, "kmnist")):
        assert [name for name, _ in cls.resources] == [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ]
        assert all(m.endswith("/") for m in cls.mirrors)
        rewritten = [("/".join(["https://example.invalid", name]), md5) for name, md5 in cls.resources]
        assert len(rewritten) == 4
        assert all(len(md5) == 32 and int(md5, 16) >= 0 for _, md5 in cls.resources)  # torchvision 0.29.1's
