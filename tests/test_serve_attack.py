"""`mnistkit serve` attacked as a hostile or careless client would, checked against RFC 9110/9112.

Real sockets on 127.0.0.1 against an in-process server; every answer is compared with bytes read
from disk here. Each test is bounded (a few sockets, socket timeouts of seconds).
"""

from __future__ import annotations

import email.utils
import os
import socket
import subprocess
import time

import pytest
from helpers import cli_argv

from mnistkit.serve import IGNORE_RANGE, MirrorServer, _parse_range

BLOB = bytes(range(256)) * 40  # 10,240 bytes whose every slice is recognisable


@pytest.fixture
def mirror(home):
    """A running server over ``home`` holding tiny/f.bin, a hidden cache and a partial download."""
    (home / "tiny").mkdir(parents=True, exist_ok=True)
    (home / "tiny" / "f.bin").write_bytes(BLOB)
    (home / ".cache").mkdir(exist_ok=True)
    (home / ".cache" / "secret.npy").write_bytes(b"CACHE-SECRET")
    (home / "tiny" / "g.bin.part").write_bytes(b"PART-SECRET")
    with MirrorServer(home, header_timeout=5, stall_timeout=5, log=lambda line: None).start() as server:
        yield server


def _exchange(server: MirrorServer, raw: bytes) -> bytes:
    """Send ``raw``, half-close, and read until the server closes."""
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
        return got


def _get(server: MirrorServer, target: str = "/tiny/f.bin", *headers: str, method: str = "GET"):
    """(status, {lower-case name: value}, body) of one request."""
    head = "".join(h + "\r\n" for h in headers)
    raw = _exchange(server, f"{method} {target} HTTP/1.1\r\nHost: x\r\n{head}Connection: close\r\n\r\n".encode())
    top, _, body = raw.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in fields.items()}, body


@pytest.mark.parametrize(
    "value",
    [
        "items=0-1",  # a unit the server does not know: MUST be ignored (RFC 9110 14.2)
        "bytes=0-1,5-6",  # several satisfiable ranges: may be ignored, never "not satisfiable"
        "bytes=5-1",  # invalid (last before first): ignored or rejected, not 416
        "bytes=abc",
    ],
)
def test_a_range_the_server_does_not_serve_gets_the_whole_file_not_416(mirror, value):
    status, fields, body = _get(mirror, "/tiny/f.bin", f"Range: {value}")
    assert (status, body) == (200, BLOB), value
    assert "content-range" not in fields


@pytest.mark.parametrize(
    ("value", "span"),
    [
        ("Bytes=10-19", (10, 19)),  # range units are case-insensitive (RFC 9110 14.1)
        ("bytes=10-19 , ", (10, 19)),  # OWS and empty list elements are allowed
        ("bytes=10-19, 999999-", (10, 19)),  # the one satisfiable range of two
        ("bytes=-100", (len(BLOB) - 100, len(BLOB) - 1)),
        ("bytes=-999999", (0, len(BLOB) - 1)),
        ("bytes=10-999999999999999999999999", (10, len(BLOB) - 1)),
    ],
)
def test_single_ranges_are_served_exactly(mirror, value, span):
    status, fields, body = _get(mirror, "/tiny/f.bin", f"Range: {value}")
    start, end = span
    assert (status, body) == (206, BLOB[start : end + 1]), value
    assert fields["content-range"] == f"bytes {start}-{end}/{len(BLOB)}"
    assert int(fields["content-length"]) == end - start + 1


def test_unsatisfiable_ranges_are_416_with_the_size(mirror):
    for value in ("bytes=10240-", "bytes=-0", "bytes=999999-, 20000-"):
        status, fields, body = _get(mirror, "/tiny/f.bin", f"Range: {value}")
        assert (status, body) == (416, b""), value
        assert fields["content-range"] == f"bytes */{len(BLOB)}"


