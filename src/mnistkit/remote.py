"""Mirrors on any storage fsspec reaches: ``s3://``, ``gs://``, ``az://``, ``hdfs://``, ``sftp://``, ...

A mirror base such as ``s3://bucket/prefix`` holds ``<base>/<dataset>/<file name>``,
the layout of every other source.  This module is the one place that knows about
fsspec; it is imported by :mod:`mnistkit.sources` (which asks :func:`is_remote`
and calls :func:`fetch` for such a location) and by :mod:`mnistkit.mirror`
(publishing and checking a mirror, through :func:`open_place`).  fsspec and the
backend packages are imported only when a remote URL is used.

Rules, the same as for HTTP mirrors where the backend allows them:

* the object is read in blocks into ``<file>.part`` beside its final name, its
  magic bytes checked as soon as they arrive, its size capped by the registry;
  the caller verifies the decoded bytes before the rename;
* transient failures (connection errors, timeouts, server errors) are retried
  with the downloader's backoff; anything else (not found, access denied, no
  credentials, a missing bucket) moves on to the next source at once, with a
  one-line reason;
* an interrupted transfer resumes from the ``.part`` file with an offset read,
  only while the object's size and version stamp (ETag, modification time) are
  those recorded when it began.

Credentials and endpoints are the backend's business: environment variables
(``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL``,
``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_CONNECTION_STRING``, ...),
their config files, and fsspec's own configuration (``FSSPEC_S3_ENDPOINT_URL``,
``FSSPEC_S3='{"anon": true}'``, ``~/.config/fsspec/*.json``).  mnistkit never
reads, stores or prints them, and refuses a URL that carries a password.

The hook in :class:`mnistkit.sources.Downloader` is small: ``locations()`` maps a
remote base with :func:`join` (and, offline, drops those :func:`needs_network` says use
the network), and ``_obtain()`` calls :func:`fetch` when :func:`is_remote`.  :func:`fetch`
uses the downloader's retry policy and timeouts (from :class:`mnistkit.settings.Settings`),
``sleep``, ``rng``, ``clock`` and ``progress``; each try streams through
:func:`mnistkit.transfer.stream_body` (magic check, size cap, slow-source guard) into the
``.part`` file named by :mod:`mnistkit.layout`, with its resume record
(a :class:`mnistkit.transfer.ResumeRecord` whose validator is the object's stamp).
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ._log import log
from .errors import ArgumentError, MissingDependencyError, MnistkitError

if TYPE_CHECKING:  # pragma: no cover
    from .registry import FileSpec
    from .sources import Downloader

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
#: Handled elsewhere: HTTP by requests, file:// and plain folders by the standard library.
_NOT_REMOTE = {"http", "https", "file"}
#: fsspec protocols that never touch the network (usable with MNISTKIT_OFFLINE=1).
_LOCAL_PROTOCOLS = {"memory", "file", "local"}
#: Object stores: a single PUT (or a multipart upload completed in one request) is atomic, and a
#: "rename" would be a copy and a delete; elsewhere files are written beside and renamed.
_OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "memory"}
#: The package each scheme needs besides fsspec, and the extra that installs both.
BACKENDS: dict[str, tuple[str, str]] = {
    "s3": ("s3fs", "cloud"),
    "s3a": ("s3fs", "cloud"),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
    "az": ("adlfs", "azure"),
    "abfs": ("adlfs", "azure"),
    "abfss": ("adlfs", "azure"),
    "sftp": ("paramiko", "sftp"),
    "ssh": ("paramiko", "sftp"),
    "hdfs": ("pyarrow", "hdfs"),
}
#: Where each backend looks for credentials, for the "no credentials" message.
_CREDENTIAL_HINTS = {
    "s3": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE (or ~/.aws/credentials); "
    "for a public bucket set FSSPEC_S3_ANON=true",
    "gs": "run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS",
    "az": "set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with a key or `az login`",
}
_CREDENTIAL_ERRORS = {
    "NoCredentialsError",
    "PartialCredentialsError",
    "CredentialRetrievalError",
    "DefaultCredentialsError",
    "ClientAuthenticationError",
    "RefreshError",
    "AuthenticationException",
    "PasswordRequiredException",
}
_TRANSIENT_ERRORS = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "ClientConnectorError",
    "ServerDisconnectedError",
    "ClientOSError",
    "ClientPayloadError",
    "ServerTimeoutError",
    "ResponseStreamingError",
    "IncompleteReadError",
    "SSHException",
}
_BLOCK = 1 << 20
#: Bytes per read from a remote object: each read is one ranged GET on object stores, whose fixed cost
#: (signing, a round trip) dominates small reads; what is lost when a transfer breaks is at most this.
_READ = 8 << 20


class StorageError(MnistkitError, OSError):
    """A mirror or a publishing destination on remote storage could not be used.

    The message is one line: the URL, what went wrong, and what to do.
    """


class _MissingBackend(MissingDependencyError):
    """fsspec, or the package a scheme needs, is not installed."""

    def __init__(self, scheme: str, package: str, extra: str) -> None:
        super().__init__(package, extra)
        self.scheme = scheme
        need = f"fsspec and {package}" if package != "fsspec" else "fsspec"
        install = f"pip install 'mnistkit[{extra}]'"
        self.args = (f"{scheme}:// mirrors need {need}, which is not installed; install it with: {install}",)

    def __str__(self) -> str:
        return self.args[0]

    def __reduce__(self):
        return (type(self), (self.scheme, self.package, self.extra))


def scheme_of(location: str) -> str | None:
    """The URL scheme of ``location`` (the first of a chained ``a::b://`` URL), lower case, or None."""
    first = location.split("::", 1)[0] if "::" in location else location
    match = _SCHEME.match(first.strip())
    if match:
        return match.group(1).lower()
    if "::" in location:  # "simplecache::s3://...": the first protocol has no "://"
        return first.strip().lower() or None
    return None


#: fsspec protocols mnistkit documents, known even where fsspec is not installed (so that a
#: mirror list can be checked, and a missing package named, without importing it).
_DOCUMENTED_PROTOCOLS = {
    "s3",
    "s3a",
    "gs",
    "gcs",
    "az",
    "abfs",
    "abfss",
    "adl",
    "hdfs",
    "webhdfs",
    "sftp",
    "ssh",
    "ftp",
    "memory",
    "local",
    "simplecache",
    "filecache",
    "blockcache",
}


def is_known_protocol(scheme: str) -> bool:
    """Whether ``scheme`` names an fsspec protocol (documented here, or known to the installed fsspec)."""
    scheme = scheme.lower()
    if scheme in _DOCUMENTED_PROTOCOLS:
        return True
    try:
        from fsspec.registry import known_implementations, registry
    except ImportError:
        return False
    return scheme in known_implementations or scheme in registry


def is_remote(location: str) -> bool:
    """Whether ``location`` is a URL for fsspec (any scheme but http, https and file)."""
    scheme = scheme_of(location)
    return scheme is not None and scheme not in _NOT_REMOTE


def needs_network(location: str) -> bool:
    """Whether a remote ``location`` uses the network (``memory://`` does not)."""
    return is_remote(location) and scheme_of(location) not in _LOCAL_PROTOCOLS


def join(base: str, *parts: str) -> str:
    """``base/part/...`` with one slash between each (a bare ``s3://`` keeps its two: no bucket is made up)."""
    while base.endswith("/") and not base.endswith("://"):
        base = base[:-1]
    return "/".join([base, *(p.strip("/") for p in parts)])


def _password_span(url: str) -> tuple[int, int] | None:
    """Where the password of ``scheme://user:password@host/...`` is in ``url``, or None.

    Read by hand, not with urlsplit: an AWS secret key holds ``/`` and ``+``, and a password may
    hold ``#`` or ``?``, which urlsplit takes for the end of the host, so it finds no password there.
    """
    start = url.find("://")
    if start < 0:
        return None
    start += 3
    at = url.find("@", start)
    colon = url.find(":", start, at) if at >= 0 else -1
    if colon < 0 or re.search(r"[/?#]", url[start:colon]):  # a ':' in the path, not in user:password
        return None
    secret = url[colon + 1 : at]
    port = re.split(r"[/?#]", secret, maxsplit=1)[0]
    if port.isdigit() and port != secret:  # host:port/path@...: an '@' in the path, no password
        return None
    return colon + 1, at


def redact(url: str) -> str:
    """``url`` with any password in it replaced by ``***`` (for messages)."""
    span = _password_span(url)
    if span is None or span[0] == span[1]:
        return url
    return url[: span[0]] + "***" + url[span[1] :]


def check_url(url: str) -> None:
    """Refuse a remote URL that carries a password: credentials belong to the backend's configuration.

    Raises
    ------
    ArgumentError
    """
    span = _password_span(url)
    password = url[span[0] : span[1]] if span else None
    scheme = scheme_of(url)
    if scheme in BACKENDS and scheme not in ("hdfs",) and "::" not in url and not urllib.parse.urlsplit(url).netloc:
        msg = f"{redact(url)}: the URL names no bucket or host; write it as {scheme}://BUCKET-OR-HOST/prefix"
        raise ArgumentError(msg)
    if password:
        msg = (
            f"{redact(url)}: the URL holds a password; mnistkit never takes credentials in a URL. "
            f"Configure the backend instead (environment, its config files, or FSSPEC_<PROTOCOL>_<OPTION>)"
        )
        raise ArgumentError(msg)


def filesystem(url: str, timeouts: tuple[float, float] | None = None):
    """The fsspec filesystem and path of ``url``, configured the backend's way.

    A new instance each call (``skip_instance_cache``): credentials and endpoints
    changed in the environment since the last call are seen.  ``timeouts`` (seconds to
    connect, and to wait for data) reach the backends that take them (s3fs: botocore's
    ``connect_timeout`` and ``read_timeout``) unless fsspec's own configuration sets them.

    Raises
    ------
    MissingDependencyError
        fsspec or the scheme's backend package is not installed (one line: what to install).
    ArgumentError
        A password in the URL, or a URL fsspec cannot parse.
    """
    check_url(url)
    scheme = scheme_of(url) or "?"
    package, extra = BACKENDS.get(scheme, ("fsspec", "cloud"))
    try:
        import fsspec.core
    except ImportError:
        raise _MissingBackend(scheme, package, extra) from None
    options = {}
    if timeouts is not None and scheme in ("s3", "s3a") and "::" not in url:
        import fsspec.config

        config = dict(fsspec.config.conf.get("s3", {}).get("config_kwargs") or {})
        config.setdefault("connect_timeout", timeouts[0])
        config.setdefault("read_timeout", timeouts[1])
        options["config_kwargs"] = config
    try:
        return fsspec.core.url_to_fs(url, skip_instance_cache=True, **options)
    except ImportError:
        raise _MissingBackend(scheme, package, extra) from None
    except ValueError as err:
        msg = f"{redact(url)}: fsspec cannot use this URL ({_short(err)})"
        raise ArgumentError(msg) from None


# --- what went wrong, in one line -----------------------------------------------------------------


def _names(err: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(err).__mro__}


def describe(err: BaseException, url: str) -> tuple[str, bool]:
    """``(reason, transient)`` for an exception raised by a backend while using ``url``."""
    names = _names(err)
    scheme = scheme_of(url) or ""
    family = {"s3a": "s3", "gcs": "gs", "abfs": "az", "abfss": "az"}.get(scheme, scheme)
    text = _short(err)
    if names & _CREDENTIAL_ERRORS:
        hint = _CREDENTIAL_HINTS.get(family, "configure the backend's credentials (environment or config files)")
        return f"no usable credentials for {scheme}:// ({text}); {hint}", False
    if isinstance(err, FileNotFoundError):
        if "bucket" in text.lower() or "container" in text.lower():
            where = urllib.parse.urlsplit(url).netloc
            return f"the bucket {where} does not exist ({text}); create it or correct the URL", False
        return "not found", False
    if isinstance(err, PermissionError):
        hint = _CREDENTIAL_HINTS.get(family, "check the backend's credentials")
        return f"access denied ({text}); check the credentials and permissions in use: {hint}", False
    if isinstance(err, (ConnectionError, TimeoutError)) or names & _TRANSIENT_ERRORS:
        return f"connection failed ({text})", True
    if isinstance(err, OSError):  # a backend's translation of a server error (5xx, throttling, ...)
        return f"storage error ({text})", True
    return f"{type(err).__name__}: {text}", False


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) < 200 else text[:197] + "..."


