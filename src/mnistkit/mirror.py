"""Publishing a verified mirror, and checking one where it stands.

:func:`publish` copies the verified files of datasets from the data folder to a
folder or any fsspec URL (``s3://bucket/prefix``, ``gs://...``, ``sftp://...``)
in the mirror layout ``<dest>/<dataset folder>/<published name>``, then writes
``<dest>/<dataset folder>/index.json`` with each file's size and checksums.
:func:`verify_mirror` reads a mirror's files where they are (streamed, never
saved) and checks them against the registry and the index.

Each file appears whole or not at all: an object store gets one upload per file
(a single PUT, or a multipart upload that appears only when completed), other
filesystems a temporary name beside the file and a rename.  A file already on
the destination with the right size and checksum is not uploaded again.

Index format (``format`` 1)::

    {"format": 1, "generator": "mnistkit 0.1.0", "folder": "mnist", "datasets": ["mnist"],
     "files": {"train-images-idx3-ubyte.gz": {"size": 9912422, "sha256": "sha256:...",
               "decoded_sha256": "sha256:...", "stamp": "ETag:..."}}, "updated": "2026-..."}

``stamp`` is the destination's version mark of the file (ETag, or modification
time) as seen right after the upload: a later publish skips a file whose size,
stamp and checksum are unchanged without reading it back.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._log import log
from .errors import ArgumentError, ChecksumError, IdxFormatError, MnistkitError
from .integrity import file_digest, split_digest, verify
from .registry import DATASETS, Dataset, FileSpec, get_dataset
from .remote import Place, StorageError, open_place
from .settings import Settings

INDEX_NAME = "index.json"
INDEX_FORMAT = 1

__all__ = ["INDEX_NAME", "MirrorFinding", "Published", "StorageError", "publish", "verify_mirror"]


@dataclass(frozen=True)
class Published:
    """What :func:`publish` did with one file.

    Attributes
    ----------
    folder, name : str
        Where it is on the mirror: ``<dest>/<folder>/<name>``.
    url : str
        Its full location.
    size : int
        Bytes.
    sha256 : str
        ``"sha256:<hex>"`` of the file as stored.
    action : {"uploaded", "skipped", "index"}
        Uploaded, already there with the right checksum, or the dataset folder's index.
    """

    folder: str
    name: str
    url: str
    size: int
    sha256: str
    action: str


@dataclass(frozen=True)
class MirrorFinding:
    """The verdict of :func:`verify_mirror` on one file of a mirror.

    Attributes
    ----------
    folder, name, url : str
        Where it is.
    size : int or None
        Bytes read (None when missing).
    problem : str or None
        What is wrong, or None when it holds exactly the published data and matches the index.
    note : str or None
        Something worth saying that is not wrong (a folder without an index: files checked
        against the registry only).
    """

    folder: str
    name: str
    url: str
    size: int | None = None
    problem: str | None = None
    note: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the file holds exactly the published data."""
        return self.problem is None


# --- which files ---------------------------------------------------------------------------------


def _groups(datasets: Sequence[Dataset]) -> dict[str, list[FileSpec]]:
    """Mirror folder -> the files published there (archive members are not: their archive is)."""
    groups: dict[str, dict[str, FileSpec]] = {}
    for ds in datasets:
        files = groups.setdefault(ds.folder, {})
        for spec in ds.files:
            if spec.archive is None:
                files.setdefault(spec.name, spec)
    return {folder: list(files.values()) for folder, files in groups.items()}


def _present(ds: Dataset, home) -> bool:
    from .store import Store

    store = Store(ds, home)
    return any(store.candidates(spec) for spec in ds.files if spec.archive is None)


def _index_datasets(folder: str, files: dict) -> list[str]:
    """The datasets whose published files are all in ``files``."""
    return [
        ds.name
        for ds in DATASETS.values()
        if ds.folder == folder and all(spec.name in files for spec in ds.files if spec.archive is None)
    ]


# --- publishing ----------------------------------------------------------------------------------


