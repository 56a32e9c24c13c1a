"""Where bytes come from: user folders, ``file://`` URLs, HTTP mirrors and fsspec URLs (:mod:`mnistkit.remote`).

:class:`Downloader` obtains one registry file into a dataset folder, verified:

* sources are tried in order: installed data distributions (:mod:`mnistkit.datadist`),
  then ``$MNISTKIT_MIRROR`` (or ``mirrors=``), each a base holding
  ``<base>/<dataset>/<file name>``, then the dataset's built-in mirrors;
* each HTTP transfer (:mod:`mnistkit.transfer`) has connect and read timeouts and a
  deadline for its headers, is retried with capped exponential backoff and jitter on
  transient failures (connection errors, timeouts, 429, 5xx), the count starting again
  after a try that made progress, and abandoned for the next source on anything else
  (403, 404, an HTML page, wrong bytes);
* the body goes to ``<file>.part`` in the destination folder; an interrupted
  transfer resumes from there with an HTTP Range request (``If-Range`` with a strong
  validator guards against a file that changed), from the same source or another one
  holding the same published bytes, and starts over when the server ignores it;
* the magic bytes are checked as soon as they arrive, the size is capped by the
  registry (local copies too), and the decoded bytes are verified before the file gets
  its published name (or, when a file of the user's holds that name, a place beside it:
  see :mod:`mnistkit.layout`).

The caller (the store) holds the file's inter-process lock around all of this,
so the ``.part`` file has exactly one writer.  Time, randomness and the HTTP
session are injected, so retry and backoff are testable without patching.
"""

from __future__ import annotations

import os
import random
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import remote
from ._log import log
from ._version import __version__
from .errors import (
    ChecksumError,
    DataFolderError,
    DownloadError,
    IdxFormatError,
    MissingFilesError,
    RegistryMismatchError,
    write_failed,
)
from .integrity import verify
from .layout import downloaded_path, part_path, record_path, unlink
from .registry import Dataset, FileSpec
from .settings import Settings
from .transfer import (
    ResumeRecord,
    SourceFailed,
    check_head,
    deadline_adapter,
    network_errors,
    open_response,
    raw_chunks,
    redact,
    resume_headers,
    short,
    size_cap,
    stream_body,
    triage,
)

__all__ = ["Downloader", "RetryPolicy", "is_http", "progress_step"]


def is_http(location: str) -> bool:
    """Whether ``location`` is an http(s) URL."""
    return location.lower().startswith(("http://", "https://"))


def _is_network(location: str) -> bool:
    """Whether a source needs the network: http(s), and fsspec URLs other than ``memory://``."""
    return is_http(location) or remote.needs_network(location)


def _local_folder(base: str) -> Path:
    if base.lower().startswith("file:"):
        parsed = urllib.parse.urlparse(base)
        return Path(urllib.parse.unquote(parsed.path))
    return Path(base).expanduser()


