"""mnistkit.torchvision: torchvision's MNIST-family datasets without torchvision.

The first part needs PyTorch only and checks the drop-in against the files it was given (synthetic data in
torchvision's layout, a loopback mirror).  The last part compares it with torchvision's own classes on the same
files, item by item, attribute by attribute and repr by repr; it runs where torchvision is installed and is
skipped (with the reason) elsewhere.  Real MNIST / Fashion-MNIST (../shared/data) are compared when present.
"""

from __future__ import annotations

import gzip
import importlib.util
import lzma
import pickle
import shutil
from pathlib import Path

import family
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'mnistkit[torch]'")
from PIL import Image  # noqa: E402

from mnistkit import torchvision as mk  # noqa: E402

HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None
REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data"

FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST", "qmnist": "QMNIST"}


@pytest.fixture
def fam(monkeypatch, home):
    """Synthetic MNIST, Fashion-MNIST, KMNIST, QMNIST and EMNIST, registered (tiny sizes)."""
    fams = [family.mnist_layout(n) for n in ("mnist", "fashion-mnist", "kmnist")] + [family.qmnist(), family.emnist()]
    for f in fams:
        f.register(monkeypatch)
    return fams


def _extract(data: bytes, name: str) -> bytes:
    if name.endswith(".gz"):
        return gzip.decompress(data)
    if name.endswith(".xz"):
        return lzma.decompress(data)
    return data


def torchvision_layout(fams, root: Path, keep_archives: bool = True) -> None:
    """Lay the files out as torchvision leaves them after download=True: raw/ with archives and extracted files."""
    import zipfile

    for f in fams:
        for folder, named in f.files.items():
            if folder == "emnist":
                raw = root / "EMNIST" / "raw"
                raw.mkdir(parents=True, exist_ok=True)
                body = named["gzip.zip"]
                if keep_archives:
                    (raw / "gzip.zip").write_bytes(body)
                import io

                with zipfile.ZipFile(io.BytesIO(body)) as zf:
                    for member in zf.namelist():
                        if member.endswith(".gz"):
                            out = raw / Path(member).name[: -len(".gz")]
                            out.write_bytes(gzip.decompress(zf.read(member)))
                continue
            raw = root / FOLDERS[folder] / "raw"
            raw.mkdir(parents=True, exist_ok=True)
            for name, data in named.items():
                if keep_archives:
                    (raw / name).write_bytes(data)
                (raw / name.rsplit(".", 1)[0]).write_bytes(_extract(data, name))


def _arrays(fams, name):
    for f in fams:
        if name in f.arrays:
            return f.arrays[name]
    raise KeyError(name)


# --- the drop-in on its own ------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [mk.MNIST, mk.FashionMNIST, mk.KMNIST])
def test_items_attributes_and_repr_as_torchvision_defines_them(fam, tmp_path, cls):
    torchvision_layout(fam, tmp_path)
    for train, prefix in ((True, "train"), (False, "t10k")):
        ds = cls(str(tmp_path), train=train)
        x = _arrays(fam, f"{prefix}-images-idx3-ubyte.gz")
        t = _arrays(fam, f"{prefix}-labels-idx1-ubyte.gz")
        assert isinstance(ds, torch.utils.data.Dataset) and len(ds) == len(x)
        assert ds.data.dtype == torch.uint8 and tuple(ds.data.shape) == x.shape
        assert ds.targets.dtype == torch.int64 and ds.targets.tolist() == t.tolist()
        np.testing.assert_array_equal(ds.data.numpy(), x)
        img, label = ds[1]
        assert isinstance(img, Image.Image) and img.mode == "L" and img.size == (28, 28)
        np.testing.assert_array_equal(np.asarray(img), x[1])
        assert type(label) is int and label == t[1]
        assert ds.train is train and ds.root == str(tmp_path) and len(ds.classes) == 10
        assert ds.class_to_idx == {c: i for i, c in enumerate(ds.classes)}
        assert ds.raw_folder == str(tmp_path / cls.__name__ / "raw")
        assert repr(ds) == (
            f"Dataset {cls.__name__}\n    Number of datapoints: {len(x)}\n    Root location: {tmp_path}\n"
            f"    Split: {'Train' if train else 'Test'}"
        )


