"""Serving a data folder over HTTP as a mirror for other machines.

The folder is served read-only in the ``<dataset>/<file>`` layout that
``MNISTKIT_MIRROR`` expects, so a classroom or cluster downloads from the
internet once and every other machine sets ``MNISTKIT_MIRROR=http://host:port``.

Only regular files exactly two levels down are served, and only when their
real path (symlinks followed) stays inside the folder: ``..``, absolute paths,
percent-encoded tricks, hidden entries (``.cache``, ``.locks``) and partial
downloads are refused.  Single byte ranges are supported (the downloader
resumes with them); every request is logged on stderr.

The server is meant to be left running on a shared network, so no client can
hold it: one thread runs an asyncio loop with one cheap task per connection
(no thread per client), requests are parsed by h11 (a small, pure-Python,
well-tested HTTP/1.1 parser that refuses malformed and ambiguous framing and
bounds the request head), and

* a request head must arrive complete within ``header_timeout`` seconds of
  the connection (or of the previous response on a kept-alive connection),
  however slowly its bytes trickle in;
* a request body (GET and HEAD need none; up to 64 KiB is read and dropped)
  and every 256 KiB of a response must move within ``stall_timeout`` seconds,
  so a stalled sender or a slow reader is dropped (with a TCP reset, which
  frees its kernel buffers at once);
* at most ``max_connections`` connections are open; a client over the cap gets
  ``503`` with ``Retry-After`` at once (mnistkit's downloader waits and retries).

Files are sent with ``sendfile`` (no copy through Python), so memory per
connection is a few kilobytes whatever the clients do.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.utils
import errno
import os
import queue
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from stat import S_ISREG

import h11

from .errors import ArgumentError, ServeError
from .layout import UNFINISHED_SUFFIXES

__all__ = ["MirrorServer", "serve"]

HEADER_TIMEOUT = 10.0
STALL_TIMEOUT = 30.0
MAX_CONNECTIONS = 2000
RETRY_AFTER = 5

# RFC 9110 14.1.1: range-unit "=" 1#range-spec, unit case-insensitive, OWS around the commas
_RANGE_SET = re.compile(r"bytes=(.*)$", re.IGNORECASE | re.DOTALL)
_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)$")
IGNORE_RANGE = "ignore"  # _parse_range: the header is invalid or asks for several parts: send the whole file
_CHUNK = 256 * 1024  # each slice of a response must be taken within stall_timeout
_RECV = 16 * 1024
_MAX_HEAD = 16 * 1024  # request line + headers; beyond it, 431
_MAX_BODY = 64 * 1024  # GET and HEAD carry no meaningful body; larger ones get 413
_LINGER = 2.0  # after a refusal, how long to read what the client still sends before closing
_MAX_LINGERING = 256  # refused sockets being closed politely at once; beyond, closed with a reset
_FD_RESERVE = 64 + _MAX_LINGERING  # descriptors for the listener, logs and refused sockets


if sys.version_info >= (3, 11):

    async def _within(awaitable, seconds: float):
        """``awaitable``'s result, or TimeoutError after ``seconds``.

        ``asyncio.timeout`` rather than ``wait_for``: on 3.11 ``wait_for`` can swallow the
        cancellation that stops the server when the operation completes at the same moment.
        """
        async with asyncio.timeout(seconds):
            return await awaitable

else:  # 3.10: wait_for, and the stop path closes sockets itself in case a cancellation is lost
    _within = asyncio.wait_for


class _Drop(Exception):
    """End this connection now (the reason is already counted); ``reset`` discards what is unsent."""

    def __init__(self, reset: bool = True) -> None:
        super().__init__()
        self.reset = reset


def _parse_range(value: str, size: int) -> tuple[int, int] | str | None:
    """``(start, end)`` (inclusive) to send as 206, None if no range is satisfiable (416), or
    ``IGNORE_RANGE`` to send the whole file (200).

    RFC 9110 14.2: a Range header in another unit or with an invalid ranges-specifier may be
    ignored and must not be refused as unsatisfiable; several ranges are answered with the one
    satisfiable range among them, or, when more than one is, with the whole file (a server may
    ignore Range) rather than a multipart body.
    """
    match = _RANGE_SET.match(value.strip())
    if not match:
        return IGNORE_RANGE  # another unit ("items=..."), or no "bytes=" at all
    spans = []
    for spec in match.group(1).split(","):
        spec = spec.strip(" \t")
        if not spec:
            continue  # 1#rule: empty list elements are allowed and ignored
        parts = _RANGE_SPEC.match(spec)
        if not parts or parts.groups() == ("", ""):
            return IGNORE_RANGE
        first, last = parts.groups()
        if first == "":  # the last N bytes
            if int(last) > 0 and size > 0:
                spans.append((max(0, size - int(last)), size - 1))
            continue
        if last and int(last) < int(first):
            return IGNORE_RANGE  # invalid (last-pos before first-pos): ignored, not 416
        if int(first) < size:
            spans.append((int(first), min(int(last), size - 1) if last else size - 1))
    if not spans:
        return None if match.group(1).strip(" \t,") else IGNORE_RANGE
    return spans[0] if len(spans) == 1 else IGNORE_RANGE


def _plain(status: int, reason: str, text: str, *extra: tuple[str, str], close: bool = True) -> bytes:
    """A complete small text response."""
    body = f"{status}: {text}\n".encode()
    lines = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        f"Date: {email.utils.formatdate(usegmt=True)}",
    ]  # RFC 9110 6.6.1: in every 4xx too
    lines += [f"{k}: {v}" for k, v in extra]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _abort(sock: socket.socket) -> None:
    """Close with a reset: the kernel drops what is still queued for a client that stopped reading."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


