"""The data folder: where files live, locks, and the memory-mapped cache.

Layout (the same one mirrors use, so a data folder can be copied or served)::

    <data home>/<dataset>/<published file name>       downloaded or hand-placed files
    <data home>/<dataset>/.cache/<stem>.npy          decoded array, loads by memory map
    <data home>/<dataset>/.cache/<stem>.json         manifest: what was verified, and how big
    <data home>/<dataset>/.locks/<stem>.lock         one inter-process lock per file

Datasets read from one archive share a folder (``emnist/gzip.zip``): the
archive is verified once (its manifest records the size and modification time
it was verified at), and each member is streamed from it into its own cache
entry, never unpacked to disk.  Images stored transposed are cached upright.

A cache entry is used only when its manifest matches the registry and the
``.npy`` has the size the manifest records (the cheap check); otherwise it is
rebuilt from a verified file.  Every file is written under a temporary name in
the same folder and renamed into place, so a process killed at any point never
leaves a half-written file under a final name.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from . import _winfs
from ._log import log
from .errors import (
    ChecksumError,
    DataFolderError,
    DownloadError,
    IdxFormatError,
    LockTimeout,
    MissingFilesError,
    files_in_use,
    write_failed,
)
from .idx import IDX_TYPES, IdxHeader
from .integrity import Sink, split_digest, verify
from .registry import Dataset, FileSpec


CACHE_FORMAT = 1
CACHE_DIR = ".cache"
LOCK_DIR = ".locks"
ENV_HOME = "MNISTKIT_HOME"

#: A fetcher downloads ``spec`` into ``folder`` under its published name, verified,
#: and returns the path; it raises DownloadError or MissingFilesError.
Fetcher = Callable[[Dataset, FileSpec, Path], Path]


def resolve_home(data_home: str | os.PathLike | None = None) -> Path:
    """The data folder: ``data_home``, else ``$MNISTKIT_HOME``, else the user cache folder.

    Parameters
    ----------
    data_home : path-like, optional
        An explicit folder.

    Returns
    -------
    pathlib.Path
        An absolute path (not created here).
    """
    if data_home is not None and str(data_home) != "":
        return Path(data_home).expanduser().absolute()
    env = os.environ.get(ENV_HOME, "").strip()
    if env:
        return Path(env).expanduser().absolute()
    import platformdirs  # imported late: keeps `import mnistkit` cheap

    return Path(platformdirs.user_cache_dir("mnistkit", appauthor=False)).absolute()


@functools.lru_cache(maxsize=64)
def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """The bytes of a version 1.0 .npy header for a C-ordered array."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype.str, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _map_npy(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
    """Map a cache ``.npy`` copy-on-write, or None if its header is not exactly the one we write.

    Comparing the header bytes with the ones :func:`_npy_header` produces is both stricter and
    cheaper than ``np.load(mmap_mode="c")``, which parses the header with ``ast`` and resolves
    the path on every call: the warm path is a few hundred microseconds per file cheaper.
    """
    import mmap

    header = _npy_header(shape, dtype)
    with open(path, "rb") as fh:
        if fh.read(len(header)) != header:
            return None
        # ACCESS_COPY: a private mapping, so callers may write into the array without touching the cache
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
    return np.ndarray(shape, dtype=dtype, buffer=mm, offset=len(header))


def _create_temp(folder: Path, prefix: str, suffix: str) -> tuple[int, str]:
    """Create a new, uniquely named file for writing; returns (fd, path).

    Unlike ``tempfile.mkstemp`` (mode 0600, which would hide a shared cache from the
    other users of a data folder), the file gets 0666 less the umask, applied by the
    kernel: nothing here reads or changes the process-wide umask, so threads are safe.
    """
    import secrets

    for _ in range(100):
        path = os.path.join(folder, f"{prefix}{secrets.token_hex(6)}{suffix}")
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), path
        except FileExistsError:
            continue
    msg = f"{folder}: could not create a temporary file"
    raise DataFolderError(msg)