def test_transforms_apply_per_item_and_show_in_the_repr(fam, tmp_path):
    torchvision_layout(fam, tmp_path)

    class Double:
        def __call__(self, img):
            return np.asarray(img).astype(np.int64) * 2

        def __repr__(self):
            return "Double()"

    class Plus100:
        def __call__(self, t):
            return t + 100

        def __repr__(self):
            return "Plus100()"

    ds = mk.MNIST(tmp_path, transform=Double(), target_transform=Plus100())
    img, label = ds[0]
    np.testing.assert_array_equal(img, _arrays(fam, "train-images-idx3-ubyte.gz")[0].astype(np.int64) * 2)
    assert label == int(_arrays(fam, "train-labels-idx1-ubyte.gz")[0]) + 100
    assert ds.root == tmp_path  # a Path stays a Path, as in torchvision
    assert repr(ds) == (  # torchvision indents only the first line of the transforms' repr
        f"Dataset MNIST\n    Number of datapoints: 12\n    Root location: {tmp_path}\n    Split: Train\n"
        "    StandardTransform\nTransform: Double()\nTarget transform: Plus100()"
    )


def test_download_false_without_the_data_raises_torchvisions_error(fam, tmp_path):
    for make in (
        lambda: mk.MNIST(tmp_path),
        lambda: mk.QMNIST(tmp_path, what="test10k"),
        lambda: mk.EMNIST(tmp_path, "letters"),
    ):
        with pytest.raises(RuntimeError, match=r"^Dataset not found\. You can use download=True to download it$"):
            make()
    with pytest.raises(mk.DatasetNotFoundError):  # also a MnistkitError
        mk.KMNIST(tmp_path, train=False)
    assert not (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").exists()


def test_download_true_fetches_verified_files_into_torchvisions_folder(fam, tmp_path, server, monkeypatch):
    for f in fam:
        f.serve(server)
    monkeypatch.setenv("MNISTKIT_MIRROR", server.url)
    ds = mk.MNIST(tmp_path / "data", train=False, download=True)
    assert len(ds) == 5
    raw = tmp_path / "data" / "MNIST" / "raw"
    assert {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"} <= {p.name for p in raw.iterdir()}
    assert server.gets("/mnist/t10k-images-idx3-ubyte.gz") == 1
    again = mk.MNIST(tmp_path / "data", train=False, download=True)  # already there: no second download
    assert server.gets("/mnist/t10k-images-idx3-ubyte.gz") == 1 and again.targets.tolist() == ds.targets.tolist()
    mk.MNIST(tmp_path / "data", train=False)  # download=False now finds them


def test_a_root_torchvision_filled_is_used_without_a_download(fam, tmp_path, server, monkeypatch):
    torchvision_layout(fam, tmp_path)  # archives and extracted files, as torchvision leaves them
    for f in fam:
        f.serve(server)
    monkeypatch.setenv("MNISTKIT_MIRROR", server.url)
    for make in (
        lambda: mk.MNIST(tmp_path, download=True),
        lambda: mk.FashionMNIST(tmp_path, train=False, download=True),
        lambda: mk.QMNIST(tmp_path, what="nist", download=True),
        lambda: mk.EMNIST(tmp_path, split="balanced", download=True),
    ):
        assert len(make()) > 0
    assert server.gets("/mnist/train-images-idx3-ubyte.gz") == 0 and server.gets("/emnist/gzip.zip") == 0
    assert server.gets("/qmnist/xnist-images-idx3-ubyte.xz") == 0


def test_extracted_files_alone_are_used_where_the_decoded_data_can_be_verified(fam, tmp_path, server, monkeypatch):
    from helpers import make_synthetic

    from mnistkit import registry

    synth = make_synthetic("mnist")  # pinned by the checksums of its decoded files, as the real MNIST is
    monkeypatch.setitem(registry.DATASETS, "mnist", synth.dataset)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, data in synth.raw.items():
        (raw / name[: -len(".gz")]).write_bytes(data)
    torchvision_layout([f for f in fam if "emnist" in f.files], tmp_path, keep_archives=False)  # no gzip.zip
    for f in fam:
        f.serve(server)
    monkeypatch.setenv("MNISTKIT_MIRROR", server.url)
    ds = mk.MNIST(tmp_path, train=False, download=True)
    np.testing.assert_array_equal(ds.data.numpy(), synth.arrays["t10k-images-idx3-ubyte.gz"])
    letters = mk.EMNIST(tmp_path, split="letters", download=True)
    assert letters.targets.min() >= 1
    assert server.gets("/mnist/t10k-images-idx3-ubyte.gz") == 0 and server.gets("/emnist/gzip.zip") == 0


def test_a_damaged_file_in_root_is_not_used(fam, tmp_path):
    torchvision_layout(fam, tmp_path, keep_archives=False)
    path = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="Dataset not found"):
        mk.MNIST(tmp_path, train=False)


def test_qmnist_what_and_compat(fam, tmp_path):
    torchvision_layout(fam, tmp_path)
    table = _arrays(fam, "qmnist-test-labels-idx2-int.gz")
    images = _arrays(fam, "qmnist-test-images-idx3-ubyte.gz")
    for what, rows in (("test", slice(0, 12)), ("test10k", slice(0, 4)), ("test50k", slice(4, 12))):
        ds = mk.QMNIST(tmp_path, what=what)
        assert ds.targets.dtype == torch.int64 and ds.targets.tolist() == table[rows].tolist()
        np.testing.assert_array_equal(ds.data.numpy(), images[rows])
        assert ds[2][1] == table[rows][2, 0] and repr(ds).endswith(f"Split: {what}")
        full = mk.QMNIST(tmp_path, what=what, compat=False)[2][1]
        assert full.dtype == torch.int64 and full.tolist() == table[rows][2].tolist()
    assert mk.QMNIST(tmp_path, train=False).what == "test" and len(mk.QMNIST(tmp_path, what="nist")) == 15
    with pytest.raises(ValueError, match="Unknown value 'test5k' for argument what"):
        mk.QMNIST(tmp_path, what="test5k")


def test_emnist_images_as_published_and_labels_as_stored(fam, tmp_path):
    torchvision_layout(fam, tmp_path)
    for split in mk.EMNIST.splits:
        ds = mk.EMNIST(tmp_path, split=split, train=False)
        stored = _arrays(fam, f"emnist-{split}-test-images-idx3-ubyte.gz")
        np.testing.assert_array_equal(ds.data.numpy(), stored)  # transposed, as torchvision gives them
        assert ds.targets.tolist() == _arrays(fam, f"emnist-{split}-test-labels-idx1-ubyte.gz").tolist()
        np.testing.assert_array_equal(np.asarray(ds[0][0]), stored[0])
    assert mk.EMNIST(tmp_path, "letters").classes[:3] == ["N/A", "a", "b"]
    with pytest.raises(ValueError, match="argument split"):
        mk.EMNIST(tmp_path, split="lettres")


def test_pickles_without_the_pixels_and_a_replaced_data_stays(fam, tmp_path):
    torchvision_layout(fam, tmp_path)
    ds = mk.MNIST(tmp_path)
    copy = pickle.loads(pickle.dumps(ds))
    assert len(pickle.dumps(ds)) < 3000 and torch.equal(copy.data, ds.data) and copy[3][1] == ds[3][1]
    ds.data, ds.targets = ds.data[:4], ds.targets[:4]  # the common way to take a subset
    copy = pickle.loads(pickle.dumps(ds))
    assert len(copy) == 4 and torch.equal(copy.data, ds.data)


def test_dataloader_with_to_tensor_like_transform_and_spawned_workers(fam, tmp_path):
    torchvision_layout(fam, tmp_path)
    ds = mk.MNIST(tmp_path, transform=_to_tensor)
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=1, multiprocessing_context="spawn")
    xs = torch.cat([x for x, _ in loader])
    want = _arrays(fam, "train-images-idx3-ubyte.gz")
    np.testing.assert_array_equal((xs[:, 0] * 255).round().to(torch.uint8).numpy(), want)


