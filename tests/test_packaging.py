"""The distribution's metadata: floors CI can pin, one version, type hints shipped, a licence."""

from __future__ import annotations

import importlib.metadata as md
import importlib.resources
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mnistkit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import min_constraints  # noqa: E402


def _pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:
        tomllib = pytest.importorskip("tomli", reason="Python 3.10 reads pyproject.toml with tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_constraints_pin_every_declared_dependency_at_its_floor():
    """CI's oldest cell installs these pins: every core and test dependency, each at its declared floor."""
    project = _pyproject()["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["test"]
    pins = dict(line.split("==") for line in min_constraints.constraints())
    assert len(pins) == len(declared)
    for req in declared:
        name, floor = req.split(">=")
        name = name.split("[")[0]  # moto[server]: a constraint names the distribution, never its extras
        assert pins[name.strip().lower()] == floor.strip(), req


@pytest.mark.parametrize(
    "req", ["numpy", "numpy<2", "numpy>=1.23,<2", "numpy~=1.23", "numpy>=1; python_version<'3.12'"]
)
def test_a_dependency_without_a_plain_floor_is_refused(req):
    with pytest.raises(ValueError):
        min_constraints.floor(req)


def test_floor_reads_names_and_extras():
    assert min_constraints.floor("Zlib_NG[extra] >= 0.4") == ("zlib-ng", "0.4")


def test_the_script_writes_a_constraints_file(tmp_path):
    pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "min_constraints.py")], capture_output=True, text=True, check=True
    ).stdout
    assert "numpy==1.23" in out.splitlines() and "pillow==9" in out.splitlines()
    constraints = tmp_path / "c.txt"
    constraints.write_text("numpy==0.0.1\n")  # certainly not what is installed
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "min_constraints.py"), "--verify", str(constraints)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "numpy: pinned 0.0.1" in proc.stderr


def test_version_comes_from_one_place():
    """``mnistkit/_version.py`` holds it; the build, the package root and the User-Agent read it from there."""
    from mnistkit import _version, sources

    assert md.version("mnistkit") == mnistkit.__version__ == _version.__version__
    project = _pyproject()
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "mnistkit._version.__version__"}
    assigned = [
        p.name
        for p in (ROOT / "src" / "mnistkit").rglob("*.py")
        if re.search(r"^__version__\s*=", p.read_text(encoding="utf-8"), re.M)
    ]
    assert assigned == ["_version.py"]
    assert f"mnistkit/{_version.__version__} " in sources._user_agent()


def test_type_hints_and_licence_are_shipped():
    assert importlib.resources.files("mnistkit").joinpath("py.typed").is_file()
    meta = md.metadata("mnistkit")
    assert meta.get("License-Expression") == "MIT" or meta.get("License") == "MIT"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
