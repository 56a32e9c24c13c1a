"""When the data and the registry disagree: which number, which file; and label mappings from the registry."""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace
from pathlib import Path

import family
import numpy as np
import pytest
from helpers import Route, make_synthetic

import mnistkit
from mnistkit import IdxFormatError, RegistryMismatchError, load, registry
from mnistkit.errors import MnistkitWarning
from mnistkit.registry import idx_file

REFERENCE = Path(__file__).resolve().parent / "reference" / "emnist-mapping"
EMNIST = ["emnist-byclass", "emnist-bymerge", "emnist-balanced", "emnist-letters", "emnist-digits", "emnist-mnist"]


def _miscounted(monkeypatch, sha256_of_gz: bool):
    """The synthetic dataset with a registry that says 61 training images where the file holds 60."""
    data = make_synthetic()
    name = "train-images-idx3-ubyte.gz"
    good = data.dataset.file(name)
    wrong = idx_file(name, (61, 28, 28), size=good.size, sha256=good.sha256 if sha256_of_gz else "sha256:" + "0" * 64)
    ds = replace(data.dataset, files=tuple(wrong if f.name == name else f for f in data.dataset.files))
    monkeypatch.setitem(registry.DATASETS, ds.name, ds)
    return data


def test_a_split_size_the_published_file_contradicts_is_reported_as_a_registry_bug(monkeypatch, home):
    data = _miscounted(monkeypatch, sha256_of_gz=True)
    data.write(home)
    with pytest.raises(RegistryMismatchError) as info:
        load("tiny", offline=True)
    message = str(info.value)
    path = home / "tiny" / "train-images-idx3-ubyte.gz"
    assert str(path) in message  # which file
    assert "the registry says 61, the file's IDX header says 60" in message  # which number, and the file's
    assert "published sha256" in message and "report" in message and "\n" not in message
    assert not list((home / "tiny" / ".cache").glob("train-images*"))  # nothing cached from it


def test_a_contradicted_download_is_reported_and_not_kept(monkeypatch, server, home):
    data = _miscounted(monkeypatch, sha256_of_gz=True)
    for name, body in data.gz.items():
        server.routes[f"/tiny/{name}"] = Route(body=body)
    with pytest.raises(RegistryMismatchError, match="the registry says 61"):
        load("tiny", mirrors=server.url)
    assert not (home / "tiny" / "train-images-idx3-ubyte.gz").exists()
    assert not list((home / "tiny").glob("*.part*"))


def test_a_file_that_is_not_vouched_for_names_both_numbers_and_stays_refused(monkeypatch, home):
    data = _miscounted(monkeypatch, sha256_of_gz=False)
    data.write(home)
    with pytest.raises(mnistkit.MissingFilesError) as info:
        load("tiny", offline=True)
    message = str(info.value)
    assert "the registry says 61, the file's IDX header says 60" in message
    assert "either it is not the published train-images-idx3-ubyte.gz" in message
    from mnistkit.integrity import verify

    with pytest.raises(IdxFormatError, match="registry's shape \\(61, 28, 28\\)"):
        verify(
            home / "tiny" / "train-images-idx3-ubyte.gz",
            registry.get_dataset("tiny").file("train-images-idx3-ubyte.gz"),
        )


def test_an_emnist_member_of_the_verified_archive_that_contradicts_the_registry(monkeypatch, home):
    fam = family.emnist()
    ds = fam.datasets["emnist-letters"]
    spec = ds.file("emnist-letters-train-labels-idx1-ubyte.gz")
    wrong = replace(spec, shape=(spec.shape[0] + 1,), decoded_size=spec.decoded_size + 1)
    fam.datasets["emnist-letters"] = replace(ds, files=tuple(wrong if f is spec else f for f in ds.files))
    fam.register(monkeypatch)
    fam.write(home)
    with pytest.raises(RegistryMismatchError) as info:
        load("emnist-letters", offline=True)
    message = str(info.value)
    assert f"gzip.zip:{spec.member}" in message and "gzip.zip has its published checksum" in message
    assert f"the registry says {spec.shape[0] + 1}, the file's IDX header says {spec.shape[0]}" in message


# --- label mappings: registry facts, checked against the archive when it is here ----------------------


@pytest.mark.parametrize("name", EMNIST)
def test_label_mapping_needs_no_archive_and_is_the_published_table(name, home):
    published = (REFERENCE / f"{name}-mapping.txt").read_text()
    mapping = mnistkit.label_mapping(name)
    from mnistkit.archive import parse_mapping

    assert mapping == parse_mapping(published)
    assert mnistkit.get_dataset(name).mapping_text() == published  # byte for byte
    assert not (home / "emnist").exists()  # nothing downloaded, no folder made


def _with_mapping(body: bytes, member: str, text: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(body)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, text.encode() if info.filename == member else src.read(info))
    return out.getvalue()


def test_the_archives_own_mapping_file_is_checked_against_the_registry(monkeypatch, home):
    fam = family.emnist()
    fam.register(monkeypatch)
    ds = registry.get_dataset("emnist-letters")
    fam.write(home)
    assert mnistkit.label_mapping("emnist-letters") == ds.label_map()  # the archive agrees
    changed = ds.mapping_text().replace("3 67 99\n", "3 67 100\n")
    (home / "emnist" / "gzip.zip").write_bytes(_with_mapping(fam.files["emnist"]["gzip.zip"], ds.mapping, changed))
    with pytest.raises(RegistryMismatchError) as info:
        mnistkit.label_mapping("emnist-letters")
    message = str(info.value)
    assert f"{home / 'emnist' / 'gzip.zip'}:gzip/emnist-letters-mapping.txt" in message  # the file...
    assert "get_dataset('emnist-letters').label_map()" in message  # ...and the registry table
    assert "3: 'Cd' in the file, 'Cc' in the registry" in message and "\n" not in message
    assert mnistkit.label_mapping("emnist-digits") == {i: str(i) for i in range(10)}  # other splits unaffected


def test_an_archive_without_the_mapping_member_is_named(monkeypatch, home):
    fam = family.emnist()
    fam.register(monkeypatch)
    (home / "emnist").mkdir(parents=True)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("gzip/other.txt", b"x")
    (home / "emnist" / "gzip.zip").write_bytes(out.getvalue())
    # Not the published archive: it is named in a warning, and the registry's table is still the answer.
    with pytest.warns(MnistkitWarning, match=r"gzip\.zip:gzip/emnist-mnist-mapping\.txt.*no such member"):
        assert mnistkit.label_mapping("emnist-mnist") == {i: str(i) for i in range(10)}


def test_letters_sizes_are_the_published_ones():
    ds = registry.get_dataset("emnist-letters")
    assert ds.info()["splits"] == {"train": 124800, "test": 20800}
    assert "124,800 train, 20,800 test" in ds.description
    sizes = {f.name: f.size for f in ds.files[1:]}
    assert sizes["emnist-letters-test-labels-idx1-ubyte.gz"] == 144
    assert np.prod(ds.file("emnist-letters-train-images-idx3-ubyte.gz").shape) == 124800 * 784
