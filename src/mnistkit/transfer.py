"""One HTTP transfer into a ``.part`` file, as small steps each testable alone.

::

    resume_headers(record, have, url, spec)   pure: Range / If-Range, or start over
    open_response(session, url, headers, ...)  GET, redirects by hand, header deadline, errors mapped
    triage(status, headers, have, record, cap) pure: where to write and how much is coming
    stream_body(chunks, out, ...)              magic check, size cap, slow-server guard, progress

:class:`~mnistkit.sources.Downloader` composes them (with retries, sources in turn,
verification and the final rename).  Every failure is a :class:`SourceFailed`
saying whether retrying the same source may help and whether the kept bytes must go.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .idx import sniff
from .registry import FileSpec

TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
#: What a dataset file may start with (zip: archives such as EMNIST's; verify() refuses a zip posing as IDX).
ACCEPTED_KINDS = frozenset({"gzip", "xz", "idx", "zip"})
MAX_REDIRECTS = 5
#: Bytes sniffed to judge what a body is.
HEAD_BYTES = 512


class SourceFailed(Exception):
    """One source could not deliver the file.

    Attributes
    ----------
    reason : str
        What went wrong, for the summary error (credentials already removed).
    transient : bool
        Whether trying the same source again may help (timeouts, 5xx, a cut body).
    retry_after : float or None
        The server's ``Retry-After``, in seconds.
    resumed : bool
        Whether the attempt had continued bytes kept from before.
    discard : bool
        Whether the kept ``.part`` (and its record) must be deleted: its bytes cannot be
        continued (another file's prefix, a wrong offset, wrong content).
    """

    def __init__(
        self,
        reason: str,
        transient: bool = False,
        retry_after: float | None = None,
        resumed: bool = False,
        discard: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.retry_after = retry_after
        self.resumed = resumed
        self.discard = discard


def size_cap(spec: FileSpec) -> int:
    """The most bytes a correct copy of ``spec`` can take, from any source.

    The decoded size plus what a container adds (gzip of incompressible data: about 0.03 %;
    xz a little more) plus room for a few kB of zero padding after the stream.
    """
    return spec.decoded_size + spec.decoded_size // 500 + 4096


def check_head(head: bytes) -> None:
    """Refuse a body whose first bytes are not a dataset file (an HTML page, an empty body...)."""
    kind = sniff(head)
    if kind not in ACCEPTED_KINDS:
        what = {"html": "an HTML page", "empty": "an empty body"}.get(kind, f"{kind} data")
        msg = f"served {what}, not the dataset file"
        raise SourceFailed(msg)


# --- the resume record ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ResumeRecord:
    """Where the bytes of a ``.part`` file came from: what a resume needs, and nothing secret.

    Stored beside the ``.part`` as ``<name>.part.json`` (see :mod:`mnistkit.layout`);
    :meth:`read` and :meth:`write` are its only reader and writer.

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
    def from_response(cls, url: str, headers: Mapping[str, str], total: int | None) -> ResumeRecord:
        """The record of a transfer from ``url`` answered with ``headers``."""
        return cls(redact(url), strong_validator(headers), total)

    @classmethod
    def read(cls, path: Path) -> ResumeRecord | None:
        """The record at ``path``; None when absent, unreadable or of an unknown shape."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):  # RecursionError: JSON nested past the parser's depth
            return None
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return None
        validator = data.get("validator")
        if "validator" not in data:  # written by mnistkit 0.1.0: the raw etag
            etag = data.get("etag")
            validator = etag if isinstance(etag, str) and not etag.startswith("W/") else None
        total = data.get("total")
        if not isinstance(validator, (str, type(None))) or not (total is None or type(total) is int):
            return None
        return cls(data["url"], validator, total)

    def write(self, path: Path) -> None:
        """Write the record (before any byte of the body, so no kept byte is unaccounted for)."""
        data = {"url": self.url, "validator": self.validator, "total": self.total}
        path.write_text(json.dumps(data), encoding="utf-8")

    def resumable(self, url: str, spec: FileSpec) -> bool:
        """Whether the kept bytes may be continued from ``url``.

        From the same source, always (``If-Range`` guards against a change).  From another
        source, when the kept bytes are a prefix of a file of exactly the published size:
        every mirror holds the same published bytes, and the whole is verified at the end.
        """
        if self.url == redact(url):
            return True
        return spec.size is not None and self.total == spec.size


def strong_validator(headers: Mapping[str, str]) -> str | None:
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


# --- step 1: what to ask for ---------------------------------------------------------------------


def resume_headers(record: ResumeRecord | None, have: int, url: str, spec: FileSpec) -> tuple[dict[str, str], int]:
    """The request headers, and how many kept bytes they continue (0: start over).  Pure."""
    headers = {"Accept-Encoding": "identity"}  # the bytes as stored: never let a server re-encode them
    if not have or record is None or not record.resumable(url, spec):
        return headers, 0
    headers["Range"] = f"bytes={have}-"
    if record.url == redact(url) and record.validator:  # another server's validator means nothing
        headers["If-Range"] = record.validator
    return headers, have


# --- step 2: the request --------------------------------------------------------------------------


def open_response(session: Any, url: str, headers: dict[str, str], connect_timeout: float, read_timeout: float) -> Any:
    """GET ``url`` with redirects followed by hand (at most a few, never https to http).

    The status line and headers must arrive within twice ``read_timeout`` in all (the read
    timeout alone bounds each silence, so a server trickling its headers would hold us, and the
    file's lock, for as long as it likes); the session must carry :func:`deadline_adapter`.

    Returns
    -------
    requests.Response
        Streaming, not yet read.

    Raises
    ------
    SourceFailed
    """
    import requests

    timeout = (connect_timeout, read_timeout)
    for _ in range(MAX_REDIRECTS + 1):
        deadline = HeaderDeadline(2 * read_timeout)  # silence alone trips the read timeout first
        try:
            with deadline:
                resp = session.get(url, headers=headers, stream=True, timeout=timeout, allow_redirects=False)
        except requests.exceptions.SSLError as err:
            msg = f"TLS error: {scrub(str(err))}"
            raise SourceFailed(msg) from None
        except requests.exceptions.Timeout:
            msg = "timed out waiting for the server"
            raise SourceFailed(msg, transient=True) from None
        except requests.exceptions.ConnectionError as err:
            if deadline.expired:
                msg = f"no complete response headers within {deadline.seconds:g} s"
                raise SourceFailed(msg, transient=True) from None
            if _unresolvable(err):
                # No DNS answer: an offline node or a mistyped host; retrying only wastes the backoff.
                host = urllib.parse.urlsplit(url).hostname
                msg = f"cannot resolve host {host} (no network, or a wrong name?)"
                raise SourceFailed(msg) from None
            msg = f"connection failed ({short(err)})"
            raise SourceFailed(msg, transient=True) from None
        except requests.exceptions.RequestException as err:
            msg = f"request failed ({short(err)})"
            raise SourceFailed(msg) from None
        except ValueError as err:  # requests parses a Location even when not following it
            msg = f"unusable answer ({short(err)})"
            raise SourceFailed(msg) from None
        if deadline.expired:  # cut off mid-headers, http.client may still have made a response of it
            resp.close()
            msg = f"no complete response headers within {deadline.seconds:g} s"
            raise SourceFailed(msg, transient=True)
        if resp.status_code in (301, 302, 303, 307, 308) and "location" in resp.headers:
            resp.close()
            try:
                target = urllib.parse.urljoin(url, resp.headers["location"])
                urllib.parse.urlsplit(target).port  # noqa: B018 - raises ValueError on a malformed one
            except ValueError as err:
                msg = f"redirected to a malformed URL ({short(err)})"
                raise SourceFailed(msg) from None
            if url.lower().startswith("https:") and not target.lower().startswith("https:"):
                msg = f"refused a redirect from https to {redact(target)}"
                raise SourceFailed(msg)
            url = target
            continue
        return resp
    msg = f"more than {MAX_REDIRECTS} redirects"
    raise SourceFailed(msg)


# --- step 3: judging the answer -------------------------------------------------------------------


@dataclass(frozen=True)
class Triage:
    """What an answer means for the ``.part``: write from ``start``; ``total`` bytes in all if known."""

    start: int
    total: int | None
    complete: bool = False  # 416 to a resume: the kept .part may be the whole file already


def triage(
    status: int, reason: str, headers: Mapping[str, str], have: int, record: ResumeRecord | None, spec: FileSpec
) -> Triage:
    """Judge a response's status and headers.  Pure.

    Parameters
    ----------
    status, reason : int, str
        The HTTP status and its phrase.
    headers : mapping
        Response headers (case-insensitive lookups of lower-case names).
    have : int
        Kept bytes a Range asked to continue (0: no Range was sent).
    record : ResumeRecord or None
        What the kept bytes came from.
    spec : FileSpec
        The file expected.

    Raises
    ------
    SourceFailed
    """
    if status in TRANSIENT_STATUS:
        retry_after = _retry_after(headers.get("retry-after"))
        msg = f"HTTP {status} {reason}"
        raise SourceFailed(msg, transient=True, retry_after=retry_after)
    if status == 416 and have:
        return Triage(have, have, complete=True)
    if status not in (200, 206):
        msg = f"HTTP {status} {reason}"
        raise SourceFailed(msg)
    ctype = headers.get("content-type", "").lower()
    if "text/html" in ctype:
        msg = f"served an HTML page (Content-Type {ctype}), not the dataset file"
        raise SourceFailed(msg)
    length = headers.get("content-length")
    start = 0
    if status == 206:
        start, whole = content_range(headers.get("content-range"))
        if not have and start != 0:
            msg = "answered a request without Range with a part of the file (HTTP 206)"
            raise SourceFailed(msg)
        if have and start != have:
            msg = "server resumed at the wrong offset"
            raise SourceFailed(msg, transient=True, discard=True)
        if have and record is not None and record.total and whole and whole != record.total:
            # The kept bytes are the prefix of a file of another size: they cannot continue this one.
            msg = "the kept bytes belong to a file of another size; starting over"
            raise SourceFailed(msg, transient=True, discard=True)
        total = whole or (start + int(length) if length and length.isdigit() else None)
    else:
        total = int(length) if length and length.isdigit() else None
    cap = size_cap(spec)
    if total is not None and total > cap:
        msg = f"announced {total} bytes, more than any copy of {spec.name} can be ({cap})"
        raise SourceFailed(msg)
    return Triage(start, total)


# --- step 4: the body ----------------------------------------------------------------------------


def stream_body(
    chunks: Iterable[bytes],
    out: IO[bytes],
    spec: FileSpec,
    *,
    start: int = 0,
    kept_head: bytes = b"",
    clock: Callable[[], float],
    min_rate: float,
    grace: float,
    progress: Callable[[int], object] | None = None,
) -> int:
    """Write ``chunks`` to ``out``; returns the bytes in the ``.part`` now (``start`` + what came).

    The first :data:`HEAD_BYTES` (the kept ones, ``kept_head``, then the new ones) must be a
    dataset file; no more than :func:`size_cap` bytes in all; after ``grace`` seconds the
    average rate must be at least ``min_rate`` bytes per second.

    Raises
    ------
    SourceFailed
        On content that is not the file (not transient, unless the kept bytes were in the
        judged head: then start over), too many bytes, or a trickle.
    """
    cap = size_cap(spec)
    received = start
    began = clock()
    head: bytes | None = kept_head
    for chunk in chunks:
        if head is not None:
            head += chunk
            if len(head) >= HEAD_BYTES:
                _check_start(head, start)
                head = None
        out.write(chunk)
        received += len(chunk)
        if progress is not None:
            progress(len(chunk))
        if received > cap:
            msg = f"sent more than {cap} bytes, more than any copy of {spec.name}"
            raise SourceFailed(msg)
        elapsed = clock() - began
        if elapsed > grace and received - start < min_rate * elapsed:
            rate = (received - start) / elapsed
            msg = f"too slow: {rate:.0f} bytes/s over {elapsed:.1f} s (at least {min_rate:.0f} needed)"
            raise SourceFailed(msg, transient=True)
    if head is not None:
        _check_start(head, start)
    return received


def _check_start(head: bytes, start: int) -> None:
    """Check the first bytes; when some were kept from before, a failure means start over."""
    try:
        check_head(head)
    except SourceFailed as err:
        if not start:
            raise
        msg = f"the kept bytes and the new ones are not the file ({err.reason}); starting over"
        raise SourceFailed(
            msg,
            transient=True,
            discard=True,
        ) from None


def raw_chunks(resp: Any, size: int = 1 << 16) -> Iterable[bytes]:
    """The body of a streaming response as it arrives, undecoded.

    ``read1``: whatever has arrived, so a broken-off body keeps every byte it got; raw bytes
    as sent, never decoded, so a Range resume lines up with them.
    """
    while chunk := resp.raw.read1(size, decode_content=False):
        yield chunk


def network_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the connection broke (not the local disk)."""
    import requests
    import urllib3

    return (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


# --- an overall deadline for the status line and headers -----------------------------------------

_DEADLINES = threading.local()


class HeaderDeadline:
    """While active in this thread, a response's status line and headers must arrive within ``seconds``.

    The connections made by :func:`deadline_adapter` read it and shut their socket down
    when the time is up, so the blocked read returns at once.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False

    def __enter__(self) -> HeaderDeadline:
        _DEADLINES.current = self
        return self

    def __exit__(self, *exc: object) -> None:
        _DEADLINES.current = None


@functools.lru_cache(maxsize=1)
def _deadline_pools() -> dict[str, type]:
    """urllib3 connection pools whose connections enforce the current :class:`HeaderDeadline`."""
    import socket

    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Deadline:
        sock: Any

        def getresponse(self, *args: Any, **kwargs: Any) -> Any:
            deadline = getattr(_DEADLINES, "current", None)
            if deadline is None:
                return super().getresponse(*args, **kwargs)  # type: ignore[misc]

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
                return super().getresponse(*args, **kwargs)  # type: ignore[misc]
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


def deadline_adapter() -> Any:
    """A requests adapter whose connections honour :class:`HeaderDeadline` (proxied ones too)."""
    from requests.adapters import HTTPAdapter

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = _deadline_pools()

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **kwargs)
            # A SOCKS proxy has pools of its own (they open the tunnel): those are left as they are,
            # with the read timeout alone, rather than bypass the proxy.
            if not proxy.lower().startswith("socks"):
                manager.pool_classes_by_scheme = _deadline_pools()
            return manager

    return Adapter()


# --- small helpers -------------------------------------------------------------------------------

# Up to the last "@" of the authority: a password may hold an unescaped "@" (urllib and requests split there).
# One slash too (a mistyped "http:/user:pw@host" is still shown in the warning that refuses it).
_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*:/{1,2})[^/\s?#]*@")


def redact(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL in it replaced by ``***@``: safe to show or store."""
    return _CREDENTIALS.sub(r"\1***@", text)


scrub = redact  # the same rule for a URL and for a message that holds URLs


def short(err: BaseException) -> str:
    """An exception's text, credentials removed, at most 160 characters."""
    text = redact(str(err))
    return text if len(text) < 160 else text[:157] + "..."


def content_range(value: str | None) -> tuple[int, int | None]:
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


def _unresolvable(err: BaseException | None) -> bool:
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
