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

from ._log import log
from .errors import (
    ArgumentError,
    ChecksumError,
    DataFolderError,
    DownloadError,
    IdxFormatError,
    LockTimeout,
    MissingFilesError,
    write_failed,
)
from .idx import IDX_TYPES, IdxHeader
from .integrity import Sink, split_digest, verify
from .layout import CACHE_DIR, LOCK_DIR, create_temp, downloaded_path, part_path, record_path, temp_prefix, unlink
from .registry import Dataset, FileSpec

CACHE_FORMAT = 1
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
    if data_home is not None and not isinstance(data_home, (str, os.PathLike)):
        msg = f"data_home={data_home!r} is not valid: give a folder (a str or path), or None for the default"
        raise ArgumentError(msg)
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


def _manifest_bytes(manifest: dict) -> bytes:
    import json

    return json.dumps(manifest, indent=1).encode()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = create_temp(path.parent, f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        unlink(tmp)
        raise


def _with_rejected(reason: str, problems: list[str]) -> str:
    """``reason``, plus the local files that were found but are not the published data."""
    return reason + "; files found but rejected: " + " | ".join(problems) if problems else reason


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
        #: Why a load decoded files without caching them (a read-only folder), or None.
        self.uncached: str | None = None

    def __repr__(self) -> str:
        fetch = "downloads missing files" if self.fetcher is not None else "never downloads"
        return f"<Store {self.dataset.name} in {self.folder}, {fetch}>"

    # --- paths -----------------------------------------------------------------------------

    def cache_paths(self, spec: FileSpec) -> tuple[Path, Path]:
        """The ``.npy`` and manifest paths of ``spec``'s cache entry."""
        return self.cache_folder / f"{spec.stem}.npy", self.cache_folder / f"{spec.stem}.json"

    def candidates(self, spec: FileSpec) -> list[Path]:
        """Existing files in the dataset folder that may hold ``spec``.

        Every spelling of its name, then a verified download set aside because the published
        name held a file of the user's (see :mod:`mnistkit.layout`).
        """
        paths = [self.folder / name for name in spec.spellings]
        paths.append(downloaded_path(self.folder, spec.name))
        return [path for path in paths if path.is_file()]

    # --- the warm path: no lock, no hashing --------------------------------------------------

    def read_manifest(self, spec: FileSpec) -> dict | None:
        """The manifest of ``spec``'s cache entry, or None when it is absent or unreadable."""
        _, manifest_path = self.cache_paths(spec)
        try:
            import json  # here, not at the top: `import mnistkit` stays light

            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return manifest if isinstance(manifest, dict) else None  # valid JSON of another shape: unreadable

    def cached(self, spec: FileSpec) -> np.ndarray | None:
        """Map ``spec``'s cache entry copy-on-write if it passes the cheap check, else None.

        The cheap check: the manifest is of this format, names this file and the
        registry's decoded checksum, and the ``.npy`` has the recorded size and a
        header of the recorded shape and type.  A truncated or foreign entry fails it.
        """
        if spec.kind == "archive":  # an archive is read member by member: it has no array of its own
            return None
        manifest = self.read_manifest(spec)
        if manifest is None:
            return None
        npy_path, _ = self.cache_paths(spec)
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
        try:
            self._make_folder(self.cache_folder)
        except _NotAFolder:
            raise
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

                pinned = self.dataset.file(spec.archive)
                # archive_path has just checked it against its published checksum (when one is pinned)
                vouched = f"{archive.name} has its published checksum" if pinned.sha256 or pinned.md5 else None
                with open_member(archive, spec.member, vouched) as stream:  # streamed: never unpacked
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
        with self.lock(archive):
            manifest = self.read_manifest(archive)
            if (
                manifest is not None
                and manifest.get("format") == CACHE_FORMAT
                and manifest.get("file") == archive.name
                and manifest.get("checksum") == (archive.sha256 or archive.md5 or "")
            ):
                for path in self.candidates(archive):
                    stat = path.stat()
                    if [stat.st_size, stat.st_mtime_ns] == [manifest.get("size"), manifest.get("mtime_ns")]:
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

        def say_rejected(used: Path) -> None:  # only when a file was found after all: else the error says it
            for problem in problems:
                log.warning("ignored a file that is not the published data (left alone; using %s): %s", used, problem)

        for path in self.candidates(spec):
            try:
                use(path)
            except (IdxFormatError, ChecksumError) as err:
                # Not the published data. Hand-placed files are the user's: leave them, say so.
                problems.append(str(err))
                continue
            say_rejected(path)
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
        say_rejected(path)
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
        for stale in self.cache_folder.glob(f"{temp_prefix(spec.stem)}*.tmp"):
            unlink(stale)
        fd, tmp = create_temp(self.cache_folder, temp_prefix(spec.stem), ".npy.tmp")
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
                # a stream's name is "<archive>:<member>"; a Path's .name would drop the folder from messages
                source = path.name if hasattr(path, "read") else str(path)
                verified = verify(path, spec, sink=_sink(spec, write), source=source)
                size = fh.tell()
            os.replace(tmp, npy_path)
        except BaseException:
            unlink(tmp)
            raise
        manifest = {
            "format": CACHE_FORMAT,
            "file": spec.name,
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

                    vouched = f"{path.name} has its published checksum" if archive.sha256 or archive.md5 else None
                    with open_member(path, spec.member, vouched) as stream:
                        verify(stream, spec, sink=keep, source=stream.name)
            except (IdxFormatError, ChecksumError) as err:
                problems.append(str(err))
                continue
            # Said by the caller (api) as a Python warning, from the caller's thread and line.
            self.uncached = (
                f"{self.folder} is not writable: its files are decoded on every load, without a cache; "
                f"make it writable, or copy it to a writable data folder (data_home=... or {ENV_HOME})"
            )
            log.info("%s is not writable: using %s without caching it", self.folder, path)
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
        # An archive's manifest records that the archive was verified; it has no array to check.
        if spec.kind != "archive" and (npy_path.exists() or manifest_path.exists()):
            findings.append(Finding(spec, "cache", npy_path, self._cache_problem(spec)))
        return findings

    def _cache_problem(self, spec: FileSpec) -> str | None:
        """Why ``spec``'s cache entry is not the published data, or None."""
        npy_path, _ = self.cache_paths(spec)
        manifest = self.read_manifest(spec)
        if manifest is None:
            return f"{npy_path}: its manifest is missing or unreadable"
        if self.cached(spec) is None:
            return f"{npy_path}: its size, header or manifest do not match the registry"
        # The .npy payload is exactly the IDX payload, so header + payload hash to the decoded checksum.
        array = np.load(npy_path, mmap_mode="r", allow_pickle=False)
        import hashlib

        hasher = hashlib.sha256(IdxHeader(spec.type_code, tuple(spec.shape)).to_bytes())
        if spec.transposed:  # cached upright (EMNIST): hash the images as published, transposed back
            per_block = max(1, (1 << 24) // max(1, array[0].nbytes)) if len(array) else 1
            for start in range(0, len(array), per_block):
                block = np.ascontiguousarray(array[start : start + per_block].transpose(0, 2, 1))
                hasher.update(block.reshape(-1).view(np.uint8))
        else:
            flat = array.reshape(-1).view(np.uint8)
            step = 1 << 24
            for start in range(0, flat.size, step):
                hasher.update(flat[start : start + step])
        want = split_digest(spec.decoded_sha256 or manifest.get("decoded_sha256", ""))[1]
        if hasher.hexdigest() != want:
            return f"{npy_path}: its content has sha256 {hasher.hexdigest()[:16]}..., expected {want[:16]}..."
        return None

    def discard(self, finding: Finding) -> None:
        """Delete the file (for a cache entry: the ``.npy`` and its manifest) a finding is about."""
        paths = [finding.path]
        if finding.kind == "cache":
            paths = list(self.cache_paths(finding.spec))
        with self.lock(finding.spec):
            for path in paths:
                unlink(path)

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

    def local_files(self, spec: FileSpec) -> list[tuple[Path, str, int]]:
        """Every file of ``spec`` in the data folder, as ``(path, kind, size in bytes)``.

        ``kind`` is ``"data"`` (a downloaded or hand-placed file: getting it back means
        downloading it again), ``"partial"`` (an unfinished download) or ``"cache"`` (built
        from the data, rebuilt when needed).
        """
        if not self.folder.is_dir():
            return []
        part = part_path(self.folder, spec.name)
        groups = (
            ("data", self.candidates(spec)),
            ("partial", [part, record_path(part)]),
            ("cache", [*self.cache_paths(spec), *self.cache_folder.glob(f"{temp_prefix(spec.stem)}*.tmp")]),
        )
        found = []
        for kind, paths in groups:
            for path in paths:
                try:
                    found.append((path, kind, path.stat().st_size))
                except OSError:
                    continue
        return found

    def clean(self, spec: FileSpec, kinds: tuple[str, ...] = ("data", "partial", "cache")) -> int:
        """Delete the local copies of ``spec`` of the given kinds (see :meth:`local_files`): by default all.

        Returns
        -------
        int
            Bytes freed.
        """
        if not self.folder.is_dir():
            return 0
        # All or nothing: a folder of ours that is not one would fail half-way, after deleting.
        self.check_folder(self.cache_folder)
        freed = 0
        with self.lock(spec):  # never pull a file from under a process that is building it
            paths = [path for path, kind, _ in self.local_files(spec) if kind in kinds]
            for path in paths:
                try:
                    size = path.stat().st_size
                    path.unlink()
                except FileNotFoundError:
                    continue
                freed += size
        return freed

    # --- folders and locks ------------------------------------------------------------------

    def _make_folder(self, folder: Path) -> None:
        self.check_folder(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK | os.X_OK):
                raise PermissionError(13, "not writable", str(folder))
        except OSError as err:
            if isinstance(err, (NotADirectoryError, FileExistsError)):
                self.check_folder(folder)  # a file that appeared meanwhile gets its own message
            msg = (
                f"cannot use the data folder {folder}: {err.strerror or err}. "
                f"Pass data_home=... or set {ENV_HOME} to a writable folder"
            )
            raise DataFolderError(msg) from err

    def check_folder(self, folder: Path) -> None:
        """Refuse, naming it, a file (not a folder) where ``folder`` or one of its parents belongs."""
        for above in (folder, *folder.parents):
            if not above.exists():
                continue
            if above.is_dir():
                return
            if above == self.home or above in self.home.parents:
                what = "is a file" if above == self.home else f"cannot be made: {above} is a file"
                msg = (
                    f"the data folder {self.home} {what}, not a folder; "
                    f"pass data_home=... or set {ENV_HOME} to a folder (it is created if missing)"
                )
            else:
                msg = f"cannot use the data folder {folder}: {above} is a file, not a folder; move or delete that file"
            raise _NotAFolder(msg) from NotADirectoryError(20, "Not a directory", str(above))

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


class _NotAFolder(DataFolderError):
    """A file stands where the data folder (or a folder in it) must be: no fallback helps."""


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