# --- a remote mirror as a download source ----------------------------------------------------------


def _stamp(info: dict) -> str:
    """What identifies this version of an object: its ETag or checksum, else its modification time."""
    for key in ("ETag", "etag", "md5Hash", "crc32c", "content_md5", "checksum"):
        if info.get(key):
            return f"{key}:{info[key]}"
    for key in ("LastModified", "last_modified", "mtime", "updated", "modified", "created"):
        if info.get(key):
            return f"{key}:{info[key]}"
    return ""


def fetch(dl: Downloader, url: str, spec: FileSpec, part: Path) -> None:
    """Read ``url`` into ``part``, retrying transient failures with ``dl``'s policy.

    Raises
    ------
    SourceFailed
        This source cannot deliver the file (the reason is one line).
    MissingDependencyError, ArgumentError
        The URL cannot be used at all: say so now rather than fall through to other mirrors.
    """
    from .transfer import SourceFailed

    try:
        fs, path = _cached_filesystem(dl, url)
    except MnistkitError:
        raise
    except Exception as err:  # a backend failing to start (bad config): this source is unusable
        reason, _ = describe(err, url)
        raise SourceFailed(reason) from None
    attempt = 0
    while True:
        try:
            _transfer(dl, fs, path, url, spec, part)
            return
        except SourceFailed as err:
            attempt += 1
            if not err.transient or attempt >= dl.retry.attempts:
                if err.transient:
                    msg = f"{err.reason} (gave up after {attempt} tries)"
                    raise SourceFailed(msg) from None
                raise
            wait = dl.retry.delay(attempt - 1, dl.rng)
            log.info("%s: %s; retrying in %.1f s", url, err.reason, wait)
            dl.sleep(wait)


