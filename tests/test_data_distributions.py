"""Data distributions: datasets pip-installed as packages, used as the first source, never imported or written.

In-process tests install small fake distributions (a package folder plus its ``.dist-info`` with the
``mnistkit.data`` entry point) on ``sys.path``; the slow test builds the real MNIST data wheel from
``data-packages/mnist`` and installs it into a clean virtual environment with no network.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import Route

import mnistkit
from mnistkit import MissingFilesError, datadist, load
from mnistkit.cli import main
from mnistkit.idx import encode_idx

REAL_INSTALLED = datadist.installed  # conftest hides the environment's own data distributions
ROOT = Path(__file__).resolve().parents[1]


def install_fake(
    monkeypatch,
    site: Path,
    dataset: str,
    files: dict[str, bytes],
    package: str = "mnistkit_data_tiny",
    version: str = "1.0",
) -> Path:
    """A data distribution as pip leaves it: ``<site>/<package>/`` and ``<site>/<package>-<version>.dist-info/``."""
    folder = site / package
    folder.mkdir(parents=True)
    # Importing it is an error: discovery must find the folder from metadata alone.
    (folder / "__init__.py").write_text("raise RuntimeError('a data distribution was imported')\n")
    for name, data in files.items():
        (folder / name).write_bytes(data)
    info = site / f"{package}-{version}.dist-info"
    info.mkdir()
    dist_name = package.replace("_", "-")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[mnistkit.data]\n{dataset} = {package}\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(datadist, "installed", REAL_INSTALLED)
    return folder


def _snapshot(folder: Path) -> dict:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_an_installed_distribution_is_the_first_source_and_is_never_written(synth, monkeypatch, tmp_path, server, home):
    folder = install_fake(monkeypatch, tmp_path / "site", "tiny", synth.gz)
    before = _snapshot(folder)
    for name, body in synth.gz.items():
        server.routes[f"/tiny/{name}"] = Route(body=body)
    (x, _), (_, tt) = mnistkit.load_mnist(normalize=False, flatten=False, dataset="tiny", mirrors=server.url)
    np.testing.assert_array_equal(x[:, 0], synth.arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(tt, synth.arrays["t10k-labels-idx1-ubyte.gz"])
    assert server.requests == []  # the mirror was never asked
    assert _snapshot(folder) == before  # nothing written, touched or removed in the distribution
    assert sorted(p.name for p in (home / "tiny" / ".cache").glob("*.npy")) == sorted(
        n.replace(".gz", ".npy") for n in synth.gz
    )  # the cache went to the data folder
    assert "mnistkit_data_tiny" not in sys.modules


def test_offline_with_an_empty_data_folder(synth, monkeypatch, tmp_path, home):
    install_fake(monkeypatch, tmp_path / "site", "tiny", synth.gz)
    assert not home.exists()
    _, t = load("tiny", "test", normalize=False, offline=True)
    np.testing.assert_array_equal(t, synth.arrays["t10k-labels-idx1-ubyte.gz"])


def test_a_damaged_file_in_a_distribution_is_refused_by_name_and_the_next_source_is_tried(
    synth, monkeypatch, tmp_path, server, home, caplog
):
    files = dict(synth.gz)
    name = "train-images-idx3-ubyte.gz"
    other = synth.arrays[name].copy()
    other[0, 0, 0] ^= 0xFF  # one pixel changed: a valid file, not the published data
    files[name] = gzip.compress(encode_idx(other), mtime=0)
    folder = install_fake(monkeypatch, tmp_path / "site", "tiny", files)
    for n, body in synth.gz.items():
        server.routes[f"/tiny/{n}"] = Route(body=body)
    with caplog.at_level(logging.WARNING, logger="mnistkit"):
        (x, _), _ = mnistkit.load_mnist(normalize=False, flatten=False, dataset="tiny", mirrors=server.url)
    np.testing.assert_array_equal(x[:, 0], synth.arrays[name])  # the published pixels, from the mirror
    assert server.gets(f"/tiny/{name}") == 1 and server.gets("/tiny/t10k-images-idx3-ubyte.gz") == 0
    refused = [r.getMessage() for r in caplog.records if str(folder / name) in r.getMessage()]
    assert refused and "checksum mismatch" in refused[0]  # the warning names the damaged file
    assert (folder / name).read_bytes() == files[name]  # refused, and left as it is


def test_a_damaged_distribution_and_no_other_source_is_one_error_naming_it(synth, monkeypatch, tmp_path, home):
    files = dict(synth.gz)
    name = "t10k-labels-idx1-ubyte.gz"
    files[name] = files[name][:-9]  # truncated: the gzip stream breaks off
    folder = install_fake(monkeypatch, tmp_path / "site", "tiny", files)
    with pytest.raises(MissingFilesError) as info:
        load("tiny", "test", offline=True)
    message = str(info.value)
    assert str(folder / name) in message and "rejected" in message  # the damaged file, by its path
    assert not list((home / "tiny").glob("*.part*"))


def test_discovery_never_imports_and_skips_what_it_cannot_find(monkeypatch, tmp_path, caplog):
    site = tmp_path / "site"
    install_fake(monkeypatch, site, "MNIST", {}, package="mnistkit_data_ok", version="1998.0")  # any case
    broken = site / "mnistkit_data_gone-2.0.dist-info"  # metadata left behind, package folder deleted
    broken.mkdir()
    (broken / "METADATA").write_text("Metadata-Version: 2.1\nName: mnistkit-data-gone\nVersion: 2.0\n")
    (broken / "entry_points.txt").write_text("[mnistkit.data]\nmnist = mnistkit_data_gone\n")
    with caplog.at_level(logging.WARNING, logger="mnistkit"):
        found = datadist.installed("mnist")
    assert [(d.dataset, d.distribution, d.version, d.folder) for d in found] == [
        ("mnist", "mnistkit-data-ok", "1998.0", site / "mnistkit_data_ok")
    ]
    assert any("mnistkit-data-gone" in r.getMessage() for r in caplog.records)
    assert datadist.installed("kmnist") == []
    assert "mnistkit_data_ok" not in sys.modules and "mnistkit_data_gone" not in sys.modules


def _rows(listing: str) -> dict[str, list[str]]:
    """``mnistkit list``'s rows by dataset name, split into cells (cells are two or more spaces apart)."""
    return {line.split()[0]: re.split(r"\s{2,}", line) for line in listing.splitlines()[1:] if line.strip()}


