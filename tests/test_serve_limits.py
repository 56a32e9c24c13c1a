"""`mnistkit serve` under idle, slow, hostile and many clients: real sockets on 127.0.0.1.

Every test is bounded in count (at most 1,000 sockets) and in time (timeouts of seconds); the waits
poll the real condition (the server's open descriptors, its TCP connections, its log) with a deadline.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from helpers import cli_argv

from mnistkit import cli
from mnistkit import serve as serve_module
from mnistkit.serve import MirrorServer

HALF_OPEN = 1000
CLIENTS = 200


def _raise_fd_limit(wanted: int) -> None:
    """This process opens up to ~1,000 sockets of its own: make sure it may."""
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"the open-file hard limit ({hard}) is below the {wanted} this test needs")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail saying ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


class Served:
    """A `mnistkit serve` process over ``home`` with its stderr in a file (a full pipe would block it)."""

    def __init__(self, home: Path, tmp: Path, *options: str) -> None:
        self.log_path = tmp / f"serve-{os.getpid()}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mnistkit", "--data-home", str(home), "serve", "--port", "0", *options],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        line = self.proc.stdout.readline()  # readiness: the server says where it listens
        assert line.startswith("serving on http://127.0.0.1:"), line + self.log()
        self.url = line.split()[2]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.ps = psutil.Process(self.proc.pid)
        self.base_fds = self.ps.num_fds()
        self.base_threads = self.ps.num_threads()

    def log(self) -> str:
        return self.log_path.read_text()

    def fds(self) -> int:
        return self.ps.num_fds()

    def peers(self) -> set[int]:
        """Client ports of the server's established TCP connections."""
        conns = getattr(self.ps, "net_connections", None) or self.ps.connections
        return {c.raddr.port for c in conns(kind="tcp") if c.raddr}

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    "the server did not stop on " + signal.Signals(sig).name + ": " + self.log()[-3000:]
                ) from None
        self.proc.stdout.close()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def start(home, tmp_path):
    """``start(*options)`` -> a running :class:`Served`; every one is stopped at the end."""
    started: list[Served] = []

    def _start(*options: str) -> Served:
        s = Served(home, tmp_path, *options)
        started.append(s)
        return s

    yield _start
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


@pytest.fixture
def data(synth, home):
    """The tiny dataset plus a 3 MB file (bigger than one 256 KiB slice), as {path: bytes}."""
    synth.write(home)
    files = {f"/tiny/{name}": blob for name, blob in synth.gz.items()}
    big = os.urandom(3_000_000)
    (home / "tiny" / "big.bin").write_bytes(big)
    files["/tiny/big.bin"] = big
    return files


def _get(url: str, path: str, headers: dict | None = None, timeout: float = 10) -> tuple[int, bytes, dict]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), dict(resp.headers)
    finally:
        conn.close()