def _cached_filesystem(dl: Downloader, url: str):
    """:func:`filesystem`, made once per downloader and bucket (host): setting up a client costs ~0.3 s."""
    if "::" in url:  # a chained URL: each part has its own options
        return filesystem(url)
    parts = urllib.parse.urlsplit(url)
    key = f"{parts.scheme}://{parts.netloc}"
    cache = dl.__dict__.setdefault("_remote_filesystems", {})
    if key not in cache:
        fs, _ = filesystem(url, (dl.retry.connect_timeout, dl.retry.read_timeout))  # --timeout reaches it
        cache[key] = fs
    check_url(url)
    fs = cache[key]
    return fs, fs._strip_protocol(url)


def _transfer(dl: Downloader, fs, path: str, url: str, spec: FileSpec, part: Path) -> None:
    """One try: the object's blocks into ``part`` through :func:`mnistkit.transfer.stream_body`."""
    from .layout import record_path, unlink
    from .transfer import HEAD_BYTES, ResumeRecord, SourceFailed, size_cap, stream_body

    try:
        info = fs.info(path)
    except Exception as err:
        reason, transient = describe(err, url)
        raise SourceFailed(reason, transient) from None
    if info.get("type", "file") != "file":
        msg = f"is a {info.get('type')}, not a file"
        raise SourceFailed(msg)
    total = info.get("size")
    cap = size_cap(spec)
    if total is not None and total > cap:
        msg = f"holds {total} bytes, more than any copy of {spec.name} can be ({cap})"
        raise SourceFailed(msg)
    stamp = _stamp(info)
    meta_path = record_path(part)
    have = part.stat().st_size if part.exists() else 0
    record = ResumeRecord.read(meta_path) if have else None
    same = record is not None and record.url == redact(url) and bool(stamp) and record.validator == stamp
    if not (have and same and total and have <= total):
        have = 0  # nothing kept, or kept from another object or another version of it: start over
    elif have == total:
        return  # complete already (a process stopped while verifying it): the caller verifies it
    # The record the HTTP transfers write (transfer.ResumeRecord): the object's stamp is its validator.
    ResumeRecord(redact(url), stamp or None, total).write(meta_path)
    received = have
    from .notebook import progress_bar  # a terminal bar, a notebook widget, or None

    bar = progress_bar(total=total, desc=spec.name, unit="B", progress=dl.progress, initial=have, leave=True)
    try:
        kept = b""
        if have:  # the kept bytes and the new ones are judged together
            with open(part, "rb") as fh:
                kept = fh.read(HEAD_BYTES)
        with (
            fs.open(path, "rb", block_size=_READ, cache_type="none") as fin,
            open(part, "ab" if have else "wb") as fout,
        ):
            if have:
                fin.seek(have)

            def blocks():
                nonlocal received
                while chunk := fin.read(_READ):
                    received += len(chunk)
                    yield chunk

            received = stream_body(
                blocks(),
                fout,
                spec,
                start=have,
                kept_head=kept,
                clock=dl.clock,
                min_rate=dl.retry.min_rate,
                grace=2 * dl.retry.read_timeout,
                progress=bar.update if bar is not None else None,
            )
    except SourceFailed as err:
        if err.discard or not err.transient:
            unlink(part)  # wrong content, or kept bytes that are not the file: not worth resuming
            unlink(meta_path)
        raise
    except OSError as err:
        if isinstance(err, (FileNotFoundError, PermissionError)) or not _is_local_write_error(err, part):
            reason, transient = describe(err, url)
            if transient:
                reason = f"transfer interrupted after {received} bytes ({reason})"
            raise SourceFailed(reason, transient) from None
        from .errors import write_failed

        unlink(part)
        unlink(meta_path)
        raise write_failed(part.parent, err) from err
    except Exception as err:  # a backend's own exception types (botocore, aiohttp, paramiko, ...)
        reason, transient = describe(err, url)
        msg = f"transfer interrupted after {received} bytes ({reason})"
        raise SourceFailed(msg, transient) from None
    finally:
        if bar is not None:
            bar.close()
    if total is not None and received != total:
        msg = f"transfer ended after {received} of {total} bytes"
        raise SourceFailed(msg, transient=True)