class _StderrLog:
    """Log lines to stderr from a thread of their own, so a terminal or pipe nobody reads cannot stall
    the server; past 10,000 waiting lines new ones are counted and dropped (memory stays bounded)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=10_000)
        self._dropped = 0
        self._thread = threading.Thread(target=self._write, name="mnistkit-serve-log", daemon=True)
        self._thread.start()

    def __call__(self, line: str) -> None:
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self._dropped += 1

    def _write(self) -> None:
        while (line := self._queue.get()) is not None:
            if self._dropped:
                line, self._dropped = f"mnistkit serve: {self._dropped} log lines dropped (stderr not read)\n{line}", 0
            with contextlib.suppress(OSError, ValueError):
                print(line, file=sys.stderr, flush=True)

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued (waiting at most ``timeout`` seconds for a blocked stderr)."""
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft limit on open files towards ``wanted``; return the soft limit now in force."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to raise
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted if soft == resource.RLIM_INFINITY else soft
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


class MirrorServer:
    """An HTTP mirror of one data folder, safe to leave running on a shared network.

    Parameters
    ----------
    root : path-like
        The data folder to serve.
    host : str
        Address to listen on; ``0.0.0.0`` listens on every interface.
    port : int
        Port; 0 picks a free one (see :attr:`url`).
    header_timeout : float
        Seconds a client has to send a complete request head (default 10).
    stall_timeout : float
        Seconds within which a request body must arrive and each 256 KiB of a response must be
        taken (default 30): slower clients are dropped.
    max_connections : int
        Connections open at once (default 2000); more get ``503`` with ``Retry-After``. Lowered,
        with a warning, when the process may not open enough files.
    log : callable, optional
        Where log lines go (default: stderr).

    Notes
    -----
    :meth:`serve_forever` runs the server in the calling thread; :meth:`start` runs it in a
    background thread and returns once it listens; :meth:`shutdown` stops it from any thread.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        header_timeout: float = HEADER_TIMEOUT,
        stall_timeout: float = STALL_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        log: Callable[[str], None] | None = None,
    ) -> None:
        for name, value in (("header_timeout", header_timeout), ("stall_timeout", stall_timeout)):
            if not (isinstance(value, (int, float)) and 0 < value <= 3600):
                msg = f"{name}={value!r} is not valid; give seconds above 0 and at most 3600"
                raise ArgumentError(msg)
        if not (isinstance(max_connections, int) and max_connections >= 1):
            msg = f"max_connections={max_connections!r} is not valid; give a whole number of 1 or more"
            raise ArgumentError(msg)
        if not (isinstance(host, str) and host.strip()):
            # "" would listen on every interface: an unset variable in `--host "$HOST"` must not expose the folder
            msg = (
                f"host={host!r} is not valid; give an address such as 127.0.0.1 (this machine) "
                "or 0.0.0.0 (every interface)"
            )
            raise ArgumentError(msg)
        self.root = Path(root).resolve()
        self.header_timeout = float(header_timeout)
        self.stall_timeout = float(stall_timeout)
        self._log = log or _StderrLog()
        # Each connection holds a socket and, while sending, a file: make sure the process may open them.
        allowed = raise_fd_limit(2 * max_connections + _FD_RESERVE)
        fit = (allowed - _FD_RESERVE) // 2 if allowed > 2 * _FD_RESERVE else allowed // 4
        fit = max(1, fit)
        if fit < max_connections:
            self._log(
                f"mnistkit serve: warning: the open-file limit ({allowed}) allows {fit} connections, "
                f"not {max_connections}; raise it with `ulimit -n` to allow more"
            )
        self.max_connections = min(max_connections, fit)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._listener = socket.create_server((host, port), family=family, backlog=min(4096, socket.SOMAXCONN))
        except OSError as err:
            hint = {
                errno.EADDRINUSE: "another program uses that port; choose another --port (0 picks a free one)",
                errno.EACCES: "ports below 1024 need privileges; choose --port 1024 or above",
                errno.EADDRNOTAVAIL: "that address is not one of this machine's; use 0.0.0.0 or 127.0.0.1",
            }
            why = hint.get(err.errno or 0, "check --host and --port")
            # os.strerror: the OS's words only, without create_server's "(while attempting to bind ...)"
            said = os.strerror(err.errno) if err.errno else str(err)
            msg = f"cannot listen on {host}:{port} ({said}); {why}"
            # A taken or privileged port is a server that cannot start (exit 1); a bad address, a bad argument.
            raise (ServeError if err.errno in (errno.EADDRINUSE, errno.EACCES) else ArgumentError)(msg) from None
        self._listener.setblocking(False)
        self.server_address = self._listener.getsockname()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._tasks: set[asyncio.Task] = set()
        self._lingering: set[asyncio.Task] = set()
        self._socks: set[socket.socket] = set()  # every accepted socket not yet closed
        #: counters since start, for logs, tests and measurements
        self.stats = {
            "connections": 0,
            "requests": 0,
            "bytes_sent": 0,
            "refused_over_cap": 0,
            "dropped_head_timeout": 0,
            "dropped_stalled": 0,
            "bad_requests": 0,
            "peak_open": 0,
        }
        self._tally: dict[str, int] = {}

    # --- public surface --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL to give to ``MNISTKIT_MIRROR``."""
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def open_connections(self) -> int:
        """Connections being served now (refused ones excluded)."""
        return len(self._tasks)

    def serve_forever(self, ready: Callable[[MirrorServer], None] | None = None) -> None:
        """Serve in this thread until :meth:`shutdown` (or SIGINT/SIGTERM, see :func:`serve`)."""
        asyncio.run(self._main(ready, signals=False))

    def start(self, ready: Callable[[MirrorServer], None] | None = None) -> MirrorServer:
        """Serve from a background thread; return once listening (after calling ``ready``)."""
        self._thread = threading.Thread(target=self.serve_forever, args=(ready,), name="mnistkit-serve", daemon=True)
        self._thread.start()
        self._started.wait()
        return self

    def shutdown(self) -> None:
        """Stop serving (from any thread): close the listener and every connection, then return."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self.server_close()

    def server_close(self) -> None:
        """Close the listening socket and write out the log (idempotent)."""
        self._listener.close()
        if isinstance(self._log, _StderrLog):
            self._log.close()

    def __enter__(self) -> MirrorServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def resolve(self, target: str) -> tuple[Path | None, str]:
        """The file a request target names, or None and why it is refused.

        Parameters
        ----------
        target : str
            The request target as sent (``/mnist/train-images-idx3-ubyte.gz``).

        Returns
        -------
        (pathlib.Path or None, str)
        """
        absolute = re.match(r"https?://[^/?#]*(/[^#]*)?$", target, re.IGNORECASE)
        if absolute:  # absolute-form, which a server must accept (RFC 9112 3.2.2): its path is the target
            target = absolute.group(1) or "/"
        elif target.startswith("//"):  # "//x/y" is "/x/y" (as http.server did), never a host
            target = "/" + target.lstrip("/")
        raw = target.split("?", 1)[0].split("#", 1)[0]
        try:
            path = urllib.parse.unquote(raw, errors="strict")  # decoded once: "%252e" stays a literal name
        except UnicodeDecodeError:
            return None, "the path is not valid percent-encoded UTF-8"
        parts = path.split("/")
        # Exactly "", dataset, file: this also refuses absolute URLs.
        if len(parts) != 3 or parts[0] != "" or "\\" in path or "\x00" in path:
            return None, "only /<dataset>/<file> is served"
        if any(p in ("", ".", "..") or p.startswith(".") for p in parts[1:]):
            return None, "hidden or relative path components are not served"
        if parts[2].lower().endswith(UNFINISHED_SUFFIXES):  # lower: ".PART" is ".part" on macOS and Windows
            return None, "partial downloads are not served"
        candidate = self.root.joinpath(*parts[1:])
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            return None, "not found"
        if not real.is_relative_to(self.root):
            return None, "the file lies outside the served folder"
        inside = real.relative_to(self.root).parts
        if any(p.startswith(".") for p in inside) or inside[-1].lower().endswith(UNFINISHED_SUFFIXES):
            return None, "hidden or partial files are not served, even through a link"
        if not real.is_file():
            return None, "not found"
        return real, ""

    # --- the loop ----------------------------------------------------------------------------------

    async def _main(self, ready: Callable[[MirrorServer], None] | None, signals: bool) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._stop = stop = asyncio.Event()
        if signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, stop.set)
                except NotImplementedError:  # Windows: a plain handler that wakes the loop
                    signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
        accept = asyncio.ensure_future(self._accept_loop())
        report = asyncio.ensure_future(self._report_loop())
        try:
            if ready is not None:
                ready(self)
            self._started.set()
            await self._stop.wait()
        finally:
            self._started.set()
            pending = {accept, report, *self._tasks, *self._lingering}
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=5)
            if pending:  # a cancellation was lost: close the sockets under the tasks, then cancel again
                for sock in list(self._socks):
                    _abort(sock)
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=5)
            self._flush_tally()
            self._listener.close()
            if signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    try:
                        self._loop.remove_signal_handler(sig)
                    except NotImplementedError:
                        signal.signal(sig, signal.SIG_DFL if sig == signal.SIGTERM else signal.default_int_handler)

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, addr = await loop.sock_accept(self._listener)
            except OSError as err:
                if self._listener.fileno() == -1:
                    return
                if err.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                    continue  # a client that left before being accepted: next one
                self._count("accept_failed")
                await asyncio.sleep(0.1)  # out of descriptors or memory: let connections finish first
                continue
            sock.setblocking(False)
            self._socks.add(sock)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if len(self._tasks) >= self.max_connections:
                self.stats["refused_over_cap"] += 1
                self._count("refused")
                self._refuse(sock)
                continue
            self.stats["connections"] += 1
            task = loop.create_task(self._connection(sock, addr))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            self.stats["peak_open"] = max(self.stats["peak_open"], len(self._tasks))

    def _refuse(self, sock: socket.socket) -> None:
        """503 to a client over the cap, then a short bounded lingering close so it reads the answer."""
        with contextlib.suppress(OSError):
            sock.send(
                _plain(
                    503, "Service Unavailable", "too many connections; retry later", ("Retry-After", str(RETRY_AFTER))
                )
            )
        if len(self._lingering) >= _MAX_LINGERING:
            _abort(sock)
            self._socks.discard(sock)
            return
        task = asyncio.get_running_loop().create_task(self._linger(sock))
        self._lingering.add(task)
        task.add_done_callback(self._lingering.discard)

    async def _linger(self, sock: socket.socket) -> None:
        """Read and drop what the client still sends, so closing does not reset the answer away."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _LINGER
        try:
            sock.shutdown(socket.SHUT_WR)
            while (left := deadline - loop.time()) > 0:
                if not await _within(loop.sock_recv(sock, _RECV), left):
                    break
        except (OSError, asyncio.TimeoutError, TimeoutError):
            pass
        finally:
            sock.close()
            self._socks.discard(sock)

    async def _report_loop(self) -> None:
        """Log drops and refusals as counts every few seconds: a port scan cannot flood the log."""
        while True:
            await asyncio.sleep(5)
            self._flush_tally()

    def _count(self, what: str) -> None:
        self._tally[what] = self._tally.get(what, 0) + 1

    def _flush_tally(self) -> None:
        if not self._tally:
            return
        words = {
            "head_timeout": f"sent no complete request within {self.header_timeout:g} s",
            "stalled": f"stalled (a body or 256 KiB of a response not moved within {self.stall_timeout:g} s)",
            "refused": f"refused with 503 (over {self.max_connections} connections)",
            "bad": "sent a malformed request (answered 4xx)",
            "accept_failed": "could not be accepted (out of file descriptors or memory)",
        }
        parts = [f"{n} {words[k]}" for k, n in sorted(self._tally.items())]
        self._log("mnistkit serve: clients dropped or refused: " + "; ".join(parts))
        self._tally.clear()

    # --- one connection ----------------------------------------------------------------------------

    async def _connection(self, sock: socket.socket, addr: tuple) -> None:
        loop = asyncio.get_running_loop()
        peer = addr[0] if isinstance(addr, tuple) else str(addr)
        leftover = b""
        graceful = True
        served = 0  # requests answered on this connection
        try:
            while True:
                conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
                leftover = leftover.lstrip(b"\r\n")  # a stray CRLF after the previous request (RFC 9112 2.2)
                if leftover:
                    conn.receive_data(leftover)
                deadline = loop.time() + self.header_timeout
                fed = [len(leftover)]  # bytes given to h11 for this request, to measure its head
                try:
                    request = await self._next(conn, sock, deadline, "head_timeout", quiet=served > 0, fed=fed)
                except h11.RemoteProtocolError as err:
                    graceful = False  # answered and closed by _bad_request
                    await self._bad_request(sock, err.error_status_hint, str(err), peer)
                    return
                if isinstance(request, h11.ConnectionClosed):
                    return
                assert isinstance(request, h11.Request)
                # h11 only refuses an incomplete head over the limit: a complete one that arrived in
                # one or two reads (up to twice the limit) is measured here
                if fed[0] - len(conn.trailing_data[0]) > _MAX_HEAD:
                    graceful = False
                    await self._bad_request(sock, 431, f"the request head is over {_MAX_HEAD} bytes", peer, request)
                    return
                keep = await self._read_body(conn, sock, request, peer)
                if keep is None:
                    graceful = False  # answered and lingering already
                    return
                # keep is False after an Upgrade or CONNECT request too: the answer then says "close"
                keep = await self._respond(sock, request, peer, keep)
                served += 1
                if not keep:
                    return
                leftover, closed = conn.trailing_data
                if closed:
                    return
        except _Drop as drop:
            graceful = not drop.reset
            if drop.reset:
                _abort(sock)
        except (ConnectionError, OSError):
            graceful = False
            sock.close()
        except asyncio.CancelledError:  # the server is stopping
            graceful = False
            _abort(sock)
            raise
        finally:
            if graceful:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
                sock.close()
            self._socks.discard(sock)

    async def _next(
        self,
        conn: h11.Connection,
        sock: socket.socket,
        deadline: float,
        why: str,
        quiet: bool = False,
        fed: list[int] | None = None,
    ):
        """The next h11 event, reading as needed; ``_Drop`` once ``deadline`` passes.

        ``quiet``: a kept-alive connection that stays silent until the deadline is closed without a
        408 (clients reuse such connections and would take the 408 for their next request's answer).
        """
        loop = asyncio.get_running_loop()
        quiet = quiet and not conn.trailing_data[0]
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            left = deadline - loop.time()
            try:
                if left <= 0:
                    raise asyncio.TimeoutError
                data = await _within(loop.sock_recv(sock, _RECV), left)
            except (asyncio.TimeoutError, TimeoutError):
                self.stats["dropped_head_timeout" if why == "head_timeout" else "dropped_stalled"] += 1
                self._count(why)
                if why == "head_timeout" and quiet:  # an idle kept-alive connection: just close it
                    raise _Drop(reset=False) from None
                if why == "head_timeout":  # nothing of ours is queued: close politely so the 408 is read
                    with contextlib.suppress(OSError):
                        sock.send(_plain(408, "Request Timeout", "no complete request in time"))
                raise _Drop(reset=why != "head_timeout") from None
            if fed is not None and fed[0] == 0 and data:
                data = data.lstrip(b"\r\n")  # RFC 9112 2.2: empty lines before a request line are ignored
                if not data:
                    continue
            quiet = quiet and not data
            if fed is not None:
                fed[0] += len(data)
            conn.receive_data(data)

    async def _read_body(
        self, conn: h11.Connection, sock: socket.socket, request: h11.Request, peer: str
    ) -> bool | None:
        """Read and drop a request body; True to keep the connection, None if it was refused."""
        names = {k for k, _ in request.headers}
        if b"content-length" in names and b"transfer-encoding" in names:
            # RFC 9112 6.3: a server may refuse both framings at once (a request-smuggling pattern)
            await self._bad_request(sock, 400, "Content-Length and Transfer-Encoding together", peer, request)
            return None
        length = next((int(v) for k, v in request.headers if k == b"content-length"), None)
        if length is not None and length > _MAX_BODY:
            await self._bad_request(sock, 413, f"a request body of {length} bytes is refused", peer, request)
            return None
        if conn.they_are_waiting_for_100_continue:  # RFC 9110 10.1.1: answer at once, not after a stall
            await self._send(sock, b"HTTP/1.1 100 Continue\r\n\r\n")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.stall_timeout
        received = 0
        while True:
            try:
                event = await self._next(conn, sock, deadline, "stalled")
            except h11.RemoteProtocolError as err:
                await self._bad_request(sock, err.error_status_hint, str(err), peer, request)
                return None
            if isinstance(event, h11.Data):
                received += len(event.data)
                if received > _MAX_BODY:
                    await self._bad_request(sock, 413, "the request body is too large", peer, request)
                    return None
            elif isinstance(event, h11.EndOfMessage):
                return conn.their_state is h11.DONE and _keep_alive(request)
            elif isinstance(event, h11.ConnectionClosed):
                return False

    async def _bad_request(
        self, sock: socket.socket, status: int, reason: str, peer: str, request: h11.Request | None = None
    ) -> None:
        self.stats["bad_requests"] += 1
        self._count("bad")
        status = status if status in (400, 413, 414, 431) else 400
        names = {
            400: "Bad Request",
            413: "Content Too Large",
            414: "URI Too Long",
            431: "Request Header Fields Too Large",
        }
        if request is not None:
            self._log_request(peer, request, status, 0)
        with contextlib.suppress(OSError):
            sock.send(_plain(status, names[status], reason))
        await self._linger(sock)

    async def _send(self, sock: socket.socket, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        try:
            await _within(loop.sock_sendall(sock, data), self.stall_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            self.stats["dropped_stalled"] += 1
            self._count("stalled")
            raise _Drop from None

    async def _respond(self, sock: socket.socket, request: h11.Request, peer: str, keep: bool) -> bool:
        """Answer one request (``keep``: the connection may serve another); return ``keep``."""
        method = request.method.decode("ascii", "replace")
        if method not in ("GET", "HEAD"):
            self._log_request(peer, request, 405, 0)
            await self._send(
                sock, _plain(405, "Method Not Allowed", "only GET and HEAD", ("Allow", "GET, HEAD"), close=not keep)
            )
            return keep
        target = request.target.decode("latin-1")
        path, problem = self.resolve(target)
        if path is None:
            status = 404 if problem == "not found" else 403
            self._log_request(peer, request, status, 0)
            data = _plain(status, "Not Found" if status == 404 else "Forbidden", problem, close=not keep)
            if method == "HEAD":
                data = data[: data.index(b"\r\n\r\n") + 4]
            await self._send(sock, data)
            return keep
        headers: dict[str, str] = {}
        for k, v in request.headers:  # a field sent twice is one comma-separated list (RFC 9110 5.3)
            name = k.decode("latin-1").lower()
            headers[name] = f"{headers[name]}, {v.decode('latin-1')}" if name in headers else v.decode("latin-1")
        try:
            # O_NONBLOCK: a file swapped for a FIFO since resolve() must not block the loop on open
            fh = os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb")
        except OSError as err:
            if err.errno in (errno.EMFILE, errno.ENFILE):  # out of descriptors: busy, not missing
                self._log_request(peer, request, 503, 0)
                await self._send(
                    sock, _plain(503, "Service Unavailable", "too busy; retry later", ("Retry-After", str(RETRY_AFTER)))
                )
                return False
            self._log_request(peer, request, 404, 0)
            await self._send(sock, _plain(404, "Not Found", "not found", close=not keep))
            return keep
        with fh:
            stat = os.fstat(fh.fileno())
            if not S_ISREG(stat.st_mode):
                self._log_request(peer, request, 404, 0)
                await self._send(sock, _plain(404, "Not Found", "not found", close=not keep))
                return keep
            size = stat.st_size
            etag = f'"{stat.st_mtime_ns:x}-{size:x}"'
            modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
            validators = [f"ETag: {etag}", f"Last-Modified: {modified}", f"Date: {email.utils.formatdate(usegmt=True)}"]
            precondition = _preconditions(headers, etag, int(stat.st_mtime))
            if precondition:
                status, reason = precondition
                self._log_request(peer, request, status, 0)
                lines = [f"HTTP/1.1 {status} {reason}", *validators]
                lines += ["Content-Length: 0"] if status == 412 else []  # a 304 has no body and no length
                lines += [] if keep else ["Connection: close"]
                await self._send(sock, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
                return keep
            start, end, status, reason = 0, size - 1, 200, "OK"
            wanted, if_range = headers.get("range"), headers.get("if-range")
            if wanted and (if_range is None or if_range in (etag, modified)):
                span = _parse_range(wanted, size)
                if span is None:
                    self._log_request(peer, request, 416, 0)
                    lines = [
                        "HTTP/1.1 416 Range Not Satisfiable",
                        f"Content-Range: bytes */{size}",
                        "Content-Length: 0",
                        validators[-1],
                    ] + ([] if keep else ["Connection: close"])
                    await self._send(sock, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
                    return keep
                if isinstance(span, tuple):  # else IGNORE_RANGE: the whole file
                    (start, end), status, reason = span, 206, "Partial Content"
            length = end - start + 1
            lines = [
                f"HTTP/1.1 {status} {reason}",
                "Content-Type: application/octet-stream",
                f"Content-Length: {length}",
                "Accept-Ranges: bytes",
                *validators,
            ]
            if status == 206:
                lines.append(f"Content-Range: bytes {start}-{end}/{size}")
            if not keep:
                lines.append("Connection: close")
            self._log_request(peer, request, status, length if method == "GET" else 0)
            await self._send(sock, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            if method == "GET":
                await self._send_file(sock, fh, start, length)
        return keep

    async def _send_file(self, sock: socket.socket, fh, offset: int, count: int) -> None:
        """``sendfile`` in slices; a slice not taken within stall_timeout drops the client."""
        loop = asyncio.get_running_loop()
        while count > 0:
            n = min(_CHUNK, count)
            try:
                sent = await _within(loop.sock_sendfile(sock, fh, offset, n), self.stall_timeout)
            except (asyncio.TimeoutError, TimeoutError):
                self.stats["dropped_stalled"] += 1
                self._count("stalled")
                raise _Drop from None
            if sent == 0:  # the file shrank under us: the client sees a short body and resumes
                raise _Drop
            offset += sent
            count -= sent
            self.stats["bytes_sent"] += sent

    def _log_request(self, peer: str, request: h11.Request, status: int, size: int) -> None:
        self.stats["requests"] += 1
        line = b"%s %s HTTP/%s" % (request.method, request.target, request.http_version)
        shown = line.decode("latin-1").encode("unicode_escape").decode("ascii")  # no terminal escapes from clients
        self._log(f'{peer} - [{time.strftime("%d/%b/%Y %H:%M:%S")}] "{shown}" {status} {size or "-"}')


def _etags(value: str) -> list[str]:
    """The entity-tags of an If-Match / If-None-Match list (commas inside quotes kept)."""
    return re.findall(r'(?:W/)?"[^"]*"|\*', value)


def _date(value: str) -> float | None:
    """An HTTP-date as a POSIX time, or None when it is not one (the condition is then ignored)."""
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    # asctime dates carry no zone; every HTTP-date is GMT (RFC 9110 5.6.7)
    return when.replace(tzinfo=when.tzinfo or datetime.timezone.utc).timestamp()


def _preconditions(headers: dict[str, str], etag: str, mtime: int) -> tuple[int, str] | None:
    """RFC 9110 13.2.2 for GET and HEAD: ``(412|304, reason)`` when a condition fails, else None."""
    strong = etag.removeprefix("W/")
    if "if-match" in headers:
        tags = _etags(headers["if-match"])
        if not ("*" in tags or strong in tags):  # strong comparison: a weak tag never matches
            return 412, "Precondition Failed"
    elif "if-unmodified-since" in headers:
        since = _date(headers["if-unmodified-since"])
        if since is not None and mtime > since:
            return 412, "Precondition Failed"
    if "if-none-match" in headers:
        tags = [t.removeprefix("W/") for t in _etags(headers["if-none-match"])]  # weak comparison
        if "*" in tags or strong in tags:
            return 304, "Not Modified"
    elif "if-modified-since" in headers:
        since = _date(headers["if-modified-since"])
        if since is not None and mtime <= since:
            return 304, "Not Modified"
    return None


def _keep_alive(request: h11.Request) -> bool:
    if request.http_version < b"1.1":
        return False
    tokens = {t.strip().lower() for k, v in request.headers if k == b"connection" for t in v.split(b",")}
    return b"close" not in tokens


def serve(
    root: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ready: Callable[[MirrorServer], None] | None = None,
    header_timeout: float = HEADER_TIMEOUT,
    stall_timeout: float = STALL_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
) -> None:
    """Serve ``root`` until SIGINT or SIGTERM, closing every open connection on the way out.

    Parameters
    ----------
    root : path-like
        The data folder.
    host, port
        Where to listen (see :class:`MirrorServer`).
    ready : callable, optional
        Called with the server once it listens (the CLI prints its URL).
    header_timeout, stall_timeout, max_connections
        Limits on clients (see :class:`MirrorServer`).
    """
    server = MirrorServer(
        root, host, port, header_timeout=header_timeout, stall_timeout=stall_timeout, max_connections=max_connections
    )
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # the usual case: no event loop here, serve in this thread
        try:
            on_main = threading.current_thread() is threading.main_thread()
            asyncio.run(server._main(ready, signals=on_main))
        finally:
            server.server_close()
        return
    # Called from a running event loop (a notebook): serve from a thread; Ctrl-C or shutdown() stops it.
    try:
        server.start(ready)
        assert server._thread is not None
        server._thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
