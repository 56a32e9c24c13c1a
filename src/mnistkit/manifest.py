"""The cache manifests: declared records, one reader and one writer.

A cache entry ``.cache/<stem>.npy`` is described by ``.cache/<stem>.json``, a
:class:`CacheManifest`; a verified archive (EMNIST's ``gzip.zip``) by an
:class:`ArchiveManifest`, which lets later calls trust the file while its size and
modification time are unchanged.  Both are JSON objects on disk (the format of
mnistkit 0.1, unchanged); :func:`read_manifest` returns None for anything that is
not exactly one of them (absent, unreadable, damaged, JSON of another shape), which
only means the entry is rebuilt.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

#: Bumped when the meaning of a cache entry changes: older entries are then rebuilt.
CACHE_FORMAT = 1


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class CacheManifest:
    """What a ``.npy`` cache entry holds and how it was verified.

    Attributes
    ----------
    file : str
        The registry file (published name) the entry is the decoded array of.
    verified_from : str
        The name of the file it was decoded from (a spelling, or the archive member).
    container : str
        ``"gzip"``, ``"xz"`` or ``"idx"``: how that file was stored.
    upright : bool
        Whether images stored transposed (EMNIST) were turned upright.
    decoded_sha256 : str
        ``"sha256:<hex>"`` of the decoded IDX bytes, as verified.
    shape : tuple of int
    dtype : str
        NumPy type string of the array (``"|u1"``, ``">i4"``...).
    npy_size : int
        Size of the ``.npy`` file in bytes: the cheap check of every load.
    created : str
        UTC time of writing, ISO 8601.
    format : int
        :data:`CACHE_FORMAT` at writing.
    """

    file: str
    verified_from: str
    container: str
    upright: bool
    decoded_sha256: str
    shape: tuple[int, ...]
    dtype: str
    npy_size: int
    created: str = ""
    format: int = CACHE_FORMAT


@dataclass(frozen=True)
class ArchiveManifest:
    """A verified archive: its pinned checksum, and the size and time it was verified at.

    Attributes
    ----------
    file : str
        The archive's published name.
    checksum : str
        The registry checksum it matched (``"sha256:<hex>"`` or ``"md5:<hex>"``; "" if none).
    size, mtime_ns : int
        ``os.stat`` of the file when it was verified.
    created : str
    format : int
    """

    file: str
    checksum: str
    size: int
    mtime_ns: int
    created: str = ""
    format: int = CACHE_FORMAT


Manifest = CacheManifest | ArchiveManifest

# JSON types each field must have on disk (bool is checked apart: it is also an int).
_TYPES: dict[str, type | tuple[type, ...]] = {
    "file": str,
    "verified_from": str,
    "container": str,
    "upright": bool,
    "decoded_sha256": str,
    "shape": list,
    "dtype": str,
    "npy_size": int,
    "created": str,
    "format": int,
    "checksum": str,
    "size": int,
    "mtime_ns": int,
}


#: Per record: (field, JSON type, may be absent) -- "created" and "upright" are optional in every version written.
_FIELDS: dict[type, tuple[tuple[str, Any, bool], ...]] = {
    kind: tuple((f.name, _TYPES[f.name], f.name in ("created", "upright")) for f in fields(kind))
    for kind in (CacheManifest, ArchiveManifest)
}


def read_manifest(path: Path) -> Manifest | None:
    """The manifest at ``path``, or None when it is absent, unreadable or not exactly a manifest."""
    import json  # here, not at the top: `import mnistkit` stays light

    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read())
    except (OSError, ValueError, RecursionError):  # RecursionError: "[[[[..." nested past the parser's depth
        return None
    if not isinstance(data, dict):
        return None
    kind = CacheManifest if "npy_size" in data else ArchiveManifest
    values: dict[str, Any] = {}
    for name, want, optional in _FIELDS[kind]:  # read on every load: a plain loop over a precomputed table
        if name not in data:
            if optional:
                continue
            return None
        value = data[name]
        if (want is int and isinstance(value, bool)) or not isinstance(value, want):
            return None
        values[name] = value
    if kind is CacheManifest:
        shape = values["shape"]
        if not all(type(d) is int for d in shape):
            return None
        values["shape"] = tuple(shape)
        values.setdefault("upright", False)
    return kind(**values)


def write_manifest(path: Path, manifest: Manifest) -> None:
    """Write ``manifest`` to ``path`` atomically (a temporary file renamed into place)."""
    import json

    from .layout import create_temp, unlink

    data = asdict(manifest)
    if isinstance(manifest, CacheManifest):
        data["shape"] = list(manifest.shape)
    if not data.get("created"):
        data["created"] = _now()
    fd, tmp = create_temp(path.parent, f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(json.dumps(data, indent=1).encode())
        os.replace(tmp, path)
    except BaseException:
        unlink(tmp)
        raise
