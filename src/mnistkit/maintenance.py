"""Looking after a data folder: check, discard and clean (the ``verify`` and ``clean`` commands).

These read the store's records (its paths, manifests and locks) but are not part of
loading: a loader never re-hashes a cache entry or deletes a user's file.  Each
operation takes the :class:`~mnistkit.store.Store` of one dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _winfs
from ._log import log
from .errors import ChecksumError, IdxFormatError, files_in_use
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
        npy_path = store.npy_path(spec, store.read_manifest(spec))  # the manifest may name another (Windows)
        findings.append(Finding(spec, "cache", npy_path, _cache_problem(store, spec)))
    return findings


def _cache_problem(store: Store, spec: FileSpec) -> str | None:
    """Why ``spec``'s cache entry is not the published data, or None."""
    manifest = store.read_manifest(spec)
    npy_path = store.npy_path(spec, manifest)
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


def _unlink_unless_in_use(path: Path) -> bool:
    """Delete ``path`` unless a program holds it (Windows: open or mapped); whether it is gone."""
    if _winfs.unlink_unless_in_use(path):
        return True
    log.info("%s is in use: left for later", path)
    return False


def discard(store: Store, finding: Finding) -> None:
    """Delete the copy a finding is about (for a cache entry: the ``.npy`` and its manifest).

    A cache entry dies with its manifest, which goes first: its ``.npy`` may still be mapped
    by a process (Windows cannot delete it then) and is removed later, while the rebuild
    goes beside it.  A downloaded file in use is an error: the fetch could not replace it.

    Raises
    ------
    DataFolderError
        When a downloaded file is in use by another program (Windows).
    """
    with store.lock(finding.spec):
        if finding.copy == "cache":
            npy_path, manifest_path = store.cache_paths(finding.spec)
            unlink(manifest_path)
            for path in dict.fromkeys([finding.path, npy_path]):
                _unlink_unless_in_use(path)
        elif not _unlink_unless_in_use(finding.path):
            raise files_in_use([finding.path], "delete the damaged file")


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
        # the manifest first: deleted before the .npy, an entry still in use (Windows) is dead at once
        (
            "cache",
            [
                store.cache_paths(spec)[1],
                *store.entry_files(spec),
                *store.cache_folder.glob(f"{temp_prefix(spec.stem)}*.tmp"),
            ],
        ),
    )
    found = []
    for kind, paths in groups:
        for path in paths:
            try:
                found.append((path, kind, path.stat().st_size))
            except OSError:
                continue
    return found


def clean(store: Store, spec: FileSpec, kinds: tuple[str, ...] = KINDS, in_use: list[Path] | None = None) -> int:
    """Delete the local copies of ``spec`` of the given kinds (see :func:`local_files`): by default all.

    All or nothing: a file standing where one of the store's folders belongs is reported
    (:class:`~mnistkit.errors.DataFolderError`) before anything is deleted.  Files a program
    holds (Windows: open or mapped) are the exception: everything else is deleted, and the
    manifest goes before the ``.npy``, so an entry whose ``.npy`` is still in use is dead at
    once and never loaded again.

    Parameters
    ----------
    store : Store
    spec : FileSpec
    kinds : tuple of str
        Which of :data:`KINDS` to delete.
    in_use : list, optional
        Where to put files that could not be deleted because a program holds them (Windows);
        when not given, such files raise instead, after everything else is gone.

    Returns
    -------
    int
        Bytes freed.

    Raises
    ------
    DataFolderError
        Files in use, when ``in_use`` is not given.
    """
    if not store.folder.is_dir():
        return 0
    store.check_folder(store.cache_folder)
    freed = 0
    busy: list[Path] = []
    with store.lock(spec):  # never pull a file from under a process that is building it
        paths = [path for path, kind, _ in local_files(store, spec) if kind in kinds]
        for path in paths:
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if _unlink_unless_in_use(path):
                freed += size
            else:
                busy.append(path)
    if in_use is not None:
        in_use.extend(busy)
    elif busy:
        raise files_in_use(busy, "delete")
    return freed