def _half_open(port: int) -> socket.socket:
    """A client that sends half a request head and then waits."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /tiny/train-labels-idx1-ubyte.gz HTTP/1.1\r\nHost: x\r\n")
    return s


def _closed_by_peer(s: socket.socket, timeout: float = 10) -> bytes:
    """Read until the server closes; returns what it sent (raises on a socket timeout)."""
    s.settimeout(timeout)
    got = b""
    try:
        while chunk := s.recv(4096):
            got += chunk
    except ConnectionResetError:
        pass
    return got


def test_cli_defaults_are_the_servers_and_bad_values_are_refused(home):
    args = cli.build_parser().parse_args(["serve"])
    assert args.header_timeout == serve_module.HEADER_TIMEOUT <= 30
    assert args.stall_timeout == serve_module.STALL_TIMEOUT
    assert args.max_connections == serve_module.MAX_CONNECTIONS
    for bad in (
        ["--header-timeout", "0"],
        ["--stall-timeout", "nan"],
        ["--max-connections", "-3"],
        ["--header-timeout", "1e9"],
    ):
        proc = subprocess.run([sys.executable, "-m", "mnistkit", "serve", *bad], capture_output=True, text=True)
        assert proc.returncode == 2, bad
        assert "Traceback" not in proc.stderr and bad[0] in proc.stderr
    with pytest.raises(ValueError, match="header_timeout"):
        MirrorServer(home, header_timeout=-1)


def test_a_port_in_use_or_a_bad_host_is_one_line(home, data):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        # The README's exit codes: a server that cannot start is 1, a bad argument 2.
        for argv, words, code in (
            (
                ["--port", str(port)],
                f"cannot listen on 127.0.0.1:{port} (Address already in use); another program uses that port",
                1,
            ),
            (["--host", "999.1.1.1"], "cannot listen on 999.1.1.1:8000", 2),
        ):
            proc = subprocess.run(
                [sys.executable, "-m", "mnistkit", "--data-home", str(home), "serve", *argv],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert proc.returncode == code and words in proc.stderr, proc.stderr
            assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
            assert "while attempting" not in proc.stderr  # the OS's words, not create_server's wrapping


def test_a_thousand_half_open_connections_do_not_starve_a_real_client(start, data):
    _raise_fd_limit(HALF_OPEN + 200)
    s = start("--header-timeout", "3")
    idle = [_half_open(s.port) for _ in range(HALF_OPEN)]
    try:
        _wait_for(lambda: s.fds() >= s.base_fds + HALF_OPEN, 30, "the server holds the 1,000 connections")
        rss_held = s.ps.memory_info().rss
        begun = time.monotonic()
        for path, blob in data.items():  # a normal client, while the 1,000 are still held
            status, body, _ = _get(s.url, path, timeout=5)
            assert (status, body) == (200, blob), path
        took = time.monotonic() - begun
        assert s.fds() >= s.base_fds + HALF_OPEN, "the idle ones were still held during the download"
        assert s.ps.num_threads() == s.base_threads  # no thread per client
        # Released once the header timeout passes: descriptors back to where they started, each client told 408.
        _wait_for(lambda: s.fds() <= s.base_fds + 2, 30, "the server releases the idle connections")
        answers = [_closed_by_peer(sock) for sock in idle]
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), {a[:20] for a in answers}
        assert s.ps.num_threads() == s.base_threads
        assert rss_held < 200 * 2**20, f"server RSS {rss_held / 2**20:.0f} MiB with 1,000 idle clients"
    finally:
        for sock in idle:
            sock.close()
    _wait_for(lambda: "1000 sent no complete request within 3 s" in s.log(), 15, "the drops are logged")
    assert s.stop() == 0
    print(f"normal client during 1,000 half-open: {took * 1000:.0f} ms for {len(data)} files")


def test_a_head_trickled_a_byte_at_a_time_is_dropped_at_the_deadline(start, data):
    s = start("--header-timeout", "1")
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    sock.sendall(b"GET /tiny/big.bin HTTP/1.1\r\nHost: x\r\n")
    stop = threading.Event()

    def trickle() -> None:  # a slowloris: a header byte every 0.1 s, never finishing the head
        try:
            while not stop.wait(0.1):
                sock.send(b"X")
        except OSError:
            pass

    t = threading.Thread(target=trickle)
    t.start()
    begun = time.monotonic()
    try:
        answer = _closed_by_peer(sock, timeout=15)
    finally:
        stop.set()
        t.join()
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - begun < 10  # well before the 15 s socket timeout: the deadline, not activity
    assert _get(s.url, "/tiny/big.bin")[1] == data["/tiny/big.bin"]
    assert s.stop() == 0


def test_a_stalled_request_body_is_dropped(start, data):
    s = start("--stall-timeout", "1")
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    sock.sendall(b"GET /tiny/big.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"y" * 10)
    try:
        answer = _closed_by_peer(sock, timeout=15)  # raises socket.timeout if never dropped
    finally:
        sock.close()
    assert answer == b""  # dropped, nothing served for a request that never finished
    _wait_for(lambda: "stalled" in s.log(), 15, "the drop is logged")
    assert s.stop() == 0


def test_a_client_reading_one_byte_per_second_is_dropped(start, home, data):
    big = home / "tiny" / "huge.bin"
    with open(big, "wb") as fh:  # 64 MB: far more than the socket buffers hold
        fh.truncate(64 << 20)
    s = start("--stall-timeout", "1")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", s.port))
    client_port = sock.getsockname()[1]
    sock.sendall(b"GET /tiny/huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    stop = threading.Event()
    received = []

    def slow_reader() -> None:
        try:
            while not stop.wait(1.0):
                if not (b := sock.recv(1)):
                    return
                received.append(b)
        except OSError:
            pass

    t = threading.Thread(target=slow_reader)
    t.start()
    try:
        _wait_for(lambda: client_port in s.peers(), 10, "the server has the connection")
        _wait_for(lambda: client_port not in s.peers(), 30, "the server drops the slow reader")
        assert _get(s.url, "/tiny/big.bin")[1] == data["/tiny/big.bin"]  # and still serves others
    finally:
        stop.set()
        t.join()
        sock.close()
    assert len(received) < 64 << 20
    _wait_for(lambda: "1 stalled" in s.log(), 15, "the drop is logged")
    assert s.stop() == 0


def test_two_hundred_clients_at_once_are_all_served_byte_exact(start, data):
    _raise_fd_limit(4 * CLIENTS + 200)
    s = start()
    barrier = threading.Barrier(CLIENTS)
    results: list[tuple[int, str, bool, str]] = []
    paths = sorted(data)

    def client(i: int) -> None:
        path = paths[i % len(paths)]
        blob = data[path]
        barrier.wait(timeout=30)
        try:
            if i % 2:  # a resuming client: the first part, then the rest with Range
                cut = len(blob) // 3
                st1, first, headers = _get(s.url, path, {"Range": f"bytes=0-{cut - 1}"})
                st2, rest, _ = _get(s.url, path, {"Range": f"bytes={cut}-", "If-Range": headers["ETag"]})
                ok = (st1, st2) == (206, 206) and first + rest == blob
                results.append((i, path, ok, f"{st1} {st2}"))
            else:
                status, body, _ = _get(s.url, path)
                results.append((i, path, status == 200 and body == blob, str(status)))
        except Exception as err:
            results.append((i, path, False, repr(err)))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == CLIENTS
    bad = [r for r in results if not r[2]]
    assert not bad, bad[:5]
    log = s.log()
    assert log.count('" 200 ') == CLIENTS // 2 and log.count('" 206 ') == CLIENTS
    assert s.stop() == 0


def test_clients_over_the_cap_are_told_to_retry_later(start, data):
    s = start("--max-connections", "3")
    idle = [socket.create_connection(("127.0.0.1", s.port), timeout=10) for _ in range(3)]
    try:
        _wait_for(lambda: s.fds() >= s.base_fds + 3, 10, "the server holds the 3 connections")
        status, body, headers = _get(s.url, "/tiny/big.bin")
        assert status == 503 and headers["Retry-After"].isdigit() and b"retry later" in body
    finally:
        for sock in idle:
            sock.close()
    _wait_for(lambda: _get(s.url, "/tiny/big.bin")[0] == 200, 10, "served again once the others left")
    _wait_for(lambda: "refused with 503 (over 3 connections)" in s.log(), 15, "the refusals are logged")
    assert s.stop() == 0


def test_the_cap_fits_the_open_file_limit(home, data, tmp_path):
    resource = pytest.importorskip("resource")

    def low_limit() -> None:  # a machine whose hard limit is 1,024 open files
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    log = tmp_path / "low.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mnistkit", "--data-home", str(home), "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            preexec_fn=low_limit,
        )
        try:
            url = proc.stdout.readline().split()[2]
            assert _get(url, "/tiny/big.bin")[1] == data["/tiny/big.bin"]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            proc.stdout.close()
    text = log.read_text()
    assert "the open-file limit (1024) allows 352 connections, not 2000" in text, text
    assert proc.returncode == 0


def test_mnistkit_download_waits_out_a_full_server(start, synth, data, tmp_path):
    """A client told 503 + Retry-After by a full server retries and gets verified files once there is room."""
    s = start("--max-connections", "1")
    hog = socket.create_connection(("127.0.0.1", s.port), timeout=10)  # takes the only place
    _wait_for(lambda: s.fds() >= s.base_fds + 1, 10, "the server holds the first connection")
    other = tmp_path / "other-machine"
    env = {**os.environ, "MNISTKIT_HOME": str(other), "MNISTKIT_MIRROR": s.url}
    client = subprocess.Popen(
        cli_argv("download", "tiny"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        _wait_for(lambda: "refused with 503" in s.log(), 20, "the client is refused while the place is taken")
        hog.close()  # room again: the client's retry (after Retry-After) goes through
        _, err = client.communicate(timeout=60)
    finally:
        hog.close()
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, err
    for name, blob in synth.gz.items():
        assert (other / "tiny" / name).read_bytes() == blob
    assert s.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stops_cleanly_with_connections_open(start, home, data, sig):
    with open(home / "tiny" / "huge.bin", "wb") as fh:
        fh.truncate(64 << 20)
    s = start()
    idle = [_half_open(s.port) for _ in range(50)]
    downloading = socket.create_connection(("127.0.0.1", s.port), timeout=10)  # mid-transfer, not reading
    downloading.sendall(b"GET /tiny/huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        assert downloading.recv(12) == b"HTTP/1.1 200"
        _wait_for(lambda: s.fds() >= s.base_fds + 51, 10, "the server holds the connections")
        assert s.stop(sig, timeout=15) == 0
        assert "server stopped" in s.log() and "Traceback" not in s.log()
        assert all(_closed_by_peer(sock, timeout=5) == b"" for sock in idle)  # closed, not left hanging
    finally:
        for sock in (*idle, downloading):
            sock.close()


def test_http_details(home, data):
    """Malformed, oversized, pipelined and non-GET requests, against an in-process server."""
    with MirrorServer(home, header_timeout=5, stall_timeout=5, log=lambda line: None).start() as server:
        port = server.server_address[1]

        def exchange(raw: bytes) -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(raw)
                sock.shutdown(socket.SHUT_WR)  # as a client that is done sending: no lingering needed
                return _closed_by_peer(sock)

        assert exchange(b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        assert exchange(b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 100_000 + b"\r\n\r\n").startswith(b"HTTP/1.1 431 ")
        assert exchange(b"GET /tiny/big.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n").startswith(
            b"HTTP/1.1 413 "
        )
        # a smuggling attempt: both framings at once
        assert exchange(
            b"GET /tiny/big.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ).startswith(b"HTTP/1.1 400 ")
        post = exchange(b"POST /tiny/big.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
        assert post.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD" in post
        # two pipelined requests on one connection, the second asking to close: both answered, in order
        name = "/tiny/t10k-labels-idx1-ubyte.gz"
        two = exchange(
            f"GET {name} HTTP/1.1\r\nHost: x\r\n\r\nHEAD {name} HTTP/1.1\r\nHost: x\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        blob = data[name]
        first_end = two.index(b"\r\n\r\n") + 4
        assert two[first_end : first_end + len(blob)] == blob
        assert two[first_end + len(blob) :].startswith(b"HTTP/1.1 200 ") and two.endswith(b"\r\n\r\n")
        # HTTP/1.0: one answer, then the connection closes
        assert exchange(f"GET {name} HTTP/1.0\r\n\r\n".encode()).endswith(blob)
        # a request body that is small and complete is read and ignored
        status_line = exchange(
            f"GET {name} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc".encode()
        ).split(b"\r\n", 1)[0]
        assert status_line == b"HTTP/1.1 200 OK"
        assert server.stats["bad_requests"] == 4
    assert server.open_connections == 0


def test_an_idle_kept_alive_connection_is_closed_without_a_408(home, data):
    name = "/tiny/t10k-labels-idx1-ubyte.gz"
    with MirrorServer(home, header_timeout=0.5, log=lambda line: None).start() as server:
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as sock:
            sock.sendall(f"GET {name} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            rest = _closed_by_peer(sock)  # the answer, then the close at the keep-alive deadline
        assert rest.startswith(b"HTTP/1.1 200 ") and rest.endswith(data[name])  # nothing after it: no 408
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as sock:
            sock.sendall(f"GET {name} HTTP/1.1\r\nHost: x\r\n\r\nGET {name} HTTP/1.1\r\n".encode())
            rest = _closed_by_peer(sock)  # half of a second request: that one is told 408
        assert rest.endswith(b"408: no complete request in time\n") and data[name] in rest


def test_serve_called_from_a_running_event_loop(home, data):
    """In a notebook an event loop already runs: serve() still serves, and shutdown() from elsewhere stops it."""
    import asyncio

    got: list[bytes] = []

    def ready(server: MirrorServer) -> None:
        def client() -> None:
            got.append(_get(server.url, "/tiny/big.bin")[1])
            server.shutdown()

        threading.Thread(target=client).start()

    async def notebook_cell() -> None:
        serve_module.serve(home, ready=ready)

    asyncio.run(notebook_cell())
    assert got == [data["/tiny/big.bin"]]
