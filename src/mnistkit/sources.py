"""Where bytes come from: user folders, ``file://`` URLs and HTTP mirrors.

:class:`Downloader` obtains one registry file into a dataset folder, verified:

* sources are tried in order: ``$MNISTKIT_MIRROR`` (or ``mirrors=``) first, each a
  base holding ``<base>/<dataset>/<file name>``, then the dataset's built-in mirrors;
* each HTTP transfer has connect and read timeouts, is retried with capped
  exponential backoff and jitter on transient failures (connection errors,
  timeouts, 429, 5xx) and abandoned for the next source on anything else
  (403, 404, an HTML page, wrong bytes);
* the body goes to ``<file>.part`` in the destination folder; an interrupted
  transfer resumes from there with an HTTP Range request (``If-Range`` guards
  against a file that changed), and starts over when the server ignores it;
* the magic bytes are checked as soon as they arrive (an HTML page is refused
  at once), the size is capped by the registry, and the decoded bytes are
  verified before the file is renamed to its published name.

The caller (the store) holds the file's inter-process lock around all of this,
so the ``.part`` file has exactly one writer.  Time, randomness and the HTTP
session are injected, so retry and backoff are testable without patching.
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._log import log
from .errors import (
    ChecksumError,
    DownloadError,
    IdxFormatError,
    MissingFilesError,
    RegistryMismatchError,
    write_failed,
)
from .idx import sniff
from .integrity import verify
from .layout import downloaded_path, part_path, record_path, unlink
from .registry import Dataset, FileSpec


ENV_MIRROR = "MNISTKIT_MIRROR"
ENV_OFFLINE = "MNISTKIT_OFFLINE"
ENV_TIMEOUT = "MNISTKIT_TIMEOUT"

_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
_ACCEPTED_KINDS = {"gzip", "xz", "idx", "zip"}  # zip: archives (EMNIST); verify() refuses a zip posing as IDX
_MAX_REDIRECTS = 5


class SourceFailed(Exception):
    """One source could not deliver the file; ``transient`` says whether to retry it."""

    def __init__(
        self, reason: str, transient: bool = False, retry_after: float | None = None, resumed: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.retry_after = retry_after
        self.resumed = resumed  # the attempt had continued bytes kept from before


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def env_offline() -> bool:
    """Whether ``$MNISTKIT_OFFLINE`` asks for no network."""
    return _truthy(os.environ.get(ENV_OFFLINE))


def parse_sources(mirrors: str | Sequence[str] | None) -> list[str]:
    """The user's extra sources: ``mirrors`` if given, else ``$MNISTKIT_MIRROR``.

    Parameters
    ----------
    mirrors : str or sequence of str, optional
        Comma-separated string or list of URLs (``http``, ``https``, ``file``) or folders.

    Returns
    -------
    list of str
    """
    if mirrors is None:
        mirrors = os.environ.get(ENV_MIRROR, "")
    if isinstance(mirrors, str):
        mirrors = mirrors.split(",")
    return [m.strip() for m in mirrors if m and m.strip()]


def is_http(location: str) -> bool:
    """Whether ``location`` is an http(s) URL."""
    return location.lower().startswith(("http://", "https://"))


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
        Tries per source on transient failures (the first included).
    base_delay, max_delay : float
        Backoff: ``min(max_delay, base_delay * 2**k)`` scaled by a random factor in [0.5, 1].
    connect_timeout, read_timeout : float
        Seconds to connect, and to wait for each piece of the body.
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
        return min(self.max_delay, self.base_delay * 2**attempt) * (0.5 + 0.5 * rng())


def _user_agent() -> str:
    from . import __version__

    import requests

    return f"mnistkit/{__version__} (+https://pypi.org/project/mnistkit/) python-requests/{requests.__version__}"


class Downloader:
    """Fetch registry files into a folder, trying every source until one is right.

    Parameters
    ----------
    extra_sources : sequence of str
        Bases tried before the built-in mirrors (see :func:`parse_sources`).
    offline : bool
        Skip every http(s) source; folders and ``file://`` URLs are still used.
    progress : bool or None
        Progress bar on stderr; None means only when stderr is a terminal.
    retry : RetryPolicy, optional
    session : requests.Session, optional
        A session to use (its proxies, certificates, adapters); one is made if None.
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
        session=None,
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

    # --- which sources ----------------------------------------------------------------------

    def locations(self, dataset: Dataset, spec: FileSpec) -> list[str]:
        """Every place ``spec`` is looked for, in order (offline: local ones only)."""
        found = []
        for base in self.extra_sources:
            if is_http(base):
                found.append(base.rstrip("/") + f"/{dataset.folder}/{spec.name}")
            else:
                found.append(str(_local_folder(base) / dataset.folder))
        found.extend(dataset.urls(spec))
        if self.offline:
            found = [loc for loc in found if not is_http(loc)]
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
        attempts: list[tuple[str, str]] = []
        for location in locations:
            shown = redact(location)
            try:
                if is_http(location):
                    resumed = self._http(location, spec, part)
                    try:
                        self._verify(part, spec, shown)
                    except SourceFailed:
                        if not resumed:
                            raise
                        # The kept bytes may be another file's prefix (a stale .part): one fresh try
                        # before this source is blamed.
                        log.info("%s: resumed %s did not verify; downloading it again from the start", shown,
                                 spec.name)
                        self._http(location, spec, part)
                        self._verify(part, spec, shown)
                else:
                    self._copy_local(Path(location), spec, part)
                    self._verify(part, spec, shown)
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
        if self.offline and not any(is_http(loc) for loc in locations):
            raise MissingFilesError(
                dataset.name,
                [spec.name],
                folder,
                dataset.urls(spec),
                "offline mode; not in " + ", ".join(redact(loc) for loc in locations),
            )
        raise DownloadError(spec.name, attempts, folder)

    # --- checking ---------------------------------------------------------------------------

    @staticmethod
    def _verify(part: Path, spec: FileSpec, location: str) -> None:
        try:
            verify(part, spec, source=f"{spec.name} from {location}")
        except (IdxFormatError, ChecksumError) as err:
            _discard(part)  # never keep wrong bytes, not even as a resume point
            raise SourceFailed(f"rejected after download: {_reason(err)}") from None
        except RegistryMismatchError:
            # The published file contradicts the registry: every source would; nothing is kept.
            _discard(part)
            raise

    @staticmethod
    def _cap(spec: FileSpec) -> int:
        """The most bytes a correct copy can take: the decoded size plus container overhead."""
        return size_cap(spec)

    @staticmethod
    def _check_head(head: bytes) -> None:
        kind = sniff(head)
        if kind not in _ACCEPTED_KINDS:
            what = {"html": "an HTML page", "empty": "an empty body"}.get(kind, f"{kind} data")
            raise SourceFailed(f"served {what}, not the dataset file")

    # --- local sources ----------------------------------------------------------------------

    def _copy_local(self, folder: Path, spec: FileSpec, part: Path) -> None:
        for name in spec.spellings:
            src = folder / name
            if src.is_file():
                break
        else:
            raise SourceFailed("not found")
        cap = self._cap(spec)
        try:
            with open(src, "rb") as fin:
                size = os.fstat(fin.fileno()).st_size
                if size > cap:  # the same cap as over HTTP: a padded or foreign file is not copied whole
                    raise SourceFailed(f"{src} is {size} bytes, more than any copy of {spec.name} can be ({cap})")
                self._check_head(fin.read(512))
                fin.seek(0)
                with open(part, "wb") as fout:
                    copied = 0
                    while block := fin.read(min(1 << 20, cap + 1 - copied)):
                        fout.write(block)
                        copied += len(block)
                        if copied > cap:  # it grew while being copied
                            raise SourceFailed(f"{src} grew past {cap} bytes while being copied")
        except SourceFailed:
            unlink(part)
            raise
        except OSError as err:
            unlink(part)
            raise SourceFailed(f"cannot read {src}: {err.strerror or err}") from None

    # --- HTTP -------------------------------------------------------------------------------

    @property
    def session(self):
        if self._session is None:
            import requests

            self._session = requests.Session()  # honours HTTP(S)_PROXY/NO_PROXY; TLS roots from certifi
            self._session.headers["User-Agent"] = _user_agent()
            adapter = _header_deadline_adapter()
            self._session.mount("http://", adapter)
            self._session.mount("https://", adapter)
        return self._session

    def _http(self, url: str, spec: FileSpec, part: Path) -> bool:
        """Transfer ``url`` into ``part``, retrying transient failures; whether kept bytes were resumed.

        An attempt that moved the download on by a useful amount (see :func:`_progress_step`) starts
        the count of tries again: a link that breaks every few hundred kB still gets the file.
        """
        attempt = 0
        resumed = False
        step = _progress_step(spec)
        while True:
            before = _size(part)
            try:
                resumed = self._transfer(url, spec, part) or resumed
                return resumed
            except SourceFailed as err:
                if err.resumed:
                    resumed = True
                attempt += 1
                if err.transient and _size(part) - before >= step:
                    attempt = 1  # progress: this try counts as the first of a new series
                if not err.transient or attempt >= self.retry.attempts:
                    if err.transient:
                        raise SourceFailed(f"{err.reason} (gave up after {attempt} tries)") from None
                    raise
                wait = self.retry.delay(attempt - 1, self.rng)
                if err.retry_after is not None:
                    wait = min(max(wait, err.retry_after), self.retry.max_delay)
                log.info("%s: %s; retrying in %.1f s", redact(url), err.reason, wait)
                self.sleep(wait)

    def _request(self, url: str, headers: dict):
        """GET with redirects followed by hand: at most a few, never from https to http."""
        import requests

        timeout = (self.retry.connect_timeout, self.retry.read_timeout)
        for _ in range(_MAX_REDIRECTS + 1):
            deadline = _HeaderDeadline(2 * self.retry.read_timeout)  # silence alone trips the read timeout first
            try:
                with deadline:
                    resp = self.session.get(
                        url, headers=headers, stream=True, timeout=timeout, allow_redirects=False
                    )
            except requests.exceptions.SSLError as err:
                raise SourceFailed(f"TLS error: {scrub(str(err))}") from None
            except requests.exceptions.Timeout:
                raise SourceFailed("timed out waiting for the server", transient=True) from None
            except requests.exceptions.ConnectionError as err:
                if deadline.expired:
                    raise SourceFailed(
                        f"no complete response headers within {deadline.seconds:g} s", transient=True
                    ) from None
                if _unresolvable(err):
                    # No DNS answer: an offline node or a mistyped host; retrying only wastes the backoff.
                    host = urllib.parse.urlsplit(url).hostname
                    raise SourceFailed(f"cannot resolve host {host} (no network, or a wrong name?)") from None
                raise SourceFailed(f"connection failed ({_short(err)})", transient=True) from None
            except requests.exceptions.RequestException as err:
                raise SourceFailed(f"request failed ({_short(err)})") from None
            except ValueError as err:  # requests parses a Location even when not following it
                raise SourceFailed(f"unusable answer ({_short(err)})") from None
            if deadline.expired:  # cut off mid-headers, http.client may still have made a response of it
                resp.close()
                raise SourceFailed(f"no complete response headers within {deadline.seconds:g} s", transient=True)
            if resp.status_code in (301, 302, 303, 307, 308) and "location" in resp.headers:
                resp.close()
                try:
                    target = urllib.parse.urljoin(url, resp.headers["location"])
                    urllib.parse.urlsplit(target).port  # noqa: B018 - raises ValueError on a malformed one
                except ValueError as err:
                    raise SourceFailed(f"redirected to a malformed URL ({_short(err)})") from None
                if url.lower().startswith("https:") and not target.lower().startswith("https:"):
                    raise SourceFailed(f"refused a redirect from https to {redact(target)}")
                url = target
                continue
            return resp
        raise SourceFailed(f"more than {_MAX_REDIRECTS} redirects")

    def _transfer(self, url: str, spec: FileSpec, part: Path) -> bool:
        """One HTTP attempt into ``part``; whether it continued bytes kept from before."""
        have = _size(part)
        record = ResumeRecord.read(record_path(part)) if have else None
        headers = {"Accept-Encoding": "identity"}  # the bytes as stored: never let a server re-encode them
        if record is not None and record.resumable(url, spec):
            headers["Range"] = f"bytes={have}-"
            if record.url == redact(url) and record.validator:
                headers["If-Range"] = record.validator
        else:
            have = 0
        resp = self._request(url, headers)
        with resp:
            plan = self._triage(resp, url, spec, part, have, record if have else None)
            if plan is None:  # the kept .part was complete already
                return True
            start, total = plan
            ResumeRecord.from_response(url, resp.headers, total).write(record_path(part))
            self._stream(resp, spec, part, start, total)
        return start > 0

    def _triage(
        self, resp, url: str, spec: FileSpec, part: Path, have: int, record: ResumeRecord | None
    ) -> tuple[int, int | None] | None:
        """Judge the status and headers: ``(offset to write at, total size or None)``, None if done."""
        status = resp.status_code
        if status in _TRANSIENT_STATUS:
            retry_after = _retry_after(resp.headers.get("retry-after"))
            raise SourceFailed(f"HTTP {status} {resp.reason}", transient=True, retry_after=retry_after)
        if status == 416 and have:
            # Nothing left to send: the .part may be complete (a process killed while verifying it).
            try:
                verify(part, spec, source=str(part))
                return None
            except (IdxFormatError, ChecksumError):
                _discard(part)  # not a prefix of their file after all: start over
                raise SourceFailed("server refused to resume (HTTP 416)", transient=True) from None
        if status not in (200, 206):
            raise SourceFailed(f"HTTP {status} {resp.reason}")
        ctype = resp.headers.get("content-type", "").lower()
        if "text/html" in ctype:
            raise SourceFailed(f"served an HTML page (Content-Type {ctype}), not the dataset file")
        length = resp.headers.get("content-length")
        start = 0
        if status == 206:
            start, whole = _content_range(resp.headers.get("content-range"))
            if not have and start != 0:
                raise SourceFailed("answered a request without Range with a part of the file (HTTP 206)")
            if have and start != have:
                _discard(part)
                raise SourceFailed("server resumed at the wrong offset", transient=True)
            if have and record is not None and record.total and whole and whole != record.total:
                # The kept bytes are the prefix of a file of another size: they cannot continue this one.
                _discard(part)
                raise SourceFailed("the kept bytes belong to a file of another size; starting over", transient=True)
            total = whole or (start + int(length) if length and length.isdigit() else None)
        else:
            if have:
                log.info("%s ignored the Range request: starting %s over", redact(url), spec.name)
            total = int(length) if length and length.isdigit() else None
        cap = self._cap(spec)
        if total is not None and total > cap:
            raise SourceFailed(f"announced {total} bytes, more than any copy of {spec.name} can be ({cap})")
        return start, total

    def _stream(self, resp, spec: FileSpec, part: Path, start: int, total: int | None) -> None:
        """Write the body at ``start`` of ``part``: magic check, size cap, slow-server guard, progress."""
        cap = self._cap(spec)
        received = start
        began, grace = self.clock(), 2 * self.retry.read_timeout
        bar = self._bar(spec.name, total, start)
        try:
            with open(part, "ab" if start else "wb") as fh:
                head: bytes | None = b""
                if start:  # the kept bytes and the new ones are judged together
                    with open(part, "rb") as kept:
                        head = kept.read(512)
                while True:
                    # read1: whatever has arrived, so a broken-off body keeps every byte it got;
                    # raw bytes as sent, never decoded, so a Range resume lines up with them
                    chunk = resp.raw.read1(1 << 16, decode_content=False)
                    if not chunk:
                        break
                    if head is not None:
                        head += chunk
                        if len(head) >= 512:
                            self._check_start(head, start)
                            head = None
                    fh.write(chunk)
                    received += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                    if received > cap:
                        raise SourceFailed(f"sent more than {cap} bytes, more than any copy of {spec.name}")
                    elapsed = self.clock() - began
                    if elapsed > grace and received - start < self.retry.min_rate * elapsed:
                        rate = (received - start) / elapsed
                        raise SourceFailed(
                            f"too slow: {rate:.0f} bytes/s over {elapsed:.1f} s "
                            f"(at least {self.retry.min_rate:.0f} needed)",
                            transient=True,
                        )
                if head is not None:
                    self._check_start(head, start)
        except SourceFailed as err:
            if not err.transient:
                _discard(part)  # wrong content: not worth resuming
            err.resumed = err.resumed or start > 0
            raise
        except _network_errors() as err:
            # The body broke off: what arrived stays in the .part file for the retry to resume.
            # (A local disk error is an OSError of another kind and propagates as it is.)
            raise SourceFailed(
                f"transfer interrupted after {received} bytes ({_short(err)})", transient=True, resumed=start > 0
            ) from None
        except OSError as err:
            # The disk, not the network (full, quota, file size limit): no other mirror can help,
            # and a half-written .part would only keep the space taken.
            _discard(part)
            raise write_failed(part.parent, err) from err
        finally:
            if bar is not None:
                bar.close()
        if total is not None and received != total:
            raise SourceFailed(
                f"transfer ended after {received} of {total} bytes", transient=True, resumed=start > 0
            )

    def _check_start(self, head: bytes, start: int) -> None:
        """Check the first bytes; when they were partly kept from before, a failure means start over."""
        try:
            self._check_head(head)
        except SourceFailed as err:
            if not start:
                raise
            raise SourceFailed(f"the kept bytes and the new ones are not the file ({err.reason}); starting over",
                               transient=True) from None

    def _bar(self, name: str, total: int | None, initial: int):
        from .notebook import progress_bar  # a terminal bar, a notebook widget, or None

        return progress_bar(total=total, desc=name, unit="B", progress=self.progress, initial=initial, leave=True)