def test_list_and_info_show_where_the_files_come_from(synth, monkeypatch, tmp_path, capsys, home):
    folder = install_fake(monkeypatch, tmp_path / "site", "tiny", synth.gz)
    assert main(["list"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows["tiny"][-2:] == ["installed mnistkit-data-tiny 1.0", "no"]
    assert rows["mnist"][-2:] == ["download", "no"]
    assert main(["info", "tiny"]) == 0
    out = capsys.readouterr().out
    assert f"sources      1. mnistkit-data-tiny 1.0 (installed): {folder}" in out
    assert main(["info", "tiny", "--json"]) == 0
    sources = json.loads(capsys.readouterr().out)["sources"]
    assert sources[0] == {
        "kind": "installed",
        "location": str(folder),
        "distribution": "mnistkit-data-tiny",
        "version": "1.0",
    }
    monkeypatch.setenv("MNISTKIT_MIRROR", "http://127.0.0.1:1/")
    monkeypatch.setattr(datadist, "installed", lambda dataset=None: [])
    assert main(["list"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows["tiny"][-2:] == ["MNISTKIT_MIRROR", "no"]


# --- the real data wheel, in a clean virtual environment without network --------------------------------


def _no_network_prefix() -> tuple[list[str], str]:
    """A command prefix that runs a child with no network at all, and how (unshare, else dead proxies)."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0:
        return [unshare, "-rn"], "a network namespace with no interfaces (unshare -rn)"
    return [], "every proxy pointed at a closed port on 127.0.0.1"


@pytest.mark.slow
def test_the_mnist_data_wheel_installs_and_loads_with_no_network(tmp_path):
    venv = tmp_path / "venv"
    wheels = tmp_path / "wheels"
    pip_env = {k: v for k, v in os.environ.items() if not k.startswith("MNISTKIT_")}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(wheels),
            str(ROOT / "data-packages" / "mnist"),
        ],
        check=True,
        env=pip_env,
    )
    (wheel,) = wheels.glob("mnistkit_data_mnist-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        published = {n.split("/")[-1]: zf.read(n) for n in names if n.endswith(".gz")}
    assert {n for n in names if not n.startswith("mnistkit_data_mnist-")} == {
        "mnistkit_data_mnist/__init__.py",
        *(f"mnistkit_data_mnist/{n}" for n in published),
    }  # the files, and nothing else but the (empty) package marker
    for name, data in published.items():  # carried as they are: the repository's bytes, not re-encoded
        assert data == (ROOT / "data-packages" / "mnist" / "src" / "mnistkit_data_mnist" / name).read_bytes()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", str(ROOT), str(wheel)], check=True, env=pip_env)
    data_home = tmp_path / "empty-home"
    data_home.mkdir()
    prefix, how = _no_network_prefix()
    child_env = dict(pip_env, MNISTKIT_HOME=str(data_home), PYTHONNOUSERSITE="1")
    if not prefix:
        child_env.update(HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", NO_PROXY="")
    script = (
        "import json, sys, numpy as np, mnistkit\n"
        "(x, t), (xt, tt) = mnistkit.load_mnist(normalize=False)\n"
        "print(json.dumps({'shape': x.shape, 'first': t[:10].tolist(), 'counts': np.bincount(tt).tolist(),"
        " 'module_imported': 'mnistkit_data_mnist' in sys.modules,"
        " 'origin': mnistkit.datadist.installed('mnist')[0].describe(),"
        " 'folder': str(mnistkit.datadist.installed('mnist')[0].folder)}))\n"
    )
    started = time.perf_counter()
    done = subprocess.run([*prefix, python, "-c", script], env=child_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"load_mnist failed with no network ({how}):\n{done.stderr}"
    result = json.loads(done.stdout)
    assert result["shape"] == [60000, 784] and result["first"] == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert result["counts"] == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert result["origin"] == "mnistkit-data-mnist 1998.0" and not result["module_imported"]
    assert len(list((data_home / "mnist" / ".cache").glob("*.npy"))) == 4  # the cache: in the data folder
    folder = Path(result["folder"])
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".gz") == sorted(published)
    assert not [p for p in folder.iterdir() if p.suffix not in (".gz", ".py") and p.name != "__pycache__"]
    assert time.perf_counter() - started < 300
    # `mnistkit list` in that environment names the distribution as MNIST's source
    listing = subprocess.run(
        [*prefix, str(venv / "bin" / "mnistkit"), "list"], env=child_env, capture_output=True, text=True, check=True
    ).stdout
    assert "installed mnistkit-data-mnist 1998.0" in next(r for r in listing.splitlines() if r.startswith("mnist "))


@pytest.mark.parametrize("dataset, license_", [("mnist", "CC-BY-SA-3.0"), ("fashion-mnist", "MIT")])
def test_the_repositorys_data_packages_hold_exactly_the_published_files(dataset, license_):
    """What the wheels are built from: every registry file, verified as a download is, plus licence and README."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib (Python 3.11+) reads the packages' pyproject.toml")
    from mnistkit.integrity import verify
    from mnistkit.registry import get_dataset

    root = ROOT / "data-packages" / dataset
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    package = project["entry-points"]["mnistkit.data"][dataset]
    assert project["name"] == f"mnistkit-data-{dataset}" and project["license"] == license_
    assert project["version"].split(".")[0] in get_dataset(dataset).citation  # the year of the data
    folder = root / "src" / package
    ds = get_dataset(dataset)
    assert sorted(p.name for p in folder.iterdir() if p.name != "__pycache__") == sorted(
        ["__init__.py", *(spec.name for spec in ds.files)]
    )
    for spec in ds.files:
        verify(folder / spec.name, spec)  # raises if it is not the published data
    licence = (root / "LICENSE").read_text()
    assert ("Attribution-Share Alike 3.0" in licence) if dataset == "mnist" else ("MIT License" in licence)
