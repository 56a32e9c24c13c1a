"""The data folder: where files live, locks, and the memory-mapped cache.

Layout (the same one mirrors use, so a data folder can be copied or served)::

    <data home>/<dataset>/<published file name>       downloaded or hand-placed files
    <data home>/<dataset>/.cache/<stem>.npy          decoded array, loads by memory map
    <data home>/<dataset>/.cache/<stem>.json         manifest: what was verified, and how big
    <data home>/<dataset>/.locks/<stem>.lock         one inter-process lock per file

A cache entry is used only when its manifest matches the registry and the
``.npy`` has the size the manifest records (the cheap check); otherwise it is
rebuilt from a verified file.  Every file is written under a temporary name in
the same folder and renamed into place, so a process killed at any point never
leaves a half-written file under a final name.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import (
    ChecksumError,
    DataFolderError,
    DownloadError,
    IdxFormatError,
    LockTimeout,
    MissingFilesError,
    write_failed,
)
from .integrity import verify
from .registry import Dataset, FileSpec

log = logging.getLogger("mnistkit")

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


def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """The bytes of a version 1.0 .npy header for a C-ordered array."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype.str, "fortran_order": False, "shape": shape})
    return buf.getvalue()


@functools.lru_cache(maxsize=None)
def _file_mode() -> int:
    """Permissions for new files: what the umask allows (mkstemp's 0600 would hide a shared cache)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise


def _unlink(path: str | os.PathLike) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


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
        self.folder = self.home / dataset.name
        self.cache_folder = self.folder / CACHE_DIR
        self.fetcher = fetcher
        self.lock_timeout = lock_timeout

    # --- paths -----------------------------------------------------------------------------

    def cache_paths(self, spec: FileSpec) -> tuple[Path, Path]:
        """The ``.npy`` and manifest paths of ``spec``'s cache entry."""
        return self.cache_folder / f"{spec.stem}.npy", self.cache_folder / f"{spec.stem}.json"

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
        npy_path, _ = self.cache_paths(spec)
        try:
            if (
                manifest.get("format") != CACHE_FORMAT
                or manifest.get("file") != spec.name
                or (spec.decoded_sha256 and manifest.get("decoded_sha256") != spec.decoded_sha256)
                or npy_path.stat().st_size != manifest.get("npy_size")
            ):
                return None
            # 'c': copy-on-write, so callers may write into the array without touching the cache
            array = np.load(npy_path, mmap_mode="c", allow_pickle=False)
        except Exception:  # a damaged header can raise almost anything from the parser: rebuild
            return None
        if array.shape != tuple(spec.shape) or array.dtype.str != manifest.get("dtype"):
            return None
        return array.view(np.ndarray)

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
        except DataFolderError:
            # A read-only data folder that already holds the files is still usable, uncached.
            return self._load_uncached(spec)
        with self.lock(spec):
            array = self.cached(spec)  # another process may have built it while we waited
            if array is not None:
                return array
            return self._build(spec)

    def _build(self, spec: FileSpec) -> np.ndarray:
        problems: list[str] = []
        for path in self.candidates(spec):
            try:
                self.build_cache(path, spec)
            except (IdxFormatError, ChecksumError) as err:
                # Not the published data. Hand-placed files are the user's: leave them, say so.
                log.warning("ignoring %s: %s", path, err)
                problems.append(str(err))
                continue
            array = self.cached(spec)
            if array is None:  # pragma: no cover - only if the folder changes under us
                msg = f"{self.cache_folder}: the cache entry for {spec.name} vanished right after it was written"
                raise DataFolderError(msg)
            return array
        if self.fetcher is None:
            reason = "downloading is disabled"
            if problems:
                reason += "; files found but rejected: " + " | ".join(problems)
            raise MissingFilesError(self.dataset.name, [spec.name], self.folder, self.dataset.urls(spec), reason)
        try:
            path = self.fetcher(self.dataset, spec, self.folder)
        except MissingFilesError as err:
            if not problems:
                raise
            reason = err.reason + "; files found but rejected: " + " | ".join(problems)
            raise MissingFilesError(err.dataset, err.missing, err.folder, err.urls, reason) from None
        except DownloadError as err:
            if not problems:
                raise
            local = [(str(self.folder), f"found but rejected: {p}") for p in problems]
            raise DownloadError(err.file_name, local + err.attempts, err.folder) from None
        self.build_cache(path, spec)
        array = self.cached(spec)
        if array is None:  # pragma: no cover
            msg = f"{self.cache_folder}: the cache entry for {spec.name} vanished right after it was written"
            raise DataFolderError(msg)
        return array

    def build_cache(self, path: Path, spec: FileSpec) -> None:
        """Verify ``path`` against ``spec`` and write the cache entry in the same pass.

        The ``.npy`` is streamed to a temporary file while the decoded bytes are
        hashed; only if the hash matches is it renamed into place, and only then
        is the manifest written (also atomically).  Callers hold the file's lock.
        """
        npy_path, manifest_path = self.cache_paths(spec)
        dtype = np.dtype(_dtype_of(spec))
        # Leftovers of a process killed mid-write: safe to remove, we hold the lock.
        for stale in self.cache_folder.glob(f".{spec.stem}.*.tmp"):
            _unlink(stale)
        fd, tmp = tempfile.mkstemp(dir=self.cache_folder, prefix=f".{spec.stem}.", suffix=".npy.tmp")
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
                verified = verify(path, spec, sink=write, source=str(path))
                size = fh.tell()
            os.chmod(tmp, _file_mode())
            os.replace(tmp, npy_path)
        except BaseException:
            _unlink(tmp)
            raise
        manifest = {
            "format": CACHE_FORMAT,
            "file": spec.name,
            "verified_from": path.name,
            "container": verified.container,
            "decoded_sha256": verified.decoded_sha256,
            "shape": list(spec.shape),
            "dtype": dtype.str,
            "npy_size": size,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _atomic_write_bytes(manifest_path, json.dumps(manifest, indent=1).encode())
        log.info("cached %s from %s (%s, verified)", spec.name, path, verified.container)

    def _load_uncached(self, spec: FileSpec) -> np.ndarray:
        """Decode a verified file into memory: the read-only data folder route."""
        problems = []
        for path in self.candidates(spec):
            chunks: list[bytes] = []
            try:
                verify(path, spec, sink=lambda piece: chunks.append(bytes(piece)), source=str(path))
            except (IdxFormatError, ChecksumError) as err:
                problems.append(str(err))
                continue
            log.warning("%s is not writable: using %s without caching it", self.folder, path)
            array = np.frombuffer(bytearray(b"".join(chunks)), dtype=_dtype_of(spec))
            return array.reshape(spec.shape)
        reason = f"{self.folder} cannot be written, so nothing can be downloaded there"
        if problems:
            reason += "; files found but rejected: " + " | ".join(problems)
        raise MissingFilesError(self.dataset.name, [spec.name], self.folder, self.dataset.urls(spec), reason)

    # --- folders and locks ------------------------------------------------------------------

    def _make_folder(self, folder: Path) -> None:
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


def _dtype_of(spec: FileSpec) -> np.dtype:
    from .idx import IDX_TYPES

    return IDX_TYPES[spec.type_code]
