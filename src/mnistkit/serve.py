"""Serving a data folder over HTTP as a mirror for other machines.

The folder is served read-only in the ``<dataset>/<file>`` layout that
``MNISTKIT_MIRROR`` expects, so a classroom or cluster downloads from the
internet once and every other machine sets ``MNISTKIT_MIRROR=http://host:port``.

Only regular files exactly two levels down are served, and only when their
real path (symlinks followed) stays inside the folder: ``..``, absolute paths,
percent-encoded tricks, hidden entries (``.cache``, ``.locks``) and partial
downloads are refused.  Single byte ranges are supported (the downloader
resumes with them); every request is logged on stderr.
"""

from __future__ import annotations

import email.utils
import http.server
import os
import re
import signal
import sys
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from .layout import UNFINISHED_SUFFIXES

__all__ = ["MirrorServer", "serve"]

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
_CHUNK = 1 << 20


class MirrorHandler(http.server.BaseHTTPRequestHandler):
    """Answer GET and HEAD for ``/<dataset>/<file>`` under the server's root."""

    protocol_version = "HTTP/1.1"
    server: MirrorServer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        path, problem = self.server.resolve(self.path)
        if path is None:
            status = 404 if problem == "not found" else 403
            return self._error(status, problem)
        with open(path, "rb") as fh:
            stat = os.fstat(fh.fileno())
            size = stat.st_size
            etag = f'"{stat.st_mtime_ns:x}-{size:x}"'
            modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
            start, end = 0, size - 1
            status = 200
            wanted = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if wanted and (if_range is None or if_range in (etag, modified)):
                span = _parse_range(wanted, size)
                if span is None:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                start, end = span
                status = 206
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", modified)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if body and end >= start:
                self.connection.sendfile(fh, start, end - start + 1)
        return None

    def _error(self, status: int, reason: str) -> None:
        data = f"{status}: {reason}\n".encode()
        self.send_response(status, reason)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """``(start, end)`` (inclusive) of a single ``bytes=`` range, or None if unsatisfiable."""
    match = _RANGE.match(value.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":  # the last N bytes
        start, end = max(0, size - int(last)), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    return (start, end) if start <= end and start < size else None


class MirrorServer(http.server.ThreadingHTTPServer):
    """A threaded HTTP server for one data folder.

    Parameters
    ----------
    root : path-like
        The data folder to serve.
    host : str
        Address to listen on; ``0.0.0.0`` listens on every interface.
    port : int
        Port; 0 picks a free one (see :attr:`url`).
    """

    daemon_threads = True  # a stalled client never keeps the process from stopping

    def __init__(self, root: str | os.PathLike, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = Path(root).resolve()
        super().__init__((host, port), MirrorHandler)

    @property
    def url(self) -> str:
        """The base URL to give to ``MNISTKIT_MIRROR``."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

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
        raw = target.split("?", 1)[0].split("#", 1)[0]
        try:
            path = urllib.parse.unquote(raw, errors="strict")  # decoded once: "%252e" stays a literal name
        except UnicodeDecodeError:
            return None, "the path is not valid percent-encoded UTF-8"
        parts = path.split("/")
        # Exactly "", dataset, file: this also refuses "//etc/passwd" and absolute paths.
        if len(parts) != 3 or parts[0] != "" or "\\" in path or "\x00" in path:
            return None, "only /<dataset>/<file> is served"
        if any(p in ("", ".", "..") or p.startswith(".") for p in parts[1:]):
            return None, "hidden or relative path components are not served"
        if parts[2].endswith(UNFINISHED_SUFFIXES):
            return None, "partial downloads are not served"
        candidate = self.root.joinpath(*parts[1:])
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            return None, "not found"
        if not real.is_relative_to(self.root):
            return None, "the file lies outside the served folder"
        if not real.is_file():
            return None, "not found"
        return real, ""


def serve(
    root: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ready: Callable[[MirrorServer], None] | None = None,
) -> None:
    """Serve ``root`` until SIGINT or SIGTERM (or until another thread calls ``shutdown``).

    Parameters
    ----------
    root : path-like
        The data folder.
    host, port
        Where to listen (see :class:`MirrorServer`).
    ready : callable, optional
        Called with the server once it listens (the CLI prints its URL).
    """
    with MirrorServer(root, host, port) as server:
        previous = {}
        if threading.current_thread() is threading.main_thread():

            def stop(signum, frame):
                # shutdown() waits for serve_forever to return, so it cannot run in this thread
                threading.Thread(target=server.shutdown, daemon=True).start()

            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, stop)
        try:
            if ready is not None:
                ready(server)
            server.serve_forever()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