def test_a_range_sent_twice_is_not_half_obeyed(mirror):
    """Two Range fields are one list "bytes=0-1, bytes=5-6", which is invalid: the whole file, not bytes 5-6."""
    status, _, body = _get(mirror, "/tiny/f.bin", "Range: bytes=0-1", "Range: bytes=5-6")
    assert (status, body) == (200, BLOB)


def test_parse_range_on_non_ascii_digits():
    assert _parse_range("bytes=\u0661-\u0662", 100) == IGNORE_RANGE  # Arabic-Indic digits are not DIGIT


def test_every_answer_carries_a_date(mirror):
    """RFC 9110 6.6.1: an origin server with a clock MUST send Date in 2xx, 3xx and 4xx answers."""
    for target, headers in (
        ("/tiny/nope.bin", ()),
        ("/.cache/secret.npy", ()),
        ("/tiny/f.bin", ("Range: bytes=99999-",)),
    ):
        status, fields, _ = _get(mirror, target, *headers)
        assert status in (403, 404, 416)
        assert email.utils.parsedate_to_datetime(fields["date"]).year >= 2024, (target, fields)


def test_an_absolute_form_target_is_served_by_its_path(mirror):
    """RFC 9112 3.2.2: a server MUST accept the absolute-form; its path still obeys the folder rules."""
    status, _, body = _get(mirror, "http://mirror.example/tiny/f.bin")
    assert (status, body) == (200, BLOB)
    for target in (
        "http://mirror.example/.cache/secret.npy",
        "http://mirror.example/tiny/../.cache/secret.npy",
        "http://mirror.example//.cache/secret.npy",
        "http://mirror.example/tiny/g.bin.part",
    ):
        status, _, body = _get(mirror, target)
        assert status == 403 and b"SECRET" not in body, target


def test_hidden_or_partial_files_are_refused_through_a_link_too(mirror, home):
    (home / "tiny" / "cache.gz").symlink_to(home / ".cache" / "secret.npy")
    (home / "tiny" / "part.gz").symlink_to(home / "tiny" / "g.bin.part")
    for target in ("/tiny/cache.gz", "/tiny/part.gz", "/tiny/g.bin.PART"):
        status, _, body = _get(mirror, target)
        assert status == 403 and b"SECRET" not in body, target


def test_a_client_waiting_for_100_continue_is_answered_at_once(mirror):
    """RFC 9110 10.1.1: the server sends 100 (or a final answer) rather than waiting out the stall timeout."""
    with socket.create_connection(("127.0.0.1", mirror.server_address[1]), timeout=3) as sock:
        sock.sendall(
            b"GET /tiny/f.bin HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n"
            b"Connection: close\r\n\r\n"
        )
        assert sock.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")  # within 3 s, not the 5 s stall
        sock.sendall(b"abc")
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    assert got.split(b"\r\n", 1)[0] == b"HTTP/1.1 200 OK" and got.endswith(BLOB)


