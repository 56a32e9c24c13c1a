"""Looking after a data folder: check, discard and clean (the ``verify`` and ``clean`` commands).

These read the store's records (its paths, manifests and locks) but are not part of
loading: a loader never re-hashes a cache entry or deletes a user's file.  Each
operation takes the :class:`~mnistkit.store.Store` of one dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ChecksumError, IdxFormatError
from .idx import IdxHeader
from .integrity import split_digest, verify
from .layout import part_path, record_path, temp_prefix, unlink
from .manifest import CacheManifest
from .registry import FileSpec
from .store import Store

__all__ = ["KINDS", "Finding", "check", "clean", "discard", "local_files"]


@dataclass(frozen=True)
class Finding:
    """The verdict of :func:`check` on one copy of a file in the data folder.

    Attributes
    ----------
    spec : FileSpec
        The registry file it stands for.
    copy : str
        ``"file"`` (downloaded or hand-placed) or ``"cache"`` (the ``.npy`` entry).
    path : pathlib.Path
        The file checked.
    problem : str or None
        What is wrong, or None when it holds exactly the published data.
    """

    spec: FileSpec
    copy: str
    path: Path
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the file holds exactly the published data."""
        return self.problem is None


def check(store: Store, spec: FileSpec) -> list[Finding]:
    """Re-hash every local copy of ``spec`` and its cache entry against the registry.

    Unlike :meth:`Store.cached`, this reads every byte: it finds a cache entry whose
    pixels changed after it was written, which the cheap check cannot see.

    Parameters
    ----------
    store : Store
        The dataset's folder.
    spec : FileSpec
        One of the dataset's files.

    Returns
    -------
    list of Finding
        One per copy present (every spelling, a set-aside download, then the cache
        entry); empty when nothing of ``spec`` is here.
    """
    findings = []
    for path in store.candidates(spec):
        try:
            verify(path, spec, source=str(path))
            problem = None
        except (IdxFormatError, ChecksumError) as err:
            problem = str(err)
        except OSError as err:
            problem = f"{path}: cannot be read: {err.strerror or err}"
        findings.append(Finding(spec, "file", path, problem))
    npy_path, manifest_path = store.cache_paths(spec)
    # An archive's manifest records that the archive was verified; it has no array to check.
    if spec.kind != "archive" and (npy_path.exists() or manifest_path.exists()):
        findings.append(Finding(spec, "cache", npy_path, _cache_problem(store, spec)))
    return findings


def _cache_problem(store: Store, spec: FileSpec) -> str | None:
    """Why ``spec``'s cache entry is not the published data, or None."""
    npy_path, _ = store.cache_paths(spec)
    manifest = store.read_manifest(spec)
    if not isinstance(manifest, CacheManifest):
        return f"{npy_path}: its manifest is missing or unreadable"
    if store.cached(spec) is None:
        return f"{npy_path}: its size, header or manifest do not match the registry"
    # The .npy payload is exactly the IDX payload, so header + payload hash to the decoded checksum.
    array = np.load(npy_path, mmap_mode="r", allow_pickle=False)
    import hashlib

    hasher = hashlib.sha256(IdxHeader(spec.type_code, tuple(spec.shape)).to_bytes())
    if spec.transposed:  # cached upright (EMNIST): hash the images as published, transposed back
        per_block = max(1, (1 << 24) // max(1, array[0].nbytes)) if len(array) else 1
        for start in range(0, len(array), per_block):
            block = np.ascontiguousarray(array[start : start + per_block].transpose(0, 2, 1))
            hasher.update(block.reshape(-1).view(np.uint8).data)
    else:
        flat = array.reshape(-1).view(np.uint8)
        step = 1 << 24
        for start in range(0, flat.size, step):
            hasher.update(flat[start : start + step])
    want = split_digest(spec.decoded_sha256 or manifest.decoded_sha256)[1]
    if hasher.hexdigest() != want:
        return f"{npy_path}: its content has sha256 {hasher.hexdigest()[:16]}..., expected {want[:16]}..."
    return None


def discard(store: Store, finding: Finding) -> None:
    """Delete the copy a finding is about (for a cache entry: the ``.npy`` and its manifest)."""
    paths = [finding.path]
    if finding.copy == "cache":
        paths = list(store.cache_paths(finding.spec))
    with store.lock(finding.spec):
        for path in paths:
            unlink(path)


#: What :func:`local_files` sorts a dataset file's copies into.
KINDS = ("data", "partial", "cache")


def local_files(store: Store, spec: FileSpec) -> list[tuple[Path, str, int]]:
    """Every file of ``spec`` in the data folder, as ``(path, kind, size in bytes)``.

    ``kind`` is ``"data"`` (a downloaded or hand-placed file: getting it back means
    downloading it again), ``"partial"`` (an unfinished download) or ``"cache"`` (built
    from the data, rebuilt when needed).
    """
    if not store.folder.is_dir():
        return []
    part = part_path(store.folder, spec.name)
    groups = (
        ("data", store.candidates(spec)),
        ("partial", [part, record_path(part)]),
        ("cache", [*store.cache_paths(spec), *store.cache_folder.glob(f"{temp_prefix(spec.stem)}*.tmp")]),
    )
    found = []
    for kind, paths in groups:
        for path in paths:
            try:
                found.append((path, kind, path.stat().st_size))
            except OSError:
                continue
    return found


def clean(store: Store, spec: FileSpec, kinds: tuple[str, ...] = KINDS) -> int:
    """Delete the local copies of ``spec`` of the given kinds (see :func:`local_files`): by default all.

    All or nothing: a file standing where one of the store's folders belongs is reported
    (:class:`~mnistkit.errors.DataFolderError`) before anything is deleted.

    Returns
    -------
    int
        Bytes freed.
    """
    if not store.folder.is_dir():
        return 0
    store.check_folder(store.cache_folder)
    freed = 0
    with store.lock(spec):  # never pull a file from under a process that is building it
        paths = [path for path, kind, _ in local_files(store, spec) if kind in kinds]
        for path in paths:
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                continue
            freed += size
    return freed