def size_cap(spec: FileSpec) -> int:
    """The most bytes a correct copy of ``spec`` can take, from any source.

    The decoded size plus what a container adds (gzip of incompressible data: about 0.03 %;
    xz a little more) plus room for a few kB of zero padding after the stream.
    """
    return spec.decoded_size + spec.decoded_size // 500 + 4096


def _progress_step(spec: FileSpec) -> int:
    """How many new bytes make an attempt count as progress: 64 KiB, less for small files."""
    return max(1, min(1 << 16, size_cap(spec) // 16))


def _destination(folder: Path, name: str) -> Path:
    """The published name, unless something (a file of the user's) is there already."""
    final = folder / name
    if not os.path.lexists(final):
        return final
    other = downloaded_path(folder, name)
    other.parent.mkdir(exist_ok=True)
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


@dataclass(frozen=True)
class ResumeRecord:
    """Where the bytes of a ``.part`` file came from: what a resume needs, and nothing secret.

    Attributes
    ----------
    url : str
        The source, without credentials (see :func:`redact`).
    validator : str or None
        A strong validator for ``If-Range``: a strong ETag, or a Last-Modified date the
        HTTP rules allow there; None when the server gave neither (weak ETags never are).
    total : int or None
        The size of the whole file the ``.part`` is a prefix of, when announced.
    """

    url: str
    validator: str | None = None
    total: int | None = None

    @classmethod
    def from_response(cls, url: str, headers, total: int | None) -> ResumeRecord:
        """The record of a transfer from ``url`` answered with ``headers``."""
        return cls(redact(url), _strong_validator(headers), total)

    @classmethod
    def read(cls, path: Path) -> ResumeRecord | None:
        """The record at ``path``; None when absent, unreadable or of an unknown shape."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return None
        validator = data.get("validator")
        if "validator" not in data:  # written by mnistkit 0.x: raw etag and last_modified
            etag = data.get("etag")
            validator = etag if isinstance(etag, str) and not etag.startswith("W/") else None
        total = data.get("total")
        if not isinstance(validator, (str, type(None))) or not (total is None or type(total) is int):
            return None
        return cls(data["url"], validator, total)

    def write(self, path: Path) -> None:
        """Write the record (before any byte of the body, so a kill never leaves bytes unaccounted)."""
        path.write_text(json.dumps({"url": self.url, "validator": self.validator, "total": self.total}),
                        encoding="utf-8")

    def resumable(self, url: str, spec: FileSpec) -> bool:
        """Whether the kept bytes may be continued from ``url``.

        From the same source, always (``If-Range`` guards against a change).  From another
        source, when the kept bytes are a prefix of a file of exactly the published size:
        every mirror holds the same published bytes, and the whole is verified at the end.
        """
        if self.url == redact(url):
            return True
        return spec.size is not None and self.total == spec.size


def _strong_validator(headers) -> str | None:
    """A validator that ``If-Range`` may carry (RFC 9110, 13.1.5), or None.

    A weak ETag (``W/"..."``) must not be sent there; a Last-Modified date only when there is
    no ETag at all and the date is strong: at least a second before the response's Date.
    """
    etag = (headers.get("etag") or "").strip()
    if etag:
        return None if etag.startswith("W/") else etag
    modified = headers.get("last-modified")
    sent = headers.get("date")
    if not modified or not sent:
        return None
    from email.utils import parsedate_to_datetime

    try:
        strong = (parsedate_to_datetime(sent) - parsedate_to_datetime(modified)).total_seconds() >= 1
    except (TypeError, ValueError, IndexError):
        return None
    return modified if strong else None


# --- an overall deadline for the status line and headers -----------------------------------------

_DEADLINES = threading.local()


class _HeaderDeadline:
    """While active in this thread, a response's status line and headers must arrive within ``seconds``.

    The read timeout bounds each silence, not the whole: a server sending its headers a byte at
    a time would otherwise be waited on for as long as it keeps trickling, holding the file's lock.
    The connections made by :func:`_header_deadline_adapter` read this and shut their socket down
    when the time is up.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False

    def __enter__(self) -> _HeaderDeadline:
        _DEADLINES.current = self
        return self

    def __exit__(self, *exc) -> None:
        _DEADLINES.current = None


@functools.lru_cache(maxsize=1)
def _deadline_classes():
    """urllib3 connection pools whose connections enforce the current :class:`_HeaderDeadline`."""
    import socket

    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Deadline:
        def getresponse(self, *args, **kwargs):
            deadline = getattr(_DEADLINES, "current", None)
            if deadline is None:
                return super().getresponse(*args, **kwargs)

            def expire() -> None:
                deadline.expired = True
                sock = getattr(self, "sock", None)
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)  # the blocked read returns; http.client raises
                    except OSError:
                        pass

            timer = threading.Timer(deadline.seconds, expire)
            timer.daemon = True
            timer.start()
            try:
                return super().getresponse(*args, **kwargs)
            finally:
                timer.cancel()

    class Conn(Deadline, HTTPConnection):
        pass

    class SConn(Deadline, HTTPSConnection):
        pass

    class Pool(HTTPConnectionPool):
        ConnectionCls = Conn

    class SPool(HTTPSConnectionPool):
        ConnectionCls = SConn

    return {"http": Pool, "https": SPool}


def _header_deadline_adapter():
    """A requests adapter whose connections honour :class:`_HeaderDeadline` (proxied ones too)."""
    from requests.adapters import HTTPAdapter

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = _deadline_classes()

        def proxy_manager_for(self, proxy, **kwargs):
            manager = super().proxy_manager_for(proxy, **kwargs)
            if hasattr(manager, "pool_classes_by_scheme"):
                manager.pool_classes_by_scheme = _deadline_classes()
            return manager

    return Adapter()


# --- small helpers -------------------------------------------------------------------------------

_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/@\s?#]*@")


def redact(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``: safe to log, show or store."""
    return _CREDENTIALS.sub(r"\1***@", url)


def scrub(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``."""
    return _CREDENTIALS.sub(r"\1***@", text)


def _unresolvable(err: BaseException) -> bool:
    """Whether a connection error is a failed name lookup (urllib3 wraps it in MaxRetryError)."""
    import urllib3

    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, urllib3.exceptions.NameResolutionError):
            return True
        nested = [a for a in getattr(err, "args", ()) if isinstance(a, BaseException)]
        err = getattr(err, "reason", None) or (nested[0] if nested else None) or err.__cause__ or err.__context__
    return False


def _network_errors() -> tuple[type[BaseException], ...]:
    import requests
    import urllib3

    return (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


def _content_range(value: str | None) -> tuple[int, int | None]:
    """``(first byte, whole size or None)`` of a Content-Range such as ``bytes 100-199/200``; -1 if unreadable."""
    try:
        unit, spec = value.split()  # type: ignore[union-attr]
        span, _, whole = spec.partition("/")
        start = int(span.split("-")[0])
    except (AttributeError, IndexError, ValueError):
        return -1, None
    if unit.lower() != "bytes":
        return -1, None
    return start, int(whole) if whole.isdigit() else None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _short(err: BaseException) -> str:
    text = scrub(str(err))
    return text if len(text) < 160 else text[:157] + "..."


def _reason(err: Exception) -> str:
    if isinstance(err, ChecksumError):
        return f"checksum mismatch ({err.algorithm} {err.actual[:12]}..., expected {err.expected[:12]}...)"
    if isinstance(err, IdxFormatError):
        return err.reason
    return str(err)


def parse_timeout(value: str | None) -> float | None:
    """Seconds from ``$MNISTKIT_TIMEOUT``: a finite number above zero, else None (with a warning)."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        log.warning("ignoring %s=%r: not a positive number of seconds", ENV_TIMEOUT, text)
        return None
    return seconds


def make_fetcher(
    mirrors: str | Sequence[str] | None = None,
    offline: bool | None = None,
    progress: bool | None = None,
) -> Downloader:
    """A :class:`Downloader` configured from arguments, falling back to the environment.

    Parameters
    ----------
    mirrors : str or sequence of str, optional
        Extra sources; None reads ``$MNISTKIT_MIRROR``.
    offline : bool, optional
        None reads ``$MNISTKIT_OFFLINE``.
    progress : bool, optional
        None: a bar only when stderr is a terminal.
    """
    retry = RetryPolicy()
    timeout = parse_timeout(os.environ.get(ENV_TIMEOUT))
    if timeout is not None:
        retry.read_timeout = retry.connect_timeout = timeout
    return Downloader(
        parse_sources(mirrors),
        offline=env_offline() if offline is None else bool(offline),
        progress=progress,
        retry=retry,
    )