def test_conditional_requests(mirror, home):
    """RFC 9110 13.2.2 order: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since."""
    _, fields, _ = _get(mirror)
    etag, modified = fields["etag"], fields["last-modified"]
    assert _get(mirror, "/tiny/f.bin", f"If-None-Match: {etag}")[0] == 304
    assert _get(mirror, "/tiny/f.bin", f"If-None-Match: W/{etag}")[0] == 304  # weak comparison
    assert _get(mirror, "/tiny/f.bin", 'If-None-Match: "other", *')[0] == 304
    status, fields, body = _get(mirror, "/tiny/f.bin", f"If-None-Match: {etag}", method="HEAD")
    assert (status, body, fields["etag"]) == (304, b"", etag)
    assert _get(mirror, "/tiny/f.bin", 'If-None-Match: "other"')[2] == BLOB
    assert _get(mirror, "/tiny/f.bin", f"If-Modified-Since: {modified}")[0] == 304
    # If-None-Match wins over If-Modified-Since
    assert _get(mirror, "/tiny/f.bin", 'If-None-Match: "other"', f"If-Modified-Since: {modified}")[0] == 200
    assert _get(mirror, "/tiny/f.bin", "If-Modified-Since: not a date")[0] == 200
    asctime = time.asctime(time.gmtime(os.stat(home / "tiny" / "f.bin").st_mtime))  # the third HTTP-date format
    assert _get(mirror, "/tiny/f.bin", f"If-Modified-Since: {asctime}")[0] == 304
    assert _get(mirror, "/tiny/f.bin", f"If-Match: {etag}")[2] == BLOB
    assert _get(mirror, "/tiny/f.bin", f"If-Match: W/{etag}")[0] == 412  # strong comparison
    assert _get(mirror, "/tiny/f.bin", 'If-Match: "other"')[0] == 412
    old = email.utils.formatdate(time.time() - 86400 * 400, usegmt=True)
    os.utime(home / "tiny" / "f.bin", (time.time(), time.time() - 3600))
    assert _get(mirror, "/tiny/f.bin", f"If-Unmodified-Since: {old}")[0] == 412
    assert _get(mirror, "/tiny/f.bin", f"If-Modified-Since: {old}")[2] == BLOB
    # a resume against the old ETag after the file changed: the whole new file, not a spliced range
    status, _, body = _get(mirror, "/tiny/f.bin", "Range: bytes=100-", f"If-Range: {etag}")
    assert (status, body) == (200, BLOB)


def test_an_empty_host_is_refused_not_taken_as_every_interface(home):
    """``--host "$HOST"`` with HOST unset must not silently listen on 0.0.0.0."""
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        cli_argv("--data-home", str(home), "serve", "--host", "", "--port", "0"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert "host" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "serving on" not in proc.stdout


def test_a_complete_head_over_the_limit_is_431_even_in_one_write(mirror):
    """The documented limit is 16 KiB; a 20 KB head sent in one go was served."""
    raw = b"GET /tiny/f.bin HTTP/1.1\r\nHost: x\r\n" + b"a:b\r\n" * 4000 + b"Connection: close\r\n\r\n"
    assert len(raw) > 16 * 1024
    assert _exchange(mirror, raw).startswith(b"HTTP/1.1 431 ")
    just_under = b"GET /tiny/f.bin HTTP/1.1\r\nHost: x\r\n" + b"a:b\r\n" * 3000 + b"Connection: close\r\n\r\n"
    assert len(just_under) < 16 * 1024 and _exchange(mirror, just_under).endswith(BLOB)


def test_an_answer_after_which_the_server_closes_says_so(mirror):
    """After an Upgrade request the server closes the connection: its answer must carry "Connection: close"
    (RFC 9112 9.6), or a client pipelining its next request waits for an answer that never comes."""
    got = _exchange(
        mirror,
        b"GET /tiny/f.bin HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
        b"GET /tiny/f.bin HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    head = got.split(b"\r\n\r\n", 1)[0]
    assert head.startswith(b"HTTP/1.1 200 ") and b"\r\nConnection: close" in head
    assert got.count(BLOB) == 1


def test_empty_lines_before_a_request_line_are_ignored(mirror):
    """RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request-line (some clients
    send a CRLF after a request); they were answered 400."""
    got = _exchange(
        mirror,
        b"\r\n\r\nGET /tiny/f.bin HTTP/1.1\r\nHost: x\r\n\r\n"
        b"\r\nGET /tiny/f.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert got.startswith(b"HTTP/1.1 200 ") and got.count(BLOB) == 2 and b" 400 " not in got
    with socket.create_connection(("127.0.0.1", mirror.server_address[1]), timeout=10) as sock:
        sock.sendall(b"\r\n")  # the empty line alone, in a read of its own
        sock.sendall(b"GET /tiny/f.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(BLOB)