def _is_local_write_error(err: OSError, part: Path) -> bool:
    """Whether an OSError came from our own disk (full, quota, file size limit), not the backend."""
    import errno

    return err.errno in {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS} or (
        err.filename is not None and Path(err.filename) == part
    )


# --- a place to publish to or check: a folder, or any fsspec URL ------------------------------------


@dataclass(frozen=True)
class Entry:
    """What a place holds under a relative path: its size and version stamp."""

    size: int | None
    stamp: str


class Place:
    """A mirror base, read and written by relative paths (``mnist/train-images-idx3-ubyte.gz``).

    Made by :func:`open_place`; :class:`FolderPlace` and :class:`RemotePlace` implement it.
    """

    base: str
    #: Whether :meth:`put_file` and :meth:`put_bytes` can work here at all.
    writable: bool = True

    def url(self, rel: str) -> str:
        """The full location of ``rel``, for messages."""
        return join(redact(self.base), rel)

    def entry(self, rel: str) -> Entry | None:  # pragma: no cover - interface
        """Size and stamp of ``rel``, or None when absent."""
        raise NotImplementedError

    def open(self, rel: str) -> BinaryIO:  # pragma: no cover - interface
        """``rel`` for reading, as a binary stream."""
        raise NotImplementedError

    def put_file(self, local: Path, rel: str, progress: bool = False) -> None:  # pragma: no cover - interface
        """Copy ``local`` to ``rel`` so that ``rel`` is never seen half-written (a bar on stderr if ``progress``)."""
        raise NotImplementedError

    def put_bytes(self, data: bytes, rel: str) -> None:  # pragma: no cover - interface
        """Write ``data`` to ``rel``, atomically as :meth:`put_file`."""
        raise NotImplementedError

    def read_bytes(self, rel: str) -> bytes | None:
        """The content of a small file, or None when absent."""
        if self.entry(rel) is None:
            return None
        with self.open(rel) as fh:
            return fh.read()


