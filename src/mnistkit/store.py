"""The data folder: observe what is there, ask the plan, act under a lock.

Layout (the same one mirrors use, so a data folder can be copied or served; every
name is spelled in :mod:`mnistkit.layout`)::

    <data home>/<dataset>/<published file name>       downloaded or hand-placed files
    <data home>/<dataset>/.downloaded/<name>         a verified download set aside: the user's file held the name
    <data home>/<dataset>/.cache/<stem>.npy          decoded array, loads by memory map
    <data home>/<dataset>/.cache/<stem>.json         manifest (mnistkit.manifest): what was verified, and how big
    <data home>/<dataset>/.locks/<stem>.lock         one inter-process lock per file

:meth:`Store.load` maps a cache entry that passes the cheap check (no lock, no
hashing).  Otherwise it observes the folder (:class:`~mnistkit.plan.OnDisk`), asks
the pure :func:`~mnistkit.plan.plan` what to do and runs the answer: build the cache
from a local copy (verified in the same pass), fetch through the downloader first,
decode in memory when the folder cannot be written, or fail naming every file.

Datasets read from one archive share a folder (``emnist/gzip.zip``): the
archive is verified once (its manifest records the size and modification time
it was verified at), and each member is streamed from it into its own cache
entry, never unpacked to disk.  Images stored transposed are cached upright.

Every file is written under a temporary name in the same folder and renamed into
place, so a process killed at any point never leaves a half-written file under a
final name.  Checking, discarding and cleaning live beside this module, in
:mod:`mnistkit.maintenance`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, cast

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
from .idx import IDX_TYPES
from .integrity import Sink, verify
from .layout import CACHE_DIR, LOCK_DIR, create_temp, downloaded_path, temp_prefix, unlink
from .manifest import CACHE_FORMAT, ArchiveManifest, CacheManifest, Manifest, read_manifest, write_manifest
from .plan import Action, OnDisk, Plan, cache_matches, plan
from .registry import Dataset, FileSpec
from .settings import ENV_HOME, resolve_home

__all__ = ["CACHE_FORMAT", "DownloaderLike", "Store", "resolve_home"]

#: What obtains a missing file: called as ``downloader(dataset, spec, folder)``, it puts ``spec``
#: in ``folder`` verified and returns its path, or raises DownloadError or MissingFilesError
#: (:class:`mnistkit.sources.Downloader` is the one mnistkit makes).
DownloaderLike = Callable[[Dataset, FileSpec, Path], Path]


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


#: The reason a read-only folder without the files cannot help (plan.Action.FAIL says it too).
_FOLDER_READ_ONLY = "cannot be written, so nothing can be downloaded there"


def _size_or_none(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _say_rejected(rejected: list[str], used: Path) -> None:
    """Warn of local files refused, once a good copy (``used``) was found after all (else the error says it)."""
    for problem in rejected:
        log.warning("ignored a file that is not the published data (left alone; using %s): %s", used, problem)


def _with_rejected(reason: str, problems: list[str]) -> str:
    """``reason``, plus the local files that were found but are not the published data."""
    return reason + "; files found but rejected: " + " | ".join(problems) if problems else reason


class Store:
    """One dataset's folder in the data home: it observes, asks :func:`mnistkit.plan.plan`, and acts.

    Parameters
    ----------
    dataset : Dataset
        The registry entry.
    data_home : path-like, optional
        See :func:`mnistkit.settings.resolve_home`.
    downloader : callable, optional
        How to obtain a missing file (see :data:`DownloaderLike`); ``None`` means never download.
    lock_timeout : float
        Seconds to wait for another process that is building the same file.
    fetcher : callable, optional
        The name ``downloader`` had in mnistkit 0.1; still accepted.
    """

    def __init__(
        self,
        dataset: Dataset,
        data_home: str | os.PathLike | None = None,
        *,
        downloader: DownloaderLike | None = None,
        lock_timeout: float = 3600.0,
        fetcher: DownloaderLike | None = None,
    ) -> None:
        self.dataset = dataset
        self.home = resolve_home(data_home)
        self.folder = self.home / dataset.folder
        self.cache_folder = self.folder / CACHE_DIR
        self.downloader = downloader if downloader is not None else fetcher
        self.lock_timeout = lock_timeout
        #: Why a load decoded files without caching them (a read-only folder), or None.
        self.uncached: str | None = None

    def __repr__(self) -> str:
        fetch = "downloads missing files" if self.downloader is not None else "never downloads"
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

    # --- observing -------------------------------------------------------------------------

    def read_manifest(self, spec: FileSpec) -> Manifest | None:
        """The manifest of ``spec``'s cache entry (or verified archive); None when absent or unreadable."""
        return read_manifest(self.cache_paths(spec)[1])

    def observe(self, spec: FileSpec, *, writable: bool = True) -> OnDisk:
        """What the folder holds for ``spec`` (for an archive member: the archive's copies)."""
        npy_path, _ = self.cache_paths(spec)
        source = spec if spec.archive is None else self.dataset.file(spec.archive)
        files = []
        for path in self.candidates(source):
            try:
                stat = path.stat()
            except OSError:
                continue
            files.append((path, stat.st_size, stat.st_mtime_ns))
        from .layout import part_path

        return OnDisk(
            manifest=self.read_manifest(spec),
            npy_size=_size_or_none(npy_path),
            files=tuple(files),
            part_size=_size_or_none(part_path(self.folder, source.name)) or 0,
            writable=writable,
            can_fetch=self.downloader is not None,
        )

    # --- the warm path: no lock, no hashing --------------------------------------------------

    def cached(self, spec: FileSpec) -> np.ndarray | None:
        """Map ``spec``'s cache entry copy-on-write if it passes the cheap check, else None.

        The cheap check (:func:`mnistkit.plan.cache_matches`): the manifest is of this format,
        names this file and the registry's decoded checksum, and the ``.npy`` has the recorded
        size and a header of the recorded shape and type.  A truncated or foreign entry fails it.
        """
        if spec.kind == "archive":  # an archive has no array: see archive_path
            return None
        npy_path, manifest_path = self.cache_paths(spec)
        manifest = read_manifest(manifest_path)
        if manifest is None:
            return None
        dtype = _dtype_of(spec)
        try:
            if not cache_matches(spec, manifest, npy_path.stat().st_size, dtype.str):
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
        if spec.kind == "archive":
            msg = f"{spec.name} is an archive, not an array: load its members, or use Store.archive_path"
            raise ArgumentError(msg)
        array = self.cached(spec)
        if array is not None:
            return array
        try:
            self._make_folder(self.cache_folder)
        except _NotAFolder:
            raise  # a file where a folder belongs: caching without it would hide the real cause
        except DataFolderError:
            # A read-only data folder that already holds the files is still usable, uncached.
            return self._run(spec, plan(spec, self.observe(spec, writable=False), _dtype_of(spec).str))
        with self.lock(spec):
            array = self.cached(spec)  # another process may have built it while we waited
            if array is not None:
                return array
            return self._run(spec, plan(spec, self.observe(spec), _dtype_of(spec).str))

    def _run(self, spec: FileSpec, step: Plan) -> np.ndarray:
        """Carry out ``step`` for ``spec`` (under its lock unless the folder cannot be written)."""
        log.debug("%s: %s (%s)", spec.name, step.action.value, step.reason)
        if step.action is Action.USE:
            array = self.cached(spec)
            if array is not None:
                return array
            # The manifest and size matched but the .npy header did not: a damaged entry.
            step = plan(spec, dataclasses.replace(self.observe(spec), manifest=None), _dtype_of(spec).str)
        if step.action is Action.DECODE:
            return self._load_uncached(spec)
        if step.action is Action.FAIL:
            source = spec if spec.archive is None else self.dataset.file(spec.archive)
            reason = step.reason if step.reason != _FOLDER_READ_ONLY else f"{self.folder} {step.reason}"
            raise MissingFilesError(self.dataset.name, [source.name], self.folder, self.dataset.urls(source), reason)
        if spec.archive is None:
            path, rejected = self._first_accepted(step.files, lambda found: self.build_cache(found, spec))
            if path is None:
                path = self._download(spec, rejected)
                self.build_cache(path, spec)
            _say_rejected(rejected, path)
        else:
            pinned = self.dataset.file(spec.archive)
            archive = self.archive_path(pinned)
            from .archive import open_member  # zipfile: imported only for archive datasets

            # archive_path has just checked it against its published checksum (when one is pinned)
            vouched = f"{archive.name} has its published checksum" if pinned.sha256 or pinned.md5 else None
            with open_member(archive, cast(str, spec.member), vouched) as stream:  # streamed: never unpacked
                self.build_cache(cast(BinaryIO, stream), spec)
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
            step = plan(archive, self.observe(archive))
            if step.action is Action.USE:
                return step.files[0]
            if step.action is Action.FAIL:
                raise MissingFilesError(
                    self.dataset.name, [archive.name], self.folder, self.dataset.urls(archive), step.reason
                )
            path, rejected = self._first_accepted(step.files, lambda found: self._vouch_for_archive(found, archive))
            if path is None:
                path = self._download(archive, rejected)
                self._record_archive(path, archive)  # the downloader verified it
            _say_rejected(rejected, path)
            return path

    def _vouch_for_archive(self, path: Path, archive: FileSpec) -> None:
        verify(path, archive, source=str(path))
        self._record_archive(path, archive)

    def _record_archive(self, path: Path, archive: FileSpec) -> None:
        """Write the manifest that lets later calls trust the verified archive at ``path``."""
        self._make_folder(self.cache_folder)
        stat = path.stat()
        checksum = archive.sha256 or archive.md5 or ""
        write_manifest(
            self.cache_paths(archive)[1], ArchiveManifest(archive.name, checksum, stat.st_size, stat.st_mtime_ns)
        )

    def read_member(self, archive: FileSpec, member: str) -> bytes:
        """The bytes of a small member of a verified archive (EMNIST's mapping files)."""
        from .archive import read_member

        return read_member(self.archive_path(archive), member)

    @staticmethod
    def _first_accepted(files: tuple[Path, ...], use: Callable[[Path], None]) -> tuple[Path | None, list[str]]:
        """The first of ``files`` that ``use`` accepts (it raises IdxFormatError/ChecksumError if not).

        Returns the path (None if none) and why each rejected one was refused.  Hand-placed files
        are the user's: a rejected one is left as it is.
        """
        rejected: list[str] = []
        for path in files:
            try:
                use(path)
            except (IdxFormatError, ChecksumError) as err:
                rejected.append(str(err))
                continue
            return path, rejected
        return None, rejected

    def _download(self, spec: FileSpec, rejected: list[str]) -> Path:
        """``spec`` from the downloader, verified; its errors also name the local files ``rejected``."""
        if self.downloader is None:
            reason = _with_rejected("downloading is disabled", rejected)
            raise MissingFilesError(self.dataset.name, [spec.name], self.folder, self.dataset.urls(spec), reason)
        try:
            return self.downloader(self.dataset, spec, self.folder)
        except MissingFilesError as err:
            if not rejected:
                raise
            raise err.with_reason(_with_rejected(err.reason, rejected)) from None
        except DownloadError as err:
            if not rejected:
                raise
            raise err.with_attempts_before((str(self.folder), f"found but rejected: {p}") for p in rejected) from None

    def build_cache(self, path: Path | BinaryIO, spec: FileSpec) -> None:
        """Verify ``path`` against ``spec`` and write the cache entry in the same pass.

        The ``.npy`` is streamed to a temporary file while the decoded bytes are
        hashed; only if the hash matches is it renamed into place, and only then
        is the manifest written (also atomically).  Callers hold the file's lock.
        ``path`` may be a binary stream (an archive member); memory use stays at
        a few chunks whatever the file's size.
        """
        npy_path, manifest_path = self.cache_paths(spec)
        for entry in (npy_path, manifest_path):
            if entry.is_dir():  # the rename into place would fail with a bare IsADirectoryError
                msg = f"cannot write the cache of {spec.name}: {entry} is a folder; move or delete it"
                raise DataFolderError(msg)
        dtype = _dtype_of(spec)
        # Leftovers of a process killed mid-write: safe to remove, we hold the lock.
        for stale in self.cache_folder.glob(f"{temp_prefix(spec.stem)}*.tmp"):
            unlink(stale)
        fd, tmp = create_temp(self.cache_folder, temp_prefix(spec.stem), ".npy.tmp")
        try:
            with os.fdopen(fd, "wb", buffering=0) as fh:

                def write(piece: bytes | memoryview) -> None:
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
                source = str(getattr(path, "name", path)) if hasattr(path, "read") else str(path)
                verified = verify(path, spec, sink=_sink(spec, write), source=source)
                size = fh.tell()
            os.replace(tmp, npy_path)
        except BaseException:
            unlink(tmp)
            raise
        manifest = CacheManifest(
            file=spec.name,
            verified_from=Path(str(getattr(path, "name", path))).name,
            container=verified.container,
            upright=spec.transposed,
            decoded_sha256=verified.digest,
            shape=tuple(spec.shape),
            dtype=dtype.str,
            npy_size=size,
        )
        write_manifest(manifest_path, manifest)
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
                    with open_member(path, cast(str, spec.member), vouched) as stream:
                        verify(cast(BinaryIO, stream), spec, sink=keep, source=stream.name)
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
        reason = _with_rejected(f"{self.folder} {_FOLDER_READ_ONLY}", problems)
        missing = archive or spec
        raise MissingFilesError(self.dataset.name, [missing.name], self.folder, self.dataset.urls(missing), reason)

    def fetch(self, spec: FileSpec) -> Path:
        """Download ``spec`` into the dataset folder under its lock (even if a cache entry exists).

        Raises
        ------
        MissingFilesError
            When downloading is disabled (no downloader) or impossible offline.
        DownloadError
            When every source failed.
        """
        if self.downloader is None:
            raise MissingFilesError(
                self.dataset.name, [spec.name], self.folder, self.dataset.urls(spec), "downloading is disabled"
            )
        with self.lock(spec):
            return self.downloader(self.dataset, spec, self.folder)

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
                if os.path.islink(above):  # dangling or looping: mkdir would fail with a misleading "File exists"
                    msg = (
                        f"cannot use the data folder {folder}: {above} is a broken or looping symbolic link, "
                        "not a folder; move or delete that link"
                    )
                    raise _NotAFolder(msg) from NotADirectoryError(20, "Not a directory", str(above))
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