def publish(
    dest: str | os.PathLike,
    names: Sequence[str] | None = None,
    *,
    data_home: str | os.PathLike | None = None,
    mirrors: str | Sequence[str] | None = None,
    offline: bool | None = None,
    progress: bool | None = None,
    timeout: float | None = None,
    report: Callable[[Published], None] | None = None,
    settings: Settings | None = None,
) -> list[Published]:
    """Write verified copies of datasets to ``dest`` in the mirror layout, with an index per folder.

    Parameters
    ----------
    dest : str or path-like
        A folder (a shared filesystem), a ``file://`` URL, or any fsspec URL such as
        ``s3://bucket/prefix`` (needs ``pip install 'mnistkit[cloud]'``).  Credentials
        and endpoints come from the backend's usual configuration.
    names : sequence of str, optional
        Datasets to publish; a dataset missing locally is downloaded (and verified)
        first.  None (the default): every dataset with files in the data folder.
    data_home : path-like, optional
        The data folder to publish from (default: ``$MNISTKIT_HOME`` or the user cache).
    mirrors, offline, progress, timeout
        Where and how missing files are downloaded, as for :func:`mnistkit.load`; ``progress`` also
        shows a bar per upload to an fsspec destination (None: when stderr is a terminal).
    report : callable, optional
        Called with each :class:`Published` as soon as it is done (the CLI prints them).
    settings : Settings, optional
        Used as it is instead of ``data_home``, ``mirrors``, ``offline``, ``progress`` and
        ``timeout`` (the command line builds one from its flags).

    Returns
    -------
    list of Published
        One per file, then one per index written.

    Raises
    ------
    ArgumentError
        No dataset named and none in the data folder, or an unknown name.
    StorageError
        The destination cannot be written (missing bucket, no credentials, access denied, ...).
    MissingDependencyError
        An fsspec URL without fsspec or its backend installed.
    DownloadError, MissingFilesError
        A named dataset is not here and cannot be downloaded.
    """
    from .api import dataset_store

    if settings is None:
        settings = Settings.resolve(data_home, mirrors, offline, progress, timeout)
    home = settings.data_home
    progress = settings.progress
    if names:
        datasets = list({ds.name: ds for ds in map(get_dataset, names)}.values())
    else:
        datasets = [ds for ds in DATASETS.values() if _present(ds, home)]
        if not datasets:
            msg = (
                f"nothing to publish: no dataset has files in {home}; name the datasets to publish "
                f"(they are downloaded first) or run `mnistkit download NAME`"
            )
            raise ArgumentError(msg)
    place = open_place(dest)
    if not place.writable:
        msg = f"{dest}: an HTTP mirror is read-only; publish to a folder (then `mnistkit serve` it) or an fsspec URL"
        raise ArgumentError(msg)
    done: list[Published] = []
    show_bars = progress if progress is not None else sys.stderr.isatty()

    def note(item: Published) -> None:
        done.append(item)
        if report is not None:
            report(item)

    stores = {ds.folder: dataset_store(ds, settings=settings) for ds in datasets}
    for folder, specs in _groups(datasets).items():
        store = stores[folder]
        old = _read_index(place, folder)
        old_files = old.get("files", {}) if isinstance(old.get("files"), dict) else {}
        files = dict(old_files)
        for spec in specs:
            local, sha256 = _verified_local(store, spec)
            rel = f"{folder}/{spec.name}"
            size = local.stat().st_size
            action = "skipped" if _already_there(place, rel, size, sha256, old_files.get(spec.name)) else "uploaded"
            if action == "uploaded":
                place.put_file(local, rel, progress=show_bars)
            entry = place.entry(rel)
            if entry is None or (entry.size is not None and entry.size != size):
                got = "nothing" if entry is None else f"{entry.size} bytes"
                msg = f"{place.url(rel)}: {size} bytes were uploaded but the destination holds {got}"
                raise StorageError(msg)
            files[spec.name] = {
                "size": size,
                "sha256": sha256,
                "decoded_sha256": spec.decoded_sha256,
                "stamp": entry.stamp,
            }
            note(Published(folder, spec.name, place.url(rel), size, sha256, action))
            log.info("%s %s", action, place.url(rel))
        index = {
            "format": INDEX_FORMAT,
            "generator": f"mnistkit {_version()}",
            "folder": folder,
            "datasets": _index_datasets(folder, files),
            "files": files,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        data = json.dumps(index, indent=1, sort_keys=True).encode()
        place.put_bytes(data, f"{folder}/{INDEX_NAME}")
        note(
            Published(
                folder,
                INDEX_NAME,
                place.url(f"{folder}/{INDEX_NAME}"),
                len(data),
                "sha256:" + hashlib.sha256(data).hexdigest(),
                "index",
            )
        )
    return done


def _version() -> str:
    from . import __version__

    return __version__


def _read_index(place: Place, folder: str) -> dict:
    """The folder's index on ``place``, or {} when absent or unreadable."""
    data = place.read_bytes(f"{folder}/{INDEX_NAME}")
    if data is None:
        return {}
    try:
        index = json.loads(data)
    except ValueError:
        log.warning("%s is not valid JSON: ignored", place.url(f"{folder}/{INDEX_NAME}"))
        return {}
    return index if isinstance(index, dict) and index.get("format") == INDEX_FORMAT else {}


def _verified_local(store, spec: FileSpec) -> tuple[Path, str]:
    """A verified copy of ``spec`` in the data folder (downloaded if absent), and its file SHA-256."""
    if spec.kind == "archive":
        path = store.archive_path(spec)  # verified once, trusted while its size and mtime hold
        return path, spec.sha256 or file_digest(path)
    for path in store.candidates(spec):
        try:
            verify(path, spec, source=str(path))
        except (IdxFormatError, ChecksumError) as err:
            log.warning("not publishing %s: %s", path, err)
            continue
        return path, file_digest(path)
    path = store.fetch(spec)  # under the file's lock; the downloader verifies what it brings
    return path, file_digest(path)


def _already_there(place: Place, rel: str, size: int, sha256: str, recorded: dict | None) -> bool:
    """Whether ``rel`` already holds the file: same size and checksum (read back unless the stamp says so)."""
    entry = place.entry(rel)
    if entry is None or (entry.size is not None and entry.size != size):
        return False
    if (
        isinstance(recorded, dict)
        and recorded.get("sha256") == sha256
        and recorded.get("size") == size
        and entry.stamp
        and recorded.get("stamp") == entry.stamp
    ):
        return True  # unchanged since we uploaded it and recorded its stamp
    with place.open(rel) as fh:  # put there by other means: compare its bytes
        return _hash_stream(fh, "sha256")[1] == sha256


def _hash_stream(fh, *algorithms: str) -> tuple[int | str, ...]:  # (size, digest, ...)
    hashers = [hashlib.new(a) for a in algorithms]
    size = 0
    for block in iter(lambda: fh.read(1 << 20), b""):
        size += len(block)
        for h in hashers:
            h.update(block)
    return (size, *(f"{a}:{h.hexdigest()}" for a, h in zip(algorithms, hashers, strict=True)))


# --- checking a mirror where it stands -------------------------------------------------------------


class _Counting:
    """A read-only stream that hashes (SHA-256, and md5 when asked) and counts what passes through it."""

    def __init__(self, raw, name: str, md5: bool = False) -> None:
        self.raw = raw
        self.name = name
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5() if md5 else None

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.size += len(data)
        self.sha256.update(data)
        if self.md5 is not None:
            self.md5.update(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    def digest(self, algorithm: str) -> str:
        hasher = self.sha256 if algorithm != "md5" else self.md5
        assert hasher is not None, "md5 was not asked for when the stream was made"
        return hasher.hexdigest()


def verify_mirror(src: str | os.PathLike, names: Sequence[str] | None = None) -> list[MirrorFinding]:
    """Check the files of a mirror where they are, against the registry and the mirror's index.

    Every byte is read (streamed, nothing saved): the decoded bytes must be the
    published data (as for a download), and the size and SHA-256 the index
    records must be those of the file.

    Parameters
    ----------
    src : str or path-like
        The mirror's base: a folder, ``file://``, ``http(s)://`` (e.g. ``mnistkit serve``)
        or any fsspec URL.
    names : sequence of str, optional
        Datasets to check; each of their files must be on the mirror.  None: every
        dataset folder that has an ``index.json``, checked against its index.

    Returns
    -------
    list of MirrorFinding
        One per file checked (a missing file is a finding with a problem).

    Raises
    ------
    StorageError, MissingDependencyError, ArgumentError
        The mirror cannot be read at all.
    """
    place = open_place(src)
    datasets = list(DATASETS.values()) if not names else [get_dataset(n) for n in names]
    findings: list[MirrorFinding] = []
    for folder, specs in _groups(datasets).items():
        raw_index = place.read_bytes(f"{folder}/{INDEX_NAME}")
        if raw_index is None and not names:
            continue  # not published here
        index: dict = {}
        index_problem = None
        index_url = place.url(f"{folder}/{INDEX_NAME}")
        if raw_index is None:  # a mirror made by hand or by copying a data folder: still checkable
            note = f"no {INDEX_NAME}: files checked against the registry only (`mnistkit publish` writes one)"
            findings.append(MirrorFinding(folder, INDEX_NAME, index_url, None, None, note))
        else:
            try:
                index = json.loads(raw_index)
                if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
                    index_problem, index = f"{place.url(folder + '/' + INDEX_NAME)}: not a format-1 index", {}
            except ValueError:
                index_problem = f"{place.url(folder + '/' + INDEX_NAME)}: not valid JSON"
        listed = index.get("files", {}) if isinstance(index.get("files"), dict) else {}
        if index_problem:
            findings.append(MirrorFinding(folder, INDEX_NAME, index_url, None, index_problem))
        if not names and not index_problem:
            specs = [s for s in specs if s.name in listed]  # what this folder's index says was published
            if not specs:  # an index vouching for nothing is not "no index": say so, as a problem
                problem = f"{index_url}: lists none of this folder's files; publish again to rewrite it"
                findings.append(MirrorFinding(folder, INDEX_NAME, index_url, None, problem))
        for spec in specs:
            recorded = listed.get(spec.name)
            if spec.name in listed and not isinstance(recorded, dict):
                recorded = _MALFORMED  # an index entry that is not {"size": ..., "sha256": ...} vouches for nothing
            findings.append(_check_file(place, folder, spec, recorded))
    return findings


_MALFORMED = object()


def _check_file(place: Place, folder: str, spec: FileSpec, recorded: object) -> MirrorFinding:
    rel = f"{folder}/{spec.name}"
    url = place.url(rel)
    if place.entry(rel) is None:
        return MirrorFinding(folder, spec.name, url, None, "missing on the mirror")
    want_md5 = not spec.decoded_sha256 and not spec.sha256 and bool(spec.md5)
    with place.open(rel) as raw:
        stream = _Counting(raw, url, md5=want_md5)
        try:
            if spec.kind == "archive":
                stream.drain()
                if spec.size is not None and stream.size != spec.size:
                    raise ChecksumError(url, "size in bytes", str(spec.size), str(stream.size))
            else:
                verify(stream, spec, source=url)
                stream.drain()  # verify() stops at the end of the payload: hash the whole file
            if not spec.decoded_sha256 and (compressed := spec.sha256 or spec.md5):
                algo, want = split_digest(compressed)
                got = stream.digest(algo)
                if got != want:
                    raise ChecksumError(url, f"{algo} (of the compressed file)", want, got)
        except (IdxFormatError, ChecksumError) as err:
            return MirrorFinding(folder, spec.name, url, stream.size, str(err))
        except StorageError as err:
            return MirrorFinding(folder, spec.name, url, stream.size, str(err))
        except MnistkitError:
            raise
        except Exception as err:  # the backend failed mid-read
            from .remote import describe

            return MirrorFinding(folder, spec.name, url, stream.size, f"{url}: {describe(err, url)[0]}")
    sha256 = "sha256:" + stream.digest("sha256")
    if recorded is None:
        return MirrorFinding(folder, spec.name, url, stream.size, None)
    if not isinstance(recorded, dict):
        problem = f"{url}: its entry in {INDEX_NAME} is not a size and sha256 record; publish again to refresh it"
        return MirrorFinding(folder, spec.name, url, stream.size, problem)
    if recorded.get("size") != stream.size or recorded.get("sha256") != sha256:
        problem = (
            f"{url}: the index records {recorded.get('size')} bytes, {str(recorded.get('sha256'))[:23]}..., "
            f"the file has {stream.size} bytes, {sha256[:23]}...; publish again to refresh the index"
        )
        return MirrorFinding(folder, spec.name, url, stream.size, problem)
    return MirrorFinding(folder, spec.name, url, stream.size, None)
