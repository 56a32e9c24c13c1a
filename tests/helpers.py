"""Test helpers: tiny synthetic datasets in the published layout, and a loopback HTTP server."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnistkit.idx import encode_idx
from mnistkit.registry import Dataset, FileSpec, Split

TRAIN_N, TEST_N = 60, 20

#: Environment: where tests append their case counts (tools/reliability.py sets it).
RELIABILITY_LOG = "MNISTKIT_RELIABILITY_LOG"
#: Environment: "1" runs the torture and fuzz tests at full length (minutes), not the CI size.
LONG = "MNISTKIT_TORTURE_LONG"


def long_mode() -> bool:
    """Whether the long (on-demand) torture and fuzz runs were asked for."""
    return os.environ.get(LONG, "") == "1"


@dataclass
class Synthetic:
    """A registry entry plus the exact bytes and arrays behind it."""

    dataset: Dataset
    arrays: dict[str, np.ndarray]  # published name -> decoded array
    raw: dict[str, bytes]  # published name -> decoded IDX bytes
    gz: dict[str, bytes]  # published name -> gzip bytes as "published"

    def write(self, folder: Path, names: dict[str, str] | None = None, compress: bool = True) -> None:
        """Put the files in ``folder/<dataset>/``, optionally renamed and/or uncompressed."""
        target = folder / self.dataset.name
        target.mkdir(parents=True, exist_ok=True)
        for name in self.raw:
            out = (names or {}).get(name, name)
            (target / out).write_bytes(self.gz[name] if compress else self.raw[name])


def make_synthetic(name: str = "tiny", seed: int = 0, mirrors: tuple[str, ...] = ()) -> Synthetic:
    """A 10-class dataset of TRAIN_N/TEST_N random 28x28 images, registered like MNIST."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (TRAIN_N, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(TRAIN_N) % 10).astype(np.uint8)[rng.permutation(TRAIN_N)],
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (TEST_N, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": (np.arange(TEST_N) % 10).astype(np.uint8)[rng.permutation(TEST_N)],
    }
    raw = {k: encode_idx(v) for k, v in arrays.items()}
    gz = {k: gzip.compress(v, mtime=0) for k, v in raw.items()}
    files = tuple(
        FileSpec(
            k,
            shape=v.shape,
            type_code=0x08,
            decoded_size=len(raw[k]),
            decoded_sha256="sha256:" + hashlib.sha256(raw[k]).hexdigest(),
            size=len(gz[k]),
            sha256="sha256:" + hashlib.sha256(gz[k]).hexdigest(),
        )
        for k, v in arrays.items()
    )
    ds = Dataset(
        name=name,
        title="synthetic test data",
        files=files,
        splits=(
            Split("train", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
            Split("test", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
        ),
        mirrors=mirrors,
        classes=tuple(str(i) for i in range(10)),
    )
    return Synthetic(ds, arrays, raw, gz)


# --- a scripted loopback HTTP server -----------------------------------------------------------


@dataclass
class Route:
    """How the server answers one path.

    ``statuses`` are answered first, one per request (e.g. [503, 503] then the body);
    ``drop_after`` closes the connection after that many body bytes on the first
    ``drop_times`` full-body requests; ``ignore_range`` answers 200 to Range requests;
    ``stall`` stalls before the body (for timeouts) and ``stall_after`` after that many body
    bytes of a full-body request (setting ``Server.stalled``), both until ``Server.release`` is set.
    Lies: ``content_length`` is announced instead of the true length; ``endless`` sends the body and
    then junk until the client hangs up (no length announced); ``redirect_status`` is the status of
    a ``redirect`` (None: a 302 without a Location header).  ``trickle`` sends the first 512 bytes,
    then 16 bytes every ``trickle`` seconds: never silent long enough for a read timeout.
    ``header_trickle`` sends the status line, then a header one byte every that many seconds
    (400 bytes, then hangs up).  ``cut_every`` closes every response, ranged or not, after that
    many body bytes.  ``etag`` is announced instead of the strong hash of the body (e.g. a weak
    ``W/"..."``); ``If-Range`` is honoured as RFC 9110 says (only a strong match resumes).
    ``always_206`` answers 206 with a Content-Range even to a request without Range.
    """

    body: bytes = b""
    statuses: list[int] = field(default_factory=list)
    content_type: str = "application/octet-stream"
    drop_after: int | None = None
    drop_times: int = 1
    ignore_range: bool = False
    stall: bool = False
    stall_after: int | None = None
    redirect: str | None = None
    redirect_status: int | None = 302
    headers: dict[str, str] = field(default_factory=dict)
    content_length: int | None = None
    endless: bool = False
    trickle: float | None = None
    header_trickle: float | None = None
    cut_every: int | None = None
    etag: str | None = None
    always_206: bool = False


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # clients that hang up (timeouts, killed processes) are part of the tests, not errors
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class Server:
    """A real HTTP/1.1 server on 127.0.0.1 with per-path fault injection and request counting."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, headers)
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.stalled = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                with outer.lock:
                    outer.requests.append(("GET", self.path, dict(self.headers)))
                    route = outer.routes.get(self.path)
                    status = route.statuses.pop(0) if route and route.statuses else None
                if route is None:
                    return self._reply(404, b"<html>not found</html>", "text/html")
                if status is not None:
                    return self._reply(status, f"<html>{status}</html>".encode(), "text/html")
                if route.redirect is not None:
                    self.send_response(route.redirect_status or 302)
                    if route.redirect_status is not None:
                        self.send_header("Location", route.redirect)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if route.stall:
                    outer.release.wait(30)
                    return
                if route.header_trickle is not None:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    for _ in range(400):
                        if outer.release.wait(route.header_trickle):
                            return
                        self.wfile.write(b"a")
                        self.wfile.flush()
                    self.close_connection = True
                    return
                body = route.body
                etag = route.etag or f'"{hashlib.md5(body).hexdigest()}"'
                rng = self.headers.get("Range")
                if_range = self.headers.get("If-Range")
                if if_range is not None and (if_range.startswith("W/") or etag.startswith("W/") or if_range != etag):
                    rng = None  # RFC 9110 13.1.5: no strong match, so the whole representation
                if route.always_206 and not rng:
                    rng = "bytes=0-"
                if rng and not route.ignore_range and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    if start >= len(body):
                        return self._reply(416, b"", "text/plain")
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                    part = body[start:]
                else:
                    self.send_response(200)
                    part = body
                self.send_header("Content-Type", route.content_type)
                if route.endless:
                    self.send_header("Connection", "close")
                else:
                    self.send_header("Content-Length", str(route.content_length or len(part)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", etag)
                for k, v in route.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                with outer.lock:
                    drop = route.drop_after is not None and route.drop_times > 0 and not rng
                    if drop:
                        route.drop_times -= 1
                if route.trickle is not None:
                    self.wfile.write(part[:512])
                    self.wfile.flush()
                    for at in range(512, len(part), 16):
                        if outer.release.wait(route.trickle):  # the server is shutting down
                            return
                        self.wfile.write(part[at : at + 16])
                        self.wfile.flush()
                    return
                if route.stall_after is not None and not rng:
                    self.wfile.write(part[: route.stall_after])
                    self.wfile.flush()
                    outer.stalled.set()
                    outer.release.wait(30)
                    return
                if route.cut_every is not None and len(part) > route.cut_every:
                    drop, route_cut = True, route.cut_every
                else:
                    route_cut = route.drop_after
                if drop:
                    self.wfile.write(part[:route_cut])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(part)
                if route.endless:  # until the client hangs up (a ConnectionError, kept quiet)
                    junk = bytes(range(256)) * 256
                    while not outer.release.is_set():
                        self.wfile.write(junk)
                if route.content_length is not None:
                    self.close_connection = True  # whatever the length announced, this body is over

            def _reply(self, status, body, ctype):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        # a short poll interval: shutdown() waits for one, and every test stops a server
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def gets(self, path: str) -> int:
        """How many GET requests reached ``path``."""
        with self.lock:
            return sum(1 for m, p, _ in self.requests if m == "GET" and p == path)

    def serve_dataset(self, synth: Synthetic, prefix: str = "") -> None:
        """Publish every file of ``synth`` at ``<prefix>/<dataset>/<name>``."""
        for name, data in synth.gz.items():
            self.routes[f"{prefix}/{synth.dataset.name}/{name}"] = Route(body=data)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


# --- the console script in a child process -----------------------------------------------------

# A child process does not see datasets registered in the test process: this one registers
# make_synthetic()'s "tiny" dataset, then runs the real command line.
_CHILD = (
    "import sys; sys.path.insert(0, {here!r}); import winsem; winsem.activate_from_env(); "
    "from helpers import make_synthetic; from mnistkit import registry, cli;"
    "registry.register_dataset(make_synthetic().dataset); sys.exit(cli.main(sys.argv[1:]))"
)


def cli_argv(*args: str) -> list[str]:
    """The argv of a ``mnistkit`` process that also knows the synthetic ``tiny`` dataset."""
    import sys

    return [sys.executable, "-c", _CHILD.format(here=str(Path(__file__).parent)), *map(str, args)]


def run_cli(*args: str, env: dict | None = None):
    """Run :func:`cli_argv` to completion; returns the CompletedProcess (text mode)."""
    import subprocess

    return subprocess.run(cli_argv(*args), capture_output=True, text=True, env=env)