class FolderPlace(Place):
    """A local (or shared) folder: written beside, fsynced, then renamed."""

    def __init__(self, base: str) -> None:
        self.base = base
        if base.lower().startswith("file:"):
            self.root = Path(urllib.parse.unquote(urllib.parse.urlsplit(base).path))
        else:
            self.root = Path(base).expanduser()

    def url(self, rel: str) -> str:
        return str(self.root / rel)

    def entry(self, rel: str) -> Entry | None:
        try:
            st = (self.root / rel).stat()
        except FileNotFoundError:
            return None
        # ctime and inode too: a rewrite that puts the old mtime back (cp -p, rsync -t, bit rot repaired by
        # hand) still changes them, so publish reads such a file back instead of trusting the index.
        return Entry(st.st_size, f"mtime_ns:{st.st_mtime_ns};ctime_ns:{st.st_ctime_ns};ino:{st.st_ino}")

    def open(self, rel: str) -> BinaryIO:
        return open(self.root / rel, "rb")

    def put_file(self, local: Path, rel: str, progress: bool = False) -> None:
        import shutil

        with open(local, "rb") as fin:
            self._write(rel, lambda fout: shutil.copyfileobj(fin, fout, _BLOCK))

    def put_bytes(self, data: bytes, rel: str) -> None:
        self._write(rel, lambda fout: fout.write(data))

    def _write(self, rel: str, fill) -> None:
        from .layout import create_temp, unlink

        final = self.root / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = create_temp(final.parent, f".{final.name}.", ".tmp")
        try:
            with os.fdopen(fd, "wb") as fout:
                fill(fout)
                fout.flush()
                os.fsync(fout.fileno())  # the data is on disk before the name points at it
            os.replace(tmp, final)
        except BaseException:
            unlink(tmp)
            raise