def _to_tensor(img):
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).unsqueeze(0)


# --- against torchvision itself -------------------------------------------------------------------------

needs_tv = pytest.mark.skipif(
    not HAS_TORCHVISION, reason="torchvision is not installed (compare in a venv that has it)"
)


def _compare(ours, theirs, n_items: int = 6) -> None:
    assert type(ours).__name__ == type(theirs).__name__
    assert len(ours) == len(theirs) and repr(ours) == repr(theirs)
    assert ours.data.dtype == theirs.data.dtype and ours.data.shape == theirs.data.shape
    assert torch.equal(ours.data, theirs.data)
    assert ours.targets.dtype == theirs.targets.dtype and torch.equal(ours.targets, theirs.targets)
    assert ours.classes == theirs.classes and ours.class_to_idx == theirs.class_to_idx
    assert ours.train == theirs.train and ours.root == theirs.root
    assert ours.raw_folder == theirs.raw_folder and ours.processed_folder == theirs.processed_folder
    for attr in ("split", "what", "compat", "training_file", "test_file", "data_file"):
        assert getattr(ours, attr, None) == getattr(theirs, attr, None), attr
    step = max(1, len(ours) // n_items)
    for i in [*range(0, len(ours), step), -1]:
        (a, ta), (b, tb) = ours[i], theirs[i]
        assert a.mode == b.mode == "L" and a.size == b.size and a.tobytes() == b.tobytes()
        if isinstance(tb, torch.Tensor):
            assert torch.equal(ta, tb) and ta.dtype == tb.dtype
        else:
            assert type(ta) is type(tb) and ta == tb


@needs_tv
def test_same_as_torchvision_on_the_same_files(fam, tmp_path):
    from torchvision import datasets as tv
    from torchvision import transforms

    torchvision_layout(fam, tmp_path)
    for name in ("MNIST", "FashionMNIST", "KMNIST"):
        for train in (True, False):
            _compare(getattr(mk, name)(str(tmp_path), train=train), getattr(tv, name)(str(tmp_path), train=train))
    for split in mk.EMNIST.splits:
        _compare(mk.EMNIST(tmp_path, split=split, train=False), tv.EMNIST(tmp_path, split=split, train=False))
    # Not test10k/test50k: torchvision slices rows 0:10000 and 10000: of the file, which the shrunk synthetic
    # test file (12 rows) cannot show; test_qmnist_what_and_compat checks them against the registry's rows.
    for what in ("train", "test", "nist"):
        for compat in (True, False):
            _compare(mk.QMNIST(tmp_path, what=what, compat=compat), tv.QMNIST(tmp_path, what=what, compat=compat))
    # Transforms: the same tensors, the same repr (torchvision's transforms print themselves).
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    twice = transforms.Lambda(lambda t: 2 * t)
    ours = mk.MNIST(tmp_path, transform=tf, target_transform=twice)
    theirs = tv.MNIST(tmp_path, transform=tf, target_transform=twice)
    assert repr(ours) == repr(theirs)
    assert torch.equal(ours[7][0], theirs[7][0]) and ours[7][1] == theirs[7][1]
    # download=False on an empty root: the same exception type and message.
    empty = tmp_path / "empty"
    with pytest.raises(RuntimeError) as theirs_err:
        tv.MNIST(empty)
    with pytest.raises(RuntimeError) as ours_err:
        mk.MNIST(empty)
    assert str(ours_err.value) == str(theirs_err.value)
    for bad in ({"split": "nope"},):
        with pytest.raises(ValueError) as theirs_err:
            tv.EMNIST(tmp_path, **bad)
        with pytest.raises(ValueError) as ours_err:
            mk.EMNIST(tmp_path, **bad)
        assert str(ours_err.value) == str(theirs_err.value)


@needs_tv
@pytest.mark.skipif(not (REAL / "mnist").is_dir(), reason="real MNIST files not found in ../shared/data")
@pytest.mark.parametrize("name,folder", [("MNIST", "mnist"), ("FashionMNIST", "fashion-mnist")])
def test_same_as_torchvision_on_the_real_files(tmp_path, name, folder):
    from torchvision import datasets as tv

    raw = tmp_path / name / "raw"
    raw.mkdir(parents=True)
    for path in (REAL / folder).glob("*.gz"):
        shutil.copy(path, raw / path.name)
        (raw / path.stem).write_bytes(gzip.decompress(path.read_bytes()))  # torchvision reads the extracted files
    for train in (True, False):
        _compare(getattr(mk, name)(tmp_path, train=train), getattr(tv, name)(tmp_path, train=train), n_items=50)


def test_download_true_replaces_nothing_it_cannot_verify_and_still_delivers(fam, tmp_path, server, monkeypatch):
    torchvision_layout(fam, tmp_path)
    for f in fam:
        f.serve(server)
    monkeypatch.setenv("MNISTKIT_MIRROR", server.url)
    raw = tmp_path / "MNIST" / "raw"
    (raw / "t10k-images-idx3-ubyte").unlink()
    bad = b"<html>403 Forbidden</html>"
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(bad)  # a failed download left behind
    ds = mk.MNIST(tmp_path, train=False, download=True)
    np.testing.assert_array_equal(ds.data.numpy(), _arrays(fam, "t10k-images-idx3-ubyte.gz"))
    assert server.gets("/mnist/t10k-images-idx3-ubyte.gz") == 1
    assert (raw / "t10k-images-idx3-ubyte.gz").read_bytes() == bad  # left alone; the good copy is set aside
    # Without download, a root holding only the bad file has no dataset: torchvision's error, saying why.
    shutil.rmtree(raw / ".cache")
    shutil.rmtree(raw / ".downloaded")
    with pytest.raises(
        RuntimeError,
        match=r"^Dataset not found\. You can use download=True to download it \("
        r".*t10k-images-idx3-ubyte\.gz: .*HTML page.*delete it or use download=True\)$",
    ):
        mk.MNIST(tmp_path, train=False)


@pytest.mark.skipif(not (REAL / "fashion-mnist").is_dir(), reason="real files not found in ../shared/data")
@pytest.mark.parametrize("name,folder", [("MNIST", "mnist"), ("FashionMNIST", "fashion-mnist")])
def test_real_extracted_files_alone_are_verified_and_used(tmp_path, monkeypatch, name, folder):
    from mnistkit import read_idx

    monkeypatch.setenv("MNISTKIT_OFFLINE", "1")
    raw = tmp_path / name / "raw"
    raw.mkdir(parents=True)
    for path in (REAL / folder).glob("*.gz"):  # what is left when someone deletes torchvision's .gz files
        (raw / path.stem).write_bytes(gzip.decompress(path.read_bytes()))
    ds = getattr(mk, name)(tmp_path, train=False, download=True)
    np.testing.assert_array_equal(ds.data.numpy(), read_idx(REAL / folder / "t10k-images-idx3-ubyte.gz"))
    assert sorted(p.name for p in raw.iterdir() if not p.name.startswith(".")) == sorted(
        p.stem for p in (REAL / folder).glob("*.gz")
    )  # nothing fetched, nothing added beside torchvision's files but mnistkit's hidden folders
