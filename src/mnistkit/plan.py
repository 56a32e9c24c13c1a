"""Decide, then act: what to do with one registry file, from what is on disk.

:func:`plan` is a pure function of the registry entry and an :class:`OnDisk`
observation (the manifest as read, the ``.npy`` size, the local copies present,
a kept ``.part``, whether the folder can be written and whether downloading is
allowed).  It does no I/O, so every case is a row of a table in the tests; the
store observes, asks, and runs the answer with small plain I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from .manifest import CACHE_FORMAT, ArchiveManifest, CacheManifest, Manifest
from .registry import FileSpec


class Action(enum.Enum):
    """What the store does with one file."""

    USE = "use it as it is"  # the cache entry (or a verified archive) passes the cheap check
    BUILD = "verify a local copy and cache it; download if none is right"
    FETCH = "download it, verify it, cache it"
    DECODE = "verify a local copy and decode it in memory: the folder cannot be written"
    FAIL = "give up: nothing usable here and nothing can be obtained"


@dataclass(frozen=True)
class OnDisk:
    """What the data folder holds for one file, as observed.

    Attributes
    ----------
    manifest : CacheManifest or ArchiveManifest or None
        As :func:`~mnistkit.manifest.read_manifest` returned it.
    npy_size : int or None
        Size of the cache entry's ``.npy``; None when absent.
    files : tuple of (path, size, mtime_ns)
        Local copies present (every spelling, then a set-aside download), in order.
    part_size : int
        Bytes of a kept ``.part`` (a download to resume); 0 when none.
    writable : bool
        Whether the cache folder exists (or could be made) and can be written.
    can_fetch : bool
        Whether downloading is allowed (a downloader is set up).
    """

    manifest: Manifest | None = None
    npy_size: int | None = None
    files: tuple[tuple[Path, int, int], ...] = ()
    part_size: int = 0
    writable: bool = True
    can_fetch: bool = True


@dataclass(frozen=True)
class Plan:
    """The decision: an action, the local files it concerns (in order), and why."""

    action: Action
    files: tuple[Path, ...] = ()
    reason: str = ""


def cache_matches(spec: FileSpec, manifest: Manifest | None, npy_size: int | None, dtype: str) -> bool:
    """The cheap check: the manifest describes this file as the registry does, and the size fits."""
    return (
        isinstance(manifest, CacheManifest)
        and manifest.format == CACHE_FORMAT
        and manifest.file == spec.name
        and manifest.dtype == dtype
        and (not spec.decoded_sha256 or manifest.decoded_sha256 == spec.decoded_sha256)
        and manifest.upright == spec.transposed
        and npy_size is not None
        and npy_size == manifest.npy_size
    )


def archive_trusted(archive: FileSpec, manifest: Manifest | None, size: int, mtime_ns: int) -> bool:
    """Whether an archive of this size and time is the one a manifest says was verified."""
    return (
        isinstance(manifest, ArchiveManifest)
        and manifest.format == CACHE_FORMAT
        and manifest.file == archive.name
        and manifest.checksum == (archive.sha256 or archive.md5 or "")
        and (manifest.size, manifest.mtime_ns) == (size, mtime_ns)
    )


def plan(spec: FileSpec, on_disk: OnDisk, dtype: str = "") -> Plan:
    """What to do with ``spec``, given ``on_disk``.  Pure: no I/O.

    Parameters
    ----------
    spec : FileSpec
        The registry entry (an IDX file or an archive).
    on_disk : OnDisk
        The observation.
    dtype : str
        NumPy type string the cache entry must have (IDX files only).

    Returns
    -------
    Plan
    """
    paths = tuple(path for path, _, _ in on_disk.files)
    if spec.kind == "archive":
        for path, size, mtime_ns in on_disk.files:
            if archive_trusted(spec, on_disk.manifest, size, mtime_ns):
                return Plan(Action.USE, (path,), "verified before, unchanged since")
    elif cache_matches(spec, on_disk.manifest, on_disk.npy_size, dtype):
        return Plan(Action.USE, (), "the cache entry matches the registry")
    if not on_disk.writable:
        if paths:
            return Plan(Action.DECODE, paths, "the folder cannot be written")
        return Plan(Action.FAIL, (), "cannot be written, so nothing can be downloaded there")
    if paths:
        return Plan(Action.BUILD, paths, _why_build(on_disk))
    if on_disk.can_fetch:
        resume = f"; resuming at byte {on_disk.part_size}" if on_disk.part_size else ""
        return Plan(Action.FETCH, (), "no local copy" + resume)
    return Plan(Action.FAIL, (), "downloading is disabled")


def _why_build(on_disk: OnDisk) -> str:
    if on_disk.manifest is None and on_disk.npy_size is None:
        return "not cached yet"
    if on_disk.manifest is None:
        return "the cache entry has no readable manifest"
    return "the cache entry does not match the registry"
