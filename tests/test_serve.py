"""`mnistkit serve`: a real server process, a real client process, and refusals."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys

import pytest
from helpers import cli_argv, run_cli

from mnistkit.serve import IGNORE_RANGE, _parse_range
from platforms import posix_only


@pytest.fixture
def served(synth, home, tmp_path):
    """A `mnistkit serve` process on a free port over a data folder holding the tiny dataset."""
    synth.write(home)
    (tmp_path / "secret.txt").write_text("SECRET-CONTENT")
    os.symlink(tmp_path / "secret.txt", home / "tiny" / "link.gz")  # a symlink pointing out
    proc = subprocess.Popen(
        [sys.executable, "-m", "mnistkit", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()  # readiness: the server says where it listens
    assert line.startswith("serving on http://127.0.0.1:"), line + proc.stderr.read()
    url = line.split()[2]
    yield proc, url
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _get(url: str, path: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path, headers=headers or {})  # http.client sends the path exactly as given
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body, dict(resp.headers)


def _stop(proc, sig) -> str:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


@posix_only("SIGTERM to another process (Popen.send_signal terminates it)")
def test_a_second_machine_downloads_through_the_server(served, synth, tmp_path):
    proc, url = served
    other = tmp_path / "other-machine"
    env = {**os.environ, "MNISTKIT_HOME": str(other), "MNISTKIT_MIRROR": url}
    client = subprocess.run(cli_argv("download", "tiny"), capture_output=True, text=True, env=env)
    assert client.returncode == 0, client.stderr
    for name, data in synth.gz.items():
        assert (other / "tiny" / name).read_bytes() == data
    log = _stop(proc, signal.SIGTERM)
    for name in synth.gz:
        assert f'"GET /tiny/{name} HTTP/1.1" 200' in log
    assert "server stopped" in log


@pytest.mark.parametrize(
    "path",
    [
        "/tiny/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/tiny/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/tiny/..%2f..%2fsecret.txt",
        "/tiny/.cache/t10k-labels-idx1-ubyte.npy",
        "/tiny/.locks",
        "/tiny/link.gz",
        "/tiny/%ff.gz",
        "http://example.org/../secret.txt",  # absolute-form is accepted, its path obeys the same rules
    ],
)
def test_refuses_anything_outside_the_layout(served, path):
    _proc, url = served
    status, body, _ = _get(url, path)
    assert status == 403, (path, status)
    assert b"SECRET" not in body


def test_a_doubled_slash_is_taken_as_one(served):
    # http.server itself collapses a leading "//" (no open redirect): "//x/y" is looked up as "/x/y".
    _proc, url = served
    status, _body, _ = _get(url, "//tiny/t10k-labels-idx1-ubyte.gz")
    assert status == 200
    assert _get(url, "//secret.txt")[0] == 403


@posix_only("SIGINT to another process")
def test_ranges_and_missing_files(served, synth):
    proc, url = served
    name = "t10k-labels-idx1-ubyte.gz"
    data = synth.gz[name]
    status, body, headers = _get(url, f"/tiny/{name}", {"Range": "bytes=10-"})
    assert (status, body) == (206, data[10:])
    assert headers["Content-Range"] == f"bytes 10-{len(data) - 1}/{len(data)}"
    status, body, _ = _get(url, f"/tiny/{name}", {"Range": "bytes=10-", "If-Range": '"stale"'})
    assert (status, body) == (200, data)  # the file changed since: the whole of it
    assert _get(url, f"/tiny/{name}", {"Range": f"bytes={len(data)}-"})[0] == 416
    assert _get(url, "/tiny/nope.gz")[0] == 404
    log = _stop(proc, signal.SIGINT)  # Ctrl-C stops it cleanly too
    assert f'"GET /tiny/{name} HTTP/1.1" 206' in log and '"GET /tiny/nope.gz HTTP/1.1" 404' in log


def test_parse_range():
    assert _parse_range("bytes=0-9", 100) == (0, 9)
    assert _parse_range("bytes=90-200", 100) == (90, 99)
    assert _parse_range("bytes=-10", 100) == (90, 99)
    assert _parse_range("bytes=100-", 100) is None
    assert _parse_range("bytes=5-1", 100) == IGNORE_RANGE  # invalid: ignored (RFC 9110 14.2), not 416
    assert _parse_range("bytes=0-1,5-6", 100) == IGNORE_RANGE  # several ranges: the whole file, not 416
    assert _parse_range("bytes=100-,200-", 100) is None


def test_serving_a_missing_folder_is_an_error(home):
    proc = run_cli("--data-home", str(home / "nope"), "serve", "--port", "0")
    assert proc.returncode == 1 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