class RemotePlace(Place):
    """Any fsspec URL: object stores get one atomic upload per file, filesystems a write beside and a rename."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.fs, self.root = filesystem(base)
        protocols = self.fs.protocol if isinstance(self.fs.protocol, (tuple, list)) else (self.fs.protocol,)
        self.atomic_put = bool(set(protocols) & _OBJECT_STORES)

    def _path(self, rel: str) -> str:
        return join(self.root, rel) if self.root else rel

    def entry(self, rel: str) -> Entry | None:
        try:
            info = self.fs.info(self._path(rel))
        except FileNotFoundError as err:
            if "bucket" in str(err).lower() or "container" in str(err).lower():
                raise self._error(err, rel) from None
            return None
        except Exception as err:
            raise self._error(err, rel) from None
        if info.get("type", "file") != "file":
            return None
        return Entry(info.get("size"), _stamp(info))

    def open(self, rel: str) -> BinaryIO:
        try:
            return self.fs.open(self._path(rel), "rb", block_size=4 * _BLOCK)
        except Exception as err:
            raise self._error(err, rel) from None

    def put_file(self, local: Path, rel: str, progress: bool = False) -> None:
        def upload(target: str) -> None:
            if not progress:
                self.fs.put_file(str(local), target)
                return
            import sys

            from fsspec.callbacks import TqdmCallback

            bar = {
                "desc": rel.rsplit("/", 1)[-1],
                "unit": "B",
                "unit_scale": True,
                "unit_divisor": 1024,
                "file": sys.stderr,
            }
            self.fs.put_file(str(local), target, callback=TqdmCallback(tqdm_kwargs=bar))

        self._put(rel, upload)

    def put_bytes(self, data: bytes, rel: str) -> None:
        self._put(rel, lambda target: self.fs.pipe_file(target, data))

    def _put(self, rel: str, write) -> None:
        import secrets

        final = self._path(rel)
        try:
            if self.atomic_put:
                write(final)  # one request, or a multipart upload that appears whole when completed
                return
            parent = final.rsplit("/", 1)[0]
            if parent:
                self.fs.makedirs(parent, exist_ok=True)
            tmp = f"{parent}/.{final.rsplit('/', 1)[-1]}.{secrets.token_hex(6)}.tmp"
            write(tmp)
            try:
                self.fs.mv(tmp, final)
            except OSError:  # SFTP's rename will not replace: remove the old file, then rename
                self.fs.rm_file(final)
                self.fs.mv(tmp, final)
        except MnistkitError:
            raise
        except Exception as err:
            raise self._error(err, rel) from None

    def _error(self, err: BaseException, rel: str) -> StorageError:
        url = self.url(rel)
        reason, _ = describe(err, url)
        return StorageError(f"{url}: {reason}")


def open_place(base: str | os.PathLike) -> Place:
    """A :class:`Place` for a folder, a ``file://`` URL or any fsspec URL.

    Raises
    ------
    MissingDependencyError
        For an fsspec URL when fsspec or its backend is not installed.
    ArgumentError
        For an http(s) URL (read-only: use ``mnistkit serve`` there), or a URL with a password.
    StorageError
        When the backend cannot be set up.
    """
    if not isinstance(base, (str, os.PathLike)) or not str(base).strip():
        msg = "the destination must be a folder or a URL such as s3://bucket/prefix"
        raise ArgumentError(msg)
    base = str(base).strip()
    if is_remote(base):
        try:
            return RemotePlace(base)
        except MnistkitError:
            raise
        except Exception as err:
            reason, _ = describe(err, base)
            msg = f"{redact(base)}: {reason}"
            raise StorageError(msg) from None
    if scheme_of(base) in ("http", "https"):
        return HttpPlace(base)
    return FolderPlace(base)


class HttpPlace(Place):
    """An HTTP mirror (such as ``mnistkit serve``), read-only: for checking, never for publishing."""

    writable = False

    def __init__(self, base: str) -> None:
        import requests

        self.base = base
        self.session = requests.Session()

    def _get(self, rel: str, stream: bool):
        import requests

        try:
            resp = self.session.get(
                join(self.base, rel), stream=stream, timeout=(10, 30), headers={"Accept-Encoding": "identity"}
            )
        except requests.RequestException as err:
            msg = f"{self.url(rel)}: {_short(err)}"
            raise StorageError(msg) from None
        if resp.status_code == 404:
            resp.close()
            return None
        if resp.status_code != 200:
            resp.close()
            msg = f"{self.url(rel)}: HTTP {resp.status_code} {resp.reason}"
            raise StorageError(msg)
        return resp

    def entry(self, rel: str) -> Entry | None:
        import requests

        try:
            resp = self.session.head(join(self.base, rel), timeout=(10, 30), allow_redirects=True)
        except requests.RequestException as err:
            msg = f"{self.url(rel)}: {_short(err)}"
            raise StorageError(msg) from None
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            msg = f"{self.url(rel)}: HTTP {resp.status_code} {resp.reason}"
            raise StorageError(msg)
        length = resp.headers.get("content-length")
        return Entry(int(length) if length and length.isdigit() else None, resp.headers.get("etag") or "")

    def open(self, rel: str) -> BinaryIO:
        resp = self._get(rel, stream=True)
        if resp is None:
            msg = f"{self.url(rel)}: not found"
            raise StorageError(msg)
        resp.raw.decode_content = False
        return resp.raw

    def put_file(self, local: Path, rel: str, progress: bool = False) -> None:
        msg = (
            f"{self.base}: an HTTP mirror is read-only; publish to a folder (then `mnistkit serve` it) or an fsspec URL"
        )
        raise ArgumentError(msg)

    def put_bytes(self, data: bytes, rel: str) -> None:
        self.put_file(Path(), rel)
