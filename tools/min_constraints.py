"""Print a pip constraints file pinning every direct dependency to the floor pyproject.toml declares.

Usage (from the repository root)::

    python tools/min_constraints.py [--extra test] > constraints-min.txt
    python -m pip install -c constraints-min.txt '.[test]'

CI generates the file from ``pyproject.toml`` on every run, so the floors tested and the floors
declared cannot drift apart.  A dependency without a ``>=`` floor, or with a specifier this script
does not understand, is an error: every direct dependency must state the oldest release it supports.
``tests/test_packaging.py`` checks the output against the declared metadata.

Needs only the standard library (``tomllib``, Python 3.11+; ``tomli`` is used on 3.10 when present).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name, optional [extras], then one comma-separated specifier list; markers are not used here
_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*?)\s*$")


def _load_pyproject(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def floor(requirement: str) -> tuple[str, str]:
    """The (name, minimum version) of a requirement such as ``"numpy>=1.23"``.

    Raises
    ------
    ValueError
        When the requirement declares no ``>=`` floor, or uses markers or specifiers
        (``<``, ``~=``, ``!=``, ...) this script does not turn into a pin.
    """
    if ";" in requirement:
        msg = f"{requirement!r}: environment markers are not supported by tools/min_constraints.py"
        raise ValueError(msg)
    match = _REQ.match(requirement)
    if not match:
        msg = f"{requirement!r}: not a requirement"
        raise ValueError(msg)
    name, spec = match.groups()
    floors = [s.strip()[2:].strip() for s in spec.split(",") if s.strip().startswith(">=")]
    others = [s.strip() for s in spec.split(",") if s.strip() and not s.strip().startswith(">=")]
    if len(floors) != 1 or others:
        msg = f"{requirement!r}: declare exactly one floor (name>=X), so CI can test the oldest supported release"
        raise ValueError(msg)
    return name.lower().replace("_", "-"), floors[0]


def constraints(pyproject: Path = ROOT / "pyproject.toml", extras: tuple[str, ...] = ("test",)) -> list[str]:
    """``name==floor`` lines for the core dependencies and the given optional extras."""
    project = _load_pyproject(pyproject)["project"]
    requirements = list(project.get("dependencies", []))
    for extra in extras:
        requirements += project.get("optional-dependencies", {})[extra]
    pins: dict[str, str] = {}
    for req in requirements:
        name, version = floor(req)
        if pins.get(name, version) != version:
            msg = f"{name}: two different floors declared ({pins[name]} and {version})"
            raise ValueError(msg)
        pins[name] = version
    return [f"{name}=={version}" for name, version in pins.items()]


def verify_installed(constraints_file: Path) -> list[str]:
    """The pins of ``constraints_file`` that the running interpreter does not have installed exactly."""
    from importlib.metadata import PackageNotFoundError, version

    def norm(v: str) -> tuple[int, ...]:  # "9" == "9.0.0"; enough for the plain release numbers pinned here
        parts = [int(p) for p in re.findall(r"\d+", v.split("+")[0])[:4]]
        while parts and parts[-1] == 0:
            parts.pop()
        return tuple(parts)

    wrong = []
    for line in constraints_file.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, pinned = line.partition("==")
        try:
            have = version(name)
        except PackageNotFoundError:
            have = "not installed"
        if have == "not installed" or norm(have) != norm(pinned):
            wrong.append(f"{name}: pinned {pinned}, installed {have}")
    return wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", action="append", default=None, help="optional extras to pin too (default: test)")
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    parser.add_argument(
        "--verify", type=Path, metavar="FILE", help="check that this interpreter has exactly the pins of FILE installed"
    )
    args = parser.parse_args(argv)
    if args.verify:
        wrong = verify_installed(args.verify)
        for problem in wrong:
            print(f"min_constraints: {problem}", file=sys.stderr)
        if not wrong:
            print(f"min_constraints: every pin of {args.verify.name} is installed")
        return 1 if wrong else 0
    try:
        lines = constraints(args.pyproject, tuple(args.extra if args.extra is not None else ["test"]))
    except (ValueError, KeyError) as err:
        print(f"min_constraints: {err}", file=sys.stderr)
        return 2
    print(f"# generated from {args.pyproject.name} by tools/min_constraints.py: every direct dependency at its floor")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