def _manifest_bytes(manifest: dict) -> bytes:
    import json

    return json.dumps(manifest, indent=1).encode()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = _create_temp(path.parent, f".{path.name}.", ".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        _winfs.replace(tmp, path)  # Windows: retried while a reader holds the old file for a moment
    except BaseException:
        _unlink(tmp)
        raise


def _with_rejected(reason: str, problems: list[str]) -> str:
    """``reason``, plus the local files that were found but are not the published data."""
    return reason + "; files found but rejected: " + " | ".join(problems) if problems else reason


def _unlink(path: str | os.PathLike) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _unlink_unless_in_use(path: str | os.PathLike) -> bool:
    """Delete ``path`` unless a program holds it (Windows: open or mapped); whether it is gone."""
    try:
        _unlink(path)
    except OSError as err:
        if not _winfs.in_use(err):
            raise
        log.info("%s is in use: left for later", path)
        return False
    return True


def _is_entry_name(stem: str, name: str) -> bool:
    """Whether ``name`` is a cache ``.npy`` of ``stem``: ``<stem>.npy`` or, built beside a mapped one, ``<stem>.<12 hex>.npy``."""
    if name == f"{stem}.npy":
        return True
    token = name[len(stem) + 1 : -len(".npy")]
    return (
        name.startswith(stem + ".") and name.endswith(".npy") and len(token) == 12
        and all(c in "0123456789abcdef" for c in token)
    )


@dataclass(frozen=True)
class Finding:
    """The verdict of :meth:`Store.check` on one file of the data folder.

    Attributes
    ----------
    spec : FileSpec
        The registry file it stands for.
    kind : str
        ``"file"`` (downloaded or hand-placed) or ``"cache"`` (the ``.npy`` entry).
    path : pathlib.Path
        The file checked.
    problem : str or None
        What is wrong, or None when it holds exactly the published data.
    """

    spec: FileSpec
    kind: str
    path: Path
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the file holds exactly the published data."""
        return self.problem is None


class Store:
    """One dataset's folder in the data home.

    Parameters
    ----------
    dataset : Dataset
        The registry entry.
    data_home : path-like, optional
        See :func:`resolve_home`.
    fetcher : callable, optional
        How to obtain a missing file; ``None`` means never download.
    lock_timeout : float
        Seconds to wait for another process that is building the same file.
    """

    def __init__(
        self,
        dataset: Dataset,
        data_home: str | os.PathLike | None = None,
        *,
        fetcher: Fetcher | None = None,
        lock_timeout: float = 3600.0,
    ) -> None:
        self.dataset = dataset
        self.home = resolve_home(data_home)
        self.folder = self.home / dataset.folder
        self.cache_folder = self.folder / CACHE_DIR
        self.fetcher = fetcher
        self.lock_timeout = lock_timeout

    # --- paths -----------------------------------------------------------------------------

    def cache_paths(self, spec: FileSpec) -> tuple[Path, Path]:
        """The ``.npy`` and manifest paths of ``spec``'s cache entry."""
        return self.cache_folder / f"{spec.stem}.npy", self.cache_folder / f"{spec.stem}.json"

    def npy_path(self, spec: FileSpec, manifest: dict | None) -> Path:
        """The ``.npy`` a manifest names, else the usual ``<stem>.npy``.

        A rebuild that could not replace an entry some process still maps (Windows) writes the
        new one beside it under ``<stem>.<token>.npy`` and records that name in the manifest.
        """
        name = (manifest or {}).get("npy")
        if isinstance(name, str) and _is_entry_name(spec.stem, name):
            return self.cache_folder / name
        return self.cache_paths(spec)[0]

    def entry_files(self, spec: FileSpec) -> list[Path]:
        """Every ``.npy`` of ``spec`` in the cache folder: the entry and any it superseded still there."""
        try:
            names = os.listdir(self.cache_folder)
        except OSError:
            return []
        return [self.cache_folder / n for n in sorted(names) if _is_entry_name(spec.stem, n)]

    def candidates(self, spec: FileSpec) -> list[Path]:
        """Existing files in the dataset folder that may hold ``spec`` (any spelling)."""
        found = []
        for name in spec.spellings:
            path = self.folder / name
            if path.is_file():
                found.append(path)
        return found

    # --- the warm path: no lock, no hashing --------------------------------------------------

    def read_manifest(self, spec: FileSpec) -> dict | None:
        """The manifest of ``spec``'s cache entry, or None when it is absent or unreadable."""
        _, manifest_path = self.cache_paths(spec)
        try:
            import json  # here, not at the top: `import mnistkit` stays light

            return json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def cached(self, spec: FileSpec) -> np.ndarray | None:
        """Map ``spec``'s cache entry copy-on-write if it passes the cheap check, else None.

        The cheap check: the manifest is of this format, names this file and the
        registry's decoded checksum, and the ``.npy`` has the recorded size and a
        header of the recorded shape and type.  A truncated or foreign entry fails it.
        """
        manifest = self.read_manifest(spec)
        if manifest is None:
            return None
        npy_path = self.npy_path(spec, manifest)
        dtype = _dtype_of(spec)
        try:
            if (
                manifest.get("format") != CACHE_FORMAT
                or manifest.get("file") != spec.name
                or manifest.get("dtype") != dtype.str
                or (spec.decoded_sha256 and manifest.get("decoded_sha256") != spec.decoded_sha256)
                or manifest.get("upright", False) != spec.transposed
                or npy_path.stat().st_size != manifest.get("npy_size")
            ):
                return None
            return _map_npy(npy_path, tuple(spec.shape), dtype)
        except (OSError, TypeError, ValueError):  # unreadable, or shorter than its header says: rebuild
            return None

    # --- the cold path ----------------------------------------------------------------------

    def load(self, spec: FileSpec) -> np.ndarray:
        """The decoded array of ``spec``: from the cache, else built from a verified file.

        Parameters
        ----------
        spec : FileSpec
            One of the dataset's files.

        Returns
        -------
        numpy.ndarray
            A copy-on-write memory map of the cache (or, in a read-only data
            folder without a cache, an array decoded in memory).

        Raises
        ------
        MissingFilesError, DownloadError, ChecksumError, IdxFormatError, DataFolderError, LockTimeout
        """
        array = self.cached(spec)
        if array is not None:
            return array
        self._check_path_length()  # not the read-only route below: this folder cannot be used at all
        try:
            self._make_folder(self.cache_folder)
        except DataFolderError:
            # A read-only data folder that already holds the files is still usable, uncached.
            return self._load_uncached(spec)
        with self.lock(spec):
            array = self.cached(spec)  # another process may have built it while we waited
            if array is not None:
                return array
            if spec.archive is None:
                self._obtain(spec, lambda path: self.build_cache(path, spec))
            else:
                archive = self.archive_path(self.dataset.file(spec.archive))
                from .archive import open_member  # zipfile: imported only for archive datasets

                with open_member(archive, spec.member) as stream:  # streamed: never unpacked
                    self.build_cache(stream, spec)
            array = self.cached(spec)
            if array is None:  # pragma: no cover - only if the folder changes under us
                msg = f"{self.cache_folder}: the cache entry for {spec.name} vanished right after it was written"
                raise DataFolderError(msg)
            return array

    def archive_path(self, archive: FileSpec) -> Path:
        """The path of a verified archive, obtained (and verified) first if need be.

        The full check (size and checksum) runs once; its manifest records the
        file's size and modification time, and later calls trust the file while
        both are unchanged, so the members of a 562 MB archive are not each
        preceded by a full hash.

        Raises
        ------
        MissingFilesError, DownloadError, ChecksumError, DataFolderError, LockTimeout
        """
        path = self.folder / archive.name
        with self.lock(archive):
            manifest = self.read_manifest(archive)
            try:
                stat = path.stat()
            except OSError:
                stat = None
            if (
                manifest is not None
                and stat is not None
                and manifest.get("format") == CACHE_FORMAT
                and manifest.get("file") == archive.name
                and manifest.get("checksum") == (archive.sha256 or archive.md5 or "")
                and [stat.st_size, stat.st_mtime_ns] == [manifest.get("size"), manifest.get("mtime_ns")]
            ):
                return path
            return self._obtain(
                archive,
                lambda found: self._vouch_for_archive(found, archive),
                fetched=lambda got: self._record_archive(got, archive),  # the fetcher verified it
            )

    def _vouch_for_archive(self, path: Path, archive: FileSpec) -> None:
        verify(path, archive, source=str(path))
        self._record_archive(path, archive)

    def _record_archive(self, path: Path, archive: FileSpec) -> None:
        """Write the manifest that lets later calls trust the verified archive at ``path``."""
        self._make_folder(self.cache_folder)
        stat = path.stat()
        manifest = {
            "format": CACHE_FORMAT,
            "file": archive.name,
            "checksum": archive.sha256 or archive.md5 or "",
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _atomic_write_bytes(self.cache_paths(archive)[1], _manifest_bytes(manifest))

    def read_member(self, archive: FileSpec, member: str) -> bytes:
        """The bytes of a small member of a verified archive (EMNIST's mapping files)."""
        from .archive import read_member

        return read_member(self.archive_path(archive), member)

    def _obtain(
        self, spec: FileSpec, use: Callable[[Path], None], fetched: Callable[[Path], None] | None = None
    ) -> Path:
        """Find or fetch a file that ``use`` accepts (it raises IdxFormatError/ChecksumError if not); its path.

        A downloaded file goes to ``fetched`` instead when given: the fetcher has verified it already.
        """
        problems: list[str] = []
        for path in self.candidates(spec):
            try:
                use(path)
            except (IdxFormatError, ChecksumError) as err:
                # Not the published data. Hand-placed files are the user's: leave them, say so.
                # str(err): a kept log record must not keep the traceback, whose frames map the file
                # (Windows could then not replace it until the record goes)
                log.warning("ignoring %s: %s", path, str(err))
                problems.append(str(err))
                continue
            return path
        if self.fetcher is None:
            reason = _with_rejected("downloading is disabled", problems)
            raise MissingFilesError(self.dataset.name, [spec.name], self.folder, self.dataset.urls(spec), reason)
        try:
            path = self.fetcher(self.dataset, spec, self.folder)
        except MissingFilesError as err:
            if not problems:
                raise
            reason = _with_rejected(err.reason, problems)
            raise MissingFilesError(err.dataset, err.missing, err.folder, err.urls, reason) from None
        except DownloadError as err:
            if not problems:
                raise
            local = [(str(self.folder), f"found but rejected: {p}") for p in problems]
            raise DownloadError(err.file_name, local + err.attempts, err.folder) from None
        (fetched or use)(path)
        return path

    def build_cache(self, path: Path | BinaryIO, spec: FileSpec) -> None:
        """Verify ``path`` against ``spec`` and write the cache entry in the same pass.

        The ``.npy`` is streamed to a temporary file while the decoded bytes are
        hashed; only if the hash matches is it renamed into place, and only then
        is the manifest written (also atomically).  Callers hold the file's lock.
        ``path`` may be a binary stream (an archive member); memory use stays at
        a few chunks whatever the file's size.
        """
        npy_path, manifest_path = self.cache_paths(spec)
        dtype = _dtype_of(spec)
        # Leftovers of a process killed mid-write: safe to remove, we hold the lock.
        for stale in self.cache_folder.glob(f".{spec.stem}.*.tmp"):
            _unlink(stale)
        fd, tmp = _create_temp(self.cache_folder, f".{spec.stem}.", ".npy.tmp")
        try:
            with os.fdopen(fd, "wb", buffering=0) as fh:

                def write(piece) -> None:
                    # An unbuffered write may be short (a disk filling up): loop, so the error
                    # comes from the next call instead of bytes silently missing.
                    view = memoryview(piece).cast("B")
                    try:
                        while view:
                            view = view[fh.write(view) :]
                    except OSError as err:
                        raise write_failed(self.cache_folder, err) from err

                write(_npy_header(tuple(spec.shape), dtype))
                verified = verify(path, spec, sink=_sink(spec, write), source=str(getattr(path, "name", path)))
                size = fh.tell()
            npy_path = self._install_npy(tmp, npy_path, spec)
        except BaseException:
            _unlink(tmp)
            raise
        manifest = {
            "format": CACHE_FORMAT,
            "file": spec.name,
            "npy": npy_path.name,
            "verified_from": Path(getattr(path, "name", path)).name,
            "container": verified.container,
            "upright": spec.transposed,
            "decoded_sha256": verified.decoded_sha256,
            "shape": list(spec.shape),
            "dtype": dtype.str,
            "npy_size": size,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _atomic_write_bytes(manifest_path, _manifest_bytes(manifest))
        log.info("cached %s from %s (%s, verified)", spec.name, path, verified.container)
        for old in self.entry_files(spec):  # entries superseded by this one, once nothing maps them
            if old != npy_path:
                try:
                    _unlink_unless_in_use(old)
                except OSError as err:  # tidying only: the new entry is in place whatever happens here
                    log.info("could not remove the superseded %s: %s", old, err)

    def _install_npy(self, tmp: str, npy_path: Path, spec: FileSpec) -> Path:
        """Rename the finished ``tmp`` to ``npy_path``, or beside it when that is in use; the name used.

        Windows refuses to replace a file that any process maps, and a loaded array is a map of
        the cache: then the new entry gets a name of its own (recorded in its manifest, which
        readers follow) and the old file is deleted by a later rebuild or ``clean`` once free.
        On POSIX the first rename always succeeds.  (Callers hold the file's lock.)
        """
        try:
            _winfs.replace(tmp, npy_path)
            return npy_path
        except OSError as err:
            if not _winfs.in_use(err):
                raise
        import secrets

        beside = self.cache_folder / f"{spec.stem}.{secrets.token_hex(6)}.npy"
        os.replace(tmp, beside)  # a name nobody can hold yet
        log.info("%s is in use by another process: cache rebuilt beside it as %s", npy_path, beside.name)
        return beside

    def _load_uncached(self, spec: FileSpec) -> np.ndarray:
        """Decode a verified file into memory: the read-only data folder route."""
        problems = []
        archive = None if spec.archive is None else self.dataset.file(spec.archive)
        for path in self.candidates(archive or spec):
            out = np.empty(spec.shape, dtype=_dtype_of(spec))
            keep = _sink(spec, _filler(out))
            try:
                if archive is None:
                    verify(path, spec, sink=keep, source=str(path))
                else:
                    verify(path, archive, source=str(path))
                    from .archive import open_member

                    with open_member(path, spec.member) as stream:
                        verify(stream, spec, sink=keep, source=stream.name)
            except (IdxFormatError, ChecksumError) as err:
                problems.append(str(err))
                continue
            log.warning("%s is not writable: using %s without caching it", self.folder, path)
            return out
        reason = _with_rejected(f"{self.folder} cannot be written, so nothing can be downloaded there", problems)
        missing = archive or spec
        raise MissingFilesError(self.dataset.name, [missing.name], self.folder, self.dataset.urls(missing), reason)

    # --- checking and removing (the `verify` and `clean` commands) ----------------------------

    def check(self, spec: FileSpec) -> list[Finding]:
        """Re-hash every local copy of ``spec`` and its cache entry against the registry.

        Unlike :meth:`cached`, this reads every byte: it finds a cache entry whose
        pixels changed after it was written, which the cheap check cannot see.

        Parameters
        ----------
        spec : FileSpec
            One of the dataset's files.

        Returns
        -------
        list of Finding
            One per file present (every spelling, then the cache entry); empty
            when nothing of ``spec`` is here.
        """
        findings = []
        for path in self.candidates(spec):
            try:
                verify(path, spec, source=str(path))
                problem = None
            except (IdxFormatError, ChecksumError) as err:
                problem = str(err)
            except OSError as err:
                problem = f"{path}: cannot be read: {err.strerror or err}"
            findings.append(Finding(spec, "file", path, problem))
        npy_path, manifest_path = self.cache_paths(spec)
        if npy_path.exists() or manifest_path.exists():
            findings.append(Finding(spec, "cache", self.npy_path(spec, self.read_manifest(spec)), self._cache_problem(spec)))
        return findings

    def _cache_problem(self, spec: FileSpec) -> str | None:
        """Why ``spec``'s cache entry is not the published data, or None."""
        manifest = self.read_manifest(spec)
        npy_path = self.npy_path(spec, manifest)
        if manifest is None:
            return f"{npy_path}: its manifest is missing or unreadable"
        if self.cached(spec) is None:
            return f"{npy_path}: its size, header or manifest do not match the registry"
        # The .npy payload is exactly the IDX payload, so header + payload hash to the decoded checksum.
        array = np.load(npy_path, mmap_mode="r", allow_pickle=False)
        import hashlib

        hasher = hashlib.sha256(IdxHeader(spec.type_code, tuple(spec.shape)).to_bytes())
        flat = array.reshape(-1).view(np.uint8)
        step = 1 << 24
        for start in range(0, flat.size, step):
            hasher.update(flat[start : start + step])
        want = split_digest(spec.decoded_sha256 or manifest.get("decoded_sha256", ""))[1]
        if hasher.hexdigest() != want:
            return f"{npy_path}: its content has sha256 {hasher.hexdigest()[:16]}..., expected {want[:16]}..."
        return None

    def discard(self, finding: Finding) -> None:
        """Delete the file (for a cache entry: the ``.npy`` and its manifest) a finding is about.

        A cache entry dies with its manifest, which goes first: its ``.npy`` may still be mapped
        by a process (Windows cannot delete it then) and is removed later, while the rebuild
        goes beside it.  A downloaded file in use is an error: the fetch could not replace it.

        Raises
        ------
        DataFolderError
            When a downloaded file is in use by another program (Windows).
        """
        with self.lock(finding.spec):
            if finding.kind == "cache":
                npy_path, manifest_path = self.cache_paths(finding.spec)
                _unlink(manifest_path)
                for path in dict.fromkeys([finding.path, npy_path]):
                    _unlink_unless_in_use(path)
            elif not _unlink_unless_in_use(finding.path):
                raise files_in_use([finding.path], "delete the damaged file")

    def fetch(self, spec: FileSpec) -> Path:
        """Download ``spec`` into the dataset folder under its lock (even if a cache entry exists).

        Raises
        ------
        MissingFilesError
            When downloading is disabled (no fetcher) or impossible offline.
        DownloadError
            When every source failed.
        """
        if self.fetcher is None:
            raise MissingFilesError(
                self.dataset.name, [spec.name], self.folder, self.dataset.urls(spec), "downloading is disabled"
            )
        with self.lock(spec):
            return self.fetcher(self.dataset, spec, self.folder)

    def clean(self, spec: FileSpec, in_use: list[Path] | None = None) -> int:
        """Delete every local copy of ``spec``: files, partial downloads, cache entry.

        The manifest goes before the ``.npy``, so an entry whose ``.npy`` is still in use
        (Windows: mapped by a program) is dead at once and never loaded again.

        Parameters
        ----------
        spec : FileSpec
            One of the dataset's files.
        in_use : list, optional
            Where to put files that could not be deleted because a program holds them
            (Windows); when not given, such files raise instead, after everything else is gone.

        Returns
        -------
        int
            Bytes freed.

        Raises
        ------
        DataFolderError
            Files in use, when ``in_use`` is not given.
        """
        if not self.folder.is_dir():
            return 0
        part = self.folder / (spec.name + ".part")
        freed = 0
        busy: list[Path] = []
        with self.lock(spec):  # never pull a file from under a process that is building it
            paths = [
                *self.candidates(spec),
                part,
                part.with_name(part.name + ".json"),
                self.cache_paths(spec)[1],
                *self.entry_files(spec),
                *self.cache_folder.glob(f".{spec.stem}.*.tmp"),
            ]
            for path in paths:
                try:
                    size = path.stat().st_size
                    if not _unlink_unless_in_use(path):
                        busy.append(path)
                        continue
                except FileNotFoundError:
                    continue
                freed += size
        if in_use is not None:
            in_use.extend(busy)
        elif busy:
            raise files_in_use(busy, "delete")
        return freed

    # --- folders and locks ------------------------------------------------------------------

    def _longest_name(self) -> int:
        """The longest path, relative to the dataset folder, that the store may create there."""
        names = [f"{CACHE_DIR}/.{f.stem}.{'0' * 12}.npy.tmp" for f in self.dataset.files]
        names += [f"{n}.part.json" for f in self.dataset.files for n in f.spellings]
        return max(map(len, names))

    def _check_path_length(self) -> None:
        """Windows without long paths: refuse a data folder whose files would pass 260 characters, saying why."""
        if _winfs.IS_WINDOWS and _winfs.too_long(self.folder, self._longest_name()):
            msg = (
                f"cannot use the data folder {self.home}: its files would have paths over Windows' "
                f"{_winfs.MAX_PATH}-character limit. Enable long paths (LongPathsEnabled) or pass "
                f"data_home=... (or set {ENV_HOME}) to a shorter folder"
            )
            raise DataFolderError(msg)

    def _make_folder(self, folder: Path) -> None:
        self._check_path_length()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK | os.X_OK):
                raise PermissionError(13, "not writable", str(folder))
        except OSError as err:
            msg = (
                f"cannot use the data folder {folder}: {err.strerror or err}. "
                f"Pass data_home=... or set {ENV_HOME} to a writable folder"
            )
            raise DataFolderError(msg) from err

    @contextmanager
    def lock(self, spec: FileSpec):
        """Hold the inter-process lock of ``spec`` (download and cache build happen under it)."""
        from filelock import FileLock, Timeout

        lock_folder = self.folder / LOCK_DIR
        self._make_folder(lock_folder)
        lock = FileLock(str(lock_folder / f"{spec.stem}.lock"), timeout=self.lock_timeout)
        try:
            lock.acquire(timeout=0.01)
        except Timeout:
            log.info("waiting for another process that is preparing %s", spec.name)
            try:
                lock.acquire()
            except Timeout:
                msg = (
                    f"another process has held the lock on {spec.name} for over {self.lock_timeout:.0f} s "
                    f"({lock.lock_file}); if no mnistkit process is running, delete that file"
                )
                raise LockTimeout(msg) from None
        try:
            yield
        finally:
            lock.release()


class _Upright:
    """A sink that transposes each image of a stream stored transposed (EMNIST) before writing it.

    Chunks arrive at arbitrary boundaries: whole images go out at once, a
    partial one waits for the next chunk.  Memory: one chunk and one image.
    """

    def __init__(self, write: Sink, spec: FileSpec) -> None:
        self.write = write
        self.dtype = _dtype_of(spec)
        self.image_shape = tuple(spec.shape[1:])
        self.image_bytes = int(np.prod(self.image_shape)) * self.dtype.itemsize
        self.pending = b""

    def __call__(self, piece: bytes | memoryview) -> None:
        data = self.pending + bytes(piece) if self.pending else piece
        whole = len(data) // self.image_bytes * self.image_bytes
        if whole:
            images = np.frombuffer(data, self.dtype, count=whole // self.dtype.itemsize).reshape(-1, *self.image_shape)
            self.write(np.ascontiguousarray(images.transpose(0, 2, 1)).data.cast("B"))
        self.pending = bytes(data[whole:])


def _filler(out: np.ndarray) -> Sink:
    """A sink that copies the pieces it is given, in order, into ``out``'s memory."""
    flat = out.reshape(-1).view(np.uint8)
    filled = 0

    def fill(piece: bytes | memoryview) -> None:
        nonlocal filled
        n = len(piece)
        flat[filled : filled + n] = np.frombuffer(piece, np.uint8)
        filled += n

    return fill


def _sink(spec: FileSpec, write: Sink) -> Sink:
    """``write``, or a transposing wrapper of it when ``spec``'s images are stored transposed."""
    return _Upright(write, spec) if spec.transposed else write


def _dtype_of(spec: FileSpec) -> np.dtype:
    return IDX_TYPES[spec.type_code]