@dataclass
class RetryPolicy:
    """How hard to try one HTTP source.

    Attributes
    ----------
    attempts : int
        Tries per source on transient failures (the first included); a try that made
        progress (see :func:`progress_step`) starts the count again.
    base_delay, max_delay : float
        Backoff: ``min(max_delay, base_delay * 2**k)`` scaled by a random factor in [0.5, 1].
    connect_timeout, read_timeout : float
        Seconds to connect, and to wait for each piece of the answer; the status line and
        headers must arrive within twice ``read_timeout`` in all.
    min_rate : float
        Bytes per second a transfer must average once twice ``read_timeout`` has passed: a
        server that trickles a byte now and then never trips the read timeout, but is dropped
        (what arrived is kept and resumed; then the next source).
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 10.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    min_rate: float = 1024.0

    def delay(self, attempt: int, rng: Callable[[], float]) -> float:
        """Seconds to wait before try number ``attempt + 1``."""
        return float(min(self.max_delay, self.base_delay * 2**attempt) * (0.5 + 0.5 * rng()))


def progress_step(spec: FileSpec) -> int:
    """How many new bytes make a try count as progress: 64 KiB, less for small files."""
    return max(1, min(1 << 16, size_cap(spec) // 16))


def _user_agent() -> str:
    import requests

    return f"mnistkit/{__version__} (+https://pypi.org/project/mnistkit/) python-requests/{requests.__version__}"


class Downloader:
    """Fetch registry files into a folder, trying every source until one is right.

    Parameters
    ----------
    extra_sources : sequence of str
        Bases tried before the built-in mirrors (see :attr:`Settings.mirrors <mnistkit.settings.Settings>`).
    offline : bool
        Skip every network source (http(s), and fsspec URLs such as ``s3://`` other than
        ``memory://``); folders and ``file://`` URLs are still used.
    progress : bool or None
        Progress bar on stderr; None means only when stderr is a terminal.
    retry : RetryPolicy, optional
    session : requests.Session, optional
        A session to use (its proxies, certificates, adapters); one is made if None.  The
        headers deadline needs :func:`mnistkit.transfer.deadline_adapter` mounted on it.
    sleep, rng, clock : callable, optional
        Injected for tests: ``time.sleep``, ``random.random`` and ``time.monotonic`` by default.
    """

    def __init__(
        self,
        extra_sources: Sequence[str] = (),
        *,
        offline: bool = False,
        progress: bool | None = None,
        retry: RetryPolicy | None = None,
        session: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.extra_sources = list(extra_sources)
        self.offline = offline
        self.progress = progress
        self.retry = retry or RetryPolicy()
        self._session = session
        self.sleep = sleep
        self.rng = rng
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Settings) -> Downloader:
        """The downloader ``settings`` describe (mirrors, offline, progress, timeout)."""
        retry = RetryPolicy()
        if settings.timeout is not None:
            retry.read_timeout = retry.connect_timeout = settings.timeout
        return cls(settings.mirrors, offline=settings.offline, progress=settings.progress, retry=retry)

    # --- which sources ----------------------------------------------------------------------

    def locations(self, dataset: Dataset, spec: FileSpec) -> list[str]:
        """Every place ``spec`` is looked for, in order (offline: local ones only)."""
        from .datadist import folders  # pip-installed data distributions come first (see datadist.py)

        found = [str(folder) for folder in folders(dataset)]
        for base in self.extra_sources:
            if remote.is_remote(base):  # s3://, gs://, sftp://, ...: see remote.py
                found.append(remote.join(base, dataset.folder, spec.name))
            elif is_http(base):
                found.append(base.rstrip("/") + f"/{dataset.folder}/{spec.name}")
            else:
                found.append(str(_local_folder(base) / dataset.folder))
        found.extend(dataset.urls(spec))
        if self.offline:
            found = [loc for loc in found if not _is_network(loc)]
        return found

    def __call__(self, dataset: Dataset, spec: FileSpec, folder: Path) -> Path:
        """Obtain ``spec`` in ``folder``, verified; returns its path.  See :class:`Downloader`.

        The path is ``folder/<published name>``, unless a file is already there (one of the
        user's that is not the published data: never overwritten); then it is
        ``folder/.downloaded/<published name>``.
        """
        locations = self.locations(dataset, spec)
        if not locations:
            raise MissingFilesError(
                dataset.name, [spec.name], folder, dataset.urls(spec), "offline mode: the network is not used"
            )
        part = part_path(folder, spec.name)
        _check_own_files(part)
        attempts: list[tuple[str, str]] = []
        for location in locations:
            if not is_http(location):  # a folder (or a data distribution): named by the very file it holds
                location = str(_local_file(Path(location), spec) or location)
            shown = redact(location)
            try:
                self._obtain(location, spec, part)
            except SourceFailed as err:
                # Said once: in the error if every source fails, else in the warning below.
                log.info("%s: %s", shown, err.reason)
                attempts.append((shown, err.reason))
                continue
            final = _destination(folder, spec.name)
            # The resume record goes first: a process killed between these two steps leaves a
            # .part without it (downloaded again), never a record that nothing would clean up.
            unlink(record_path(part))
            os.replace(part, final)
            log.info("got %s from %s", spec.name, shown)
            if attempts:  # a mirror that fails is worth knowing about even when another one works
                failed = "; ".join(f"{loc}: {why}" for loc, why in attempts)
                log.warning("got %s from %s after %d source(s) failed: %s", spec.name, shown, len(attempts), failed)
            return final
        if self.offline and not any(_is_network(loc) for loc in locations):
            raise MissingFilesError(
                dataset.name,
                [spec.name],
                folder,
                dataset.urls(spec),
                "offline mode; " + "; ".join(f"{where}: {why}" for where, why in attempts),
            )
        raise DownloadError(spec.name, attempts, folder)

    def _obtain(self, location: str, spec: FileSpec, part: Path) -> None:
        """Bring ``spec`` from one source into ``part``, verified."""
        shown = redact(location)
        if remote.is_remote(location):  # s3://, gs://, sftp://, ...: see remote.py
            remote.fetch(self, location, spec, part)
            self._verify(part, spec, shown)
            return
        if not is_http(location):
            self._copy_local(Path(location), spec, part)
            self._verify(part, spec, shown)
            return
        resumed = self._http(location, spec, part)
        try:
            self._verify(part, spec, shown)
        except SourceFailed:
            if not resumed:
                raise
            # The kept bytes may be another file's prefix (a stale .part): one fresh try
            # before this source is blamed.
            log.info("%s: resumed %s did not verify; downloading it again from the start", shown, spec.name)
            self._http(location, spec, part)
            self._verify(part, spec, shown)

    # --- checking ---------------------------------------------------------------------------

    @staticmethod
    def _verify(part: Path, spec: FileSpec, location: str) -> None:
        try:
            verify(part, spec, source=f"{spec.name} from {location}")
        except (IdxFormatError, ChecksumError) as err:
            _discard(part)  # never keep wrong bytes, not even as a resume point
            msg = f"rejected after download: {_reason(err)}"
            raise SourceFailed(msg) from None
        except RegistryMismatchError:
            # The published file contradicts the registry: every source would; nothing is kept.
            _discard(part)
            raise

    # --- local sources ----------------------------------------------------------------------

    def _copy_local(self, src: Path, spec: FileSpec, part: Path) -> None:
        """Copy the local file ``src`` into ``part`` (a folder here means the file was not found in it)."""
        if not src.is_file():
            msg = "not found"
            raise SourceFailed(msg)
        cap = size_cap(spec)
        try:
            with open(src, "rb") as fin:
                size = os.fstat(fin.fileno()).st_size
                if size > cap:  # the same cap as over HTTP: a padded or foreign file is not copied whole
                    msg = f"{src} is {size} bytes, more than any copy of {spec.name} can be ({cap})"
                    raise SourceFailed(msg)
                check_head(fin.read(512))
                fin.seek(0)
                with open(part, "wb") as fout:
                    copied = 0
                    while block := fin.read(min(1 << 20, cap + 1 - copied)):
                        fout.write(block)
                        copied += len(block)
                        if copied > cap:  # it grew while being copied
                            msg = f"{src} grew past {cap} bytes while being copied"
                            raise SourceFailed(msg)
        except SourceFailed:
            unlink(part)
            raise
        except OSError as err:
            unlink(part)
            msg = f"cannot read {src}: {err.strerror or err}"
            raise SourceFailed(msg) from None

    # --- HTTP -------------------------------------------------------------------------------

    @property
    def session(self) -> Any:
        """The HTTP session (made on first use: honours HTTP(S)_PROXY/NO_PROXY; TLS roots from certifi)."""
        if self._session is None:
            import requests

            self._session = requests.Session()
            self._session.headers["User-Agent"] = _user_agent()
            adapter = deadline_adapter()
            self._session.mount("http://", adapter)
            self._session.mount("https://", adapter)
        return self._session

    def _http(self, url: str, spec: FileSpec, part: Path) -> bool:
        """Transfer ``url`` into ``part``, retrying transient failures; whether kept bytes were resumed.

        A try that moved the download on by :func:`progress_step` bytes or more starts the count
        of tries again: a link that breaks every few hundred kB still delivers the file.  Progress
        means bytes past the furthest point any try reached: a server that sends the same bytes
        again and again (then has them thrown away) never earns a new series, so the tries end.
        """
        attempt = 0
        resumed = False
        step = progress_step(spec)
        furthest = _size(part)
        while True:
            try:
                return self._transfer(url, spec, part) or resumed
            except SourceFailed as err:
                reached = _size(part)
                if err.discard:
                    _discard(part)
                resumed = resumed or err.resumed
                attempt += 1
                if err.transient and reached - furthest >= step:
                    attempt = 1  # progress: this try counts as the first of a new series
                furthest = max(furthest, reached)
                if not err.transient or attempt >= self.retry.attempts:
                    if err.transient:
                        msg = f"{err.reason} (gave up after {attempt} tries)"
                        raise SourceFailed(msg) from None
                    raise
                wait = self.retry.delay(attempt - 1, self.rng)
                if err.retry_after is not None:
                    wait = min(max(wait, err.retry_after), self.retry.max_delay)
                log.info("%s: %s; retrying in %.1f s", redact(url), err.reason, wait)
                self.sleep(wait)

    def _transfer(self, url: str, spec: FileSpec, part: Path) -> bool:
        """One HTTP try into ``part``: the steps of :mod:`mnistkit.transfer`; whether it continued kept bytes."""
        have = _size(part)
        record = ResumeRecord.read(record_path(part)) if have else None
        headers, have = resume_headers(record, have, url, spec)
        resp = open_response(self.session, url, headers, self.retry.connect_timeout, self.retry.read_timeout)
        with resp:
            plan = triage(resp.status_code, resp.reason, resp.headers, have, record, spec)
            if plan.complete:
                # Nothing left to send: the .part may be complete (a process killed while verifying it).
                try:
                    verify(part, spec, source=str(part))
                    return True
                except (IdxFormatError, ChecksumError):
                    msg = "server refused to resume (HTTP 416)"
                    raise SourceFailed(msg, transient=True, discard=True) from None
            if have and not plan.start:
                log.info("%s ignored the Range request: starting %s over", redact(url), spec.name)
            ResumeRecord.from_response(url, resp.headers, plan.total).write(record_path(part))
            received = self._write(resp, spec, part, plan.start, plan.total)
        if plan.total is not None and received > plan.total:
            # More than announced: the server's lengths are not to be trusted, nor the bytes kept.
            msg = f"sent {received} bytes, more than the {plan.total} it announced"
            raise SourceFailed(msg, resumed=plan.start > 0, discard=True)
        if plan.total is not None and received != plan.total:
            msg = f"transfer ended after {received} of {plan.total} bytes"
            raise SourceFailed(msg, transient=True, resumed=plan.start > 0)
        return plan.start > 0

    def _write(self, resp: Any, spec: FileSpec, part: Path, start: int, total: int | None) -> int:
        """Stream the body into ``part`` at ``start``; network and disk failures sorted apart."""
        from .notebook import progress_bar  # a terminal bar, a notebook widget, or None

        bar = progress_bar(total=total, desc=spec.name, unit="B", progress=self.progress, initial=start, leave=True)
        received = start
        try:
            kept = b""
            if start:  # the kept bytes and the new ones are judged together
                with open(part, "rb") as fh:
                    kept = fh.read(512)
            with open(part, "ab" if start else "wb") as out:
                received = stream_body(
                    raw_chunks(resp),
                    out,
                    spec,
                    start=start,
                    kept_head=kept,
                    clock=self.clock,
                    min_rate=self.retry.min_rate,
                    grace=2 * self.retry.read_timeout,
                    progress=bar.update if bar is not None else None,
                )
        except SourceFailed as err:
            err.discard = err.discard or not err.transient  # wrong content: not worth resuming
            err.resumed = err.resumed or start > 0
            raise
        except network_errors() as err:
            # The body broke off: what arrived stays in the .part file for the retry to resume.
            # (A local disk error is an OSError of another kind and propagates as it is.)
            got = _size(part)
            msg = f"transfer interrupted after {got} bytes ({short(err)})"
            raise SourceFailed(msg, transient=True, resumed=start > 0) from None
        except OSError as err:
            # The disk, not the network (full, quota, file size limit): no other mirror can help,
            # and a half-written .part would only keep the space taken.
            _discard(part)
            raise write_failed(part.parent, err) from err
        finally:
            if bar is not None:
                bar.close()
        return received


def _local_file(folder: Path, spec: FileSpec) -> Path | None:
    """The file of ``spec`` a local source holds (any spelling of its name), or None."""
    return next((folder / name for name in spec.spellings if (folder / name).is_file()), None)


def _check_own_files(part: Path) -> None:
    """Refuse, naming it, something other than a file where the ``.part`` or its record belongs.

    Both names are mnistkit's own, but a folder or a broken link there is not ours to delete:
    without this check it surfaced as a bare IsADirectoryError (or a "disk full" message).
    """
    for path in (part, record_path(part)):
        if os.path.lexists(path) and not path.is_file():
            what = "a folder" if path.is_dir() else "a broken or looping link" if path.is_symlink() else "not a file"
            msg = (
                f"cannot download into {part.parent}: {path} is {what}, where mnistkit keeps a partial "
                "download; move or delete it"
            )
            raise DataFolderError(msg)


def _destination(folder: Path, name: str) -> Path:
    """The published name, unless something (a file of the user's) is there already."""
    final = folder / name
    if not os.path.lexists(final):
        return final
    other = downloaded_path(folder, name)
    try:
        other.parent.mkdir(exist_ok=True)
    except OSError as err:  # a file of the user's named like the folder: name it, never replace it
        msg = (
            f"cannot use the data folder {folder}: {final} is not the published data and {other.parent} "
            f"is not a folder ({err.strerror or err}), so the verified download has nowhere to go. Move or "
            "delete one of them"
        )
        raise DataFolderError(msg) from err
    # Info, not a warning: the store already warns once about the rejected file when the download succeeds.
    log.info("%s holds another file (left alone); the verified download goes to %s", final, other)
    return other


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _discard(part: Path) -> None:
    unlink(part)
    unlink(record_path(part))


def _reason(err: Exception) -> str:
    if isinstance(err, ChecksumError):
        if err.algorithm == "size":
            return f"wrong size ({err.actual} bytes, expected {err.expected})"
        return f"checksum mismatch ({err.algorithm} {err.actual[:12]}..., expected {err.expected[:12]}...)"
    if isinstance(err, IdxFormatError):
        return err.reason
    return str(err)
