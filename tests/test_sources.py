"""Downloading against real HTTP servers on 127.0.0.1, with faults injected by the server."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import Route, make_synthetic

from mnistkit import DownloadError, MissingFilesError, load, load_mnist, registry
from mnistkit.idx import encode_idx
from mnistkit.settings import parse_mirrors as parse_sources
from mnistkit.sources import Downloader, RetryPolicy
from platforms import posix_only

IMAGES = "train-images-idx3-ubyte.gz"
LABELS = "train-labels-idx1-ubyte.gz"


def fast_downloader(sources=(), attempts=3, read_timeout=5.0, **kw):
    """A downloader whose backoff is recorded instead of slept (the delays are asserted on)."""
    waits: list[float] = []
    retry = RetryPolicy(attempts=attempts, base_delay=0.5, max_delay=4, connect_timeout=5, read_timeout=read_timeout)
    dl = Downloader(sources, retry=retry, sleep=waits.append, rng=lambda: 1.0, progress=False, **kw)
    dl.waits = waits
    return dl


def with_mirrors(monkeypatch, synth, *bases):
    """Register ``synth`` with these built-in mirror bases (each ends with '/')."""
    import dataclasses

    ds = dataclasses.replace(synth.dataset, mirrors=tuple(bases))
    monkeypatch.setitem(registry.DATASETS, ds.name, ds)
    return ds


def publish(server, synth, base, names=None, **route_kw):
    for name in names or synth.gz:
        server.routes[f"{base}{name}"] = Route(body=synth.gz[name], **route_kw)


def fetch(dl, ds, name, folder):
    folder.mkdir(parents=True, exist_ok=True)
    return dl(ds, ds.file(name), folder)


def assert_only_final_files(folder: Path):
    leftovers = [p.name for p in folder.iterdir() if p.name.endswith((".part", ".json", ".tmp"))]
    assert not leftovers, leftovers


def test_good_mirror_loads_and_sends_user_agent(synth, home, server, monkeypatch):
    ds = with_mirrors(monkeypatch, synth, server.url + "/a/")
    publish(server, synth, "/a/")
    (x, _t), (_xt, tt) = load_mnist(normalize=False, dataset=ds.name)
    np.testing.assert_array_equal(x, synth.arrays[IMAGES].reshape(-1, 784))
    np.testing.assert_array_equal(tt, synth.arrays["t10k-labels-idx1-ubyte.gz"])
    assert all(server.gets(f"/a/{n}") == 1 for n in synth.gz)
    agent = server.requests[0][2]["User-Agent"]
    assert agent.startswith("mnistkit/")
    assert (home / ds.name / IMAGES).read_bytes() == synth.gz[IMAGES]
    assert_only_final_files(home / ds.name)
    # warm: no more requests
    load_mnist(dataset=ds.name)
    assert len(server.requests) == 4


@pytest.mark.parametrize("status", [403, 404, 410])
def test_client_error_moves_on_to_next_mirror_without_retrying(synth, home, server, monkeypatch, status):
    ds = with_mirrors(monkeypatch, synth, server.url + "/bad/", server.url + "/good/")
    publish(server, synth, "/bad/", statuses=[status] * 10)
    publish(server, synth, "/good/")
    dl = fast_downloader()
    path = fetch(dl, ds, LABELS, home / ds.name)
    assert path.read_bytes() == synth.gz[LABELS]
    assert server.gets(f"/bad/{LABELS}") == 1 and dl.waits == []


def test_503_twice_then_success_is_retried_with_backoff(synth, home, server, monkeypatch):
    ds = with_mirrors(monkeypatch, synth, server.url + "/m/")
    publish(server, synth, "/m/", names=[LABELS], statuses=[503, 503])
    dl = fast_downloader()
    path = fetch(dl, ds, LABELS, home / ds.name)
    assert path.read_bytes() == synth.gz[LABELS]
    assert server.gets(f"/m/{LABELS}") == 3
    assert dl.waits == [0.5, 1.0]  # exponential backoff (jitter pinned to 1.0 by the injected rng)


def test_backoff_has_jitter_and_a_cap():
    policy = RetryPolicy(base_delay=1, max_delay=5)
    assert policy.delay(0, lambda: 0.0) == 0.5 and policy.delay(0, lambda: 1.0) == 1.0
    assert policy.delay(10, lambda: 1.0) == 5


def test_429_and_persistent_5xx_give_up_then_next_mirror(synth, home, server, monkeypatch):
    ds = with_mirrors(monkeypatch, synth, server.url + "/busy/", server.url + "/good/")
    publish(server, synth, "/busy/", names=[LABELS], statuses=[429] * 10)
    publish(server, synth, "/good/", names=[LABELS])
    dl = fast_downloader(attempts=3)
    fetch(dl, ds, LABELS, home / ds.name)
    assert server.gets(f"/busy/{LABELS}") == 3 and server.gets(f"/good/{LABELS}") == 1


@pytest.mark.parametrize("ctype", ["text/html; charset=utf-8", "application/octet-stream"])
def test_html_page_served_as_data_is_refused(synth, home, server, monkeypatch, ctype):
    ds = with_mirrors(monkeypatch, synth, server.url + "/html/", server.url + "/good/")
    page = b"<!DOCTYPE html><html><body>Please log in</body></html>" * 20
    server.routes[f"/html/{LABELS}"] = Route(body=page, content_type=ctype)
    publish(server, synth, "/good/", names=[LABELS])
    dl = fast_downloader()
    fetch(dl, ds, LABELS, home / ds.name)
    assert (home / ds.name / LABELS).read_bytes() == synth.gz[LABELS]
    assert_only_final_files(home / ds.name)


def test_dropped_connection_is_resumed_with_range(synth, home, server, monkeypatch):
    ds = with_mirrors(monkeypatch, synth, server.url + "/m/")
    body = gzip.compress(synth.raw[IMAGES], compresslevel=0)  # big enough to cut in the middle
    spec = ds.file(IMAGES)
    import dataclasses

    spec = dataclasses.replace(spec, size=len(body), sha256=None)
    server.routes[f"/m/{IMAGES}"] = Route(body=body, drop_after=len(body) // 2)
    dl = fast_downloader()
    (home / ds.name).mkdir(parents=True)
    path = dl(ds, spec, home / ds.name)
    assert path.read_bytes() == body
    ranges = [h.get("Range") for m, p, h in server.requests if p == f"/m/{IMAGES}"]
    assert ranges == [None, f"bytes={len(body) // 2}-"]
    assert server.requests[1][2].get("If-Range")  # guarded against a changed file
    assert_only_final_files(home / ds.name)


def test_server_ignoring_range_starts_over(synth, home, server, monkeypatch):
    ds = with_mirrors(monkeypatch, synth, server.url + "/m/")
    body = synth.gz[IMAGES]
    server.routes[f"/m/{IMAGES}"] = Route(body=body, drop_after=len(body) // 3, ignore_range=True)
    dl = fast_downloader()
    path = fetch(dl, ds, IMAGES, home / ds.name)
    assert path.read_bytes() == body
    assert server.gets(f"/m/{IMAGES}") == 2


def test_slow_server_times_out_and_next_mirror_is_used(synth, home, server, monkeypatch):
    ds = with_mirrors(monkeypatch, synth, server.url + "/slow/", server.url + "/good/")
    server.routes[f"/slow/{LABELS}"] = Route(body=synth.gz[LABELS], stall=True)
    publish(server, synth, "/good/", names=[LABELS])
    dl = fast_downloader(attempts=1, read_timeout=0.3)
    fetch(dl, ds, LABELS, home / ds.name)
    assert server.gets(f"/good/{LABELS}") == 1


def test_wrong_bytes_are_refused_and_nothing_kept(synth, home, server, monkeypatch):
    ds = with_mirrors(monkeypatch, synth, server.url + "/evil/", server.url + "/good/")
    wrong = synth.arrays[LABELS].copy()
    wrong[0] = (wrong[0] + 1) % 10
    server.routes[f"/evil/{LABELS}"] = Route(body=gzip.compress(encode_idx(wrong)))
    publish(server, synth, "/good/", names=[LABELS])
    dl = fast_downloader()
    fetch(dl, ds, LABELS, home / ds.name)
    assert (home / ds.name / LABELS).read_bytes() == synth.gz[LABELS]
    assert_only_final_files(home / ds.name)


def test_every_source_failing_gives_one_summary_error(synth, home, server, monkeypatch, tmp_path):
    ds = with_mirrors(monkeypatch, synth, server.url + "/forbidden/", server.url + "/slow/", server.url + "/evil/")
    server.routes[f"/forbidden/{LABELS}"] = Route(statuses=[403])
    server.routes[f"/slow/{LABELS}"] = Route(body=synth.gz[LABELS], stall=True)
    server.routes[f"/evil/{LABELS}"] = Route(body=gzip.compress(encode_idx(np.zeros(60, np.uint8))))
    dl = fast_downloader([str(tmp_path / "empty-folder")], attempts=2, read_timeout=0.3)
    with pytest.raises(DownloadError) as info:
        fetch(dl, ds, LABELS, home / ds.name)
    text = str(info.value)
    assert len(info.value.attempts) == 4
    assert "empty-folder" in text and "not found" in text
    assert "HTTP 403" in text
    assert "timed out" in text and "gave up after 2 tries" in text
    assert "checksum mismatch" in text
    assert "MNISTKIT_MIRROR" in text and str(home / ds.name) in text
    assert isinstance(info.value, OSError)
    assert not (home / ds.name / LABELS).exists()
    assert_only_final_files(home / ds.name)


@pytest.mark.parametrize("form", ["folder", "file-url"])
def test_folder_and_file_url_sources(synth, home, tmp_path, monkeypatch, form):
    shared = tmp_path / "shared data"  # a space in the path, as on real shared drives
    synth.write(shared, compress=False)  # a mirror folder may hold uncompressed copies
    base = str(shared) if form == "folder" else shared.as_uri()
    monkeypatch.setenv("MNISTKIT_MIRROR", base)
    monkeypatch.setenv("MNISTKIT_OFFLINE", "1")  # folders are not the network: still used offline
    (_x, t), _ = load_mnist(normalize=False, dataset=synth.dataset.name)
    np.testing.assert_array_equal(t, synth.arrays[LABELS])


def test_mirror_env_is_tried_before_builtin_mirrors(synth, home, server, monkeypatch):
    ds = with_mirrors(monkeypatch, synth, server.url + "/builtin/")
    publish(server, synth, "/builtin/")
    publish(server, synth, f"/user/{ds.name}/")
    monkeypatch.setenv("MNISTKIT_MIRROR", f" {server.url}/user , ")
    load(ds.name, "test")
    assert server.gets(f"/user/{ds.name}/t10k-images-idx3-ubyte.gz") == 1
    assert server.gets("/builtin/t10k-images-idx3-ubyte.gz") == 0
    assert parse_sources("a, b,,c") == ["a", "b", "c"] and parse_sources(["x"]) == ["x"]


def test_offline_mode_never_touches_the_network(synth, home, server, monkeypatch):
    ds = with_mirrors(monkeypatch, synth, server.url + "/m/")
    publish(server, synth, "/m/")
    monkeypatch.setenv("MNISTKIT_OFFLINE", "1")
    with pytest.raises(MissingFilesError) as info:
        load_mnist(dataset=ds.name)
    text = str(info.value)
    assert "4 file(s) missing" in text and "offline" in text
    assert str(home / ds.name) in text and f"{server.url}/m/{IMAGES}" in text
    assert server.requests == []
    # the argument overrides the environment
    load_mnist(dataset=ds.name, offline=False)
    assert len(server.requests) == 4


CHILD = textwrap.dedent(
    """
    import hashlib, sys, dataclasses
    sys.path.insert(0, {tests!r})
    from helpers import make_synthetic
    from mnistkit import registry, load_mnist
    ds = dataclasses.replace(make_synthetic().dataset, mirrors=({base!r},))
    registry.DATASETS[ds.name] = ds
    print("READY", flush=True)
    sys.stdin.readline()  # all children start loading at the same moment
    (x, t), (xt, tt) = load_mnist(normalize=False, dataset=ds.name, progress=False)
    h = hashlib.sha256()
    for a in (x, t, xt, tt):
        h.update(a.tobytes())
    print(h.hexdigest(), flush=True)
    """
)


def spawn(code):
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )


def test_eight_processes_cause_exactly_one_download_per_file(synth, home, server):
    publish(server, synth, "/m/")
    code = CHILD.format(tests=str(Path(__file__).parent), base=server.url + "/m/")
    children = [spawn(code) for _ in range(8)]
    for child in children:
        assert child.stdout.readline().strip() == b"READY"
    for child in children:
        child.stdin.write(b"go\n")
        child.stdin.flush()
    digests = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()
        digests.append(out.strip())
    want = hashlib.sha256()
    for name in (IMAGES, LABELS, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        want.update(synth.arrays[name].tobytes())
    assert set(digests) == {want.hexdigest().encode()}
    for name in synth.gz:
        assert server.gets(f"/m/{name}") == 1, name


@posix_only("SIGKILL")
def test_process_killed_mid_transfer_then_fresh_call_resumes(synth, home, server, monkeypatch):
    body = gzip.compress(synth.raw[IMAGES], compresslevel=0)
    import dataclasses

    spec = dataclasses.replace(synth.dataset.file(IMAGES), size=len(body), sha256=None)
    files = tuple(spec if f.name == IMAGES else f for f in synth.dataset.files)
    ds = dataclasses.replace(synth.dataset, files=files, mirrors=(server.url + "/m/",))
    monkeypatch.setitem(registry.DATASETS, ds.name, ds)
    publish(server, synth, "/m/", names=[n for n in synth.gz if n != IMAGES])
    half = len(body) // 2
    server.routes[f"/m/{IMAGES}"] = Route(body=body, stall_after=half)
    code = CHILD.format(tests=str(Path(__file__).parent), base=server.url + "/m/").replace(
        "ds = dataclasses.replace(make_synthetic().dataset,",
        "import gzip\nsynth = make_synthetic()\n"
        f"spec = dataclasses.replace(synth.dataset.file({IMAGES!r}), size={len(body)}, sha256=None)\n"
        "ds = dataclasses.replace(synth.dataset, files=tuple(spec if f.name == spec.name else f "
        "for f in synth.dataset.files),",
    )
    child = spawn(code)
    assert child.stdout.readline().strip() == b"READY"
    child.stdin.write(b"go\n")
    child.stdin.flush()
    assert server.stalled.wait(60)  # the server has sent half the body: the child is mid-transfer
    part = home / ds.name / (IMAGES + ".part")
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size == half) and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the real condition: the child has written what it received
    assert part.stat().st_size == half
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not (home / ds.name / IMAGES).exists()  # nothing unverified under the final name
    server.routes[f"/m/{IMAGES}"].stall_after = None
    (x, _), _ = load_mnist(normalize=False, dataset=ds.name)
    np.testing.assert_array_equal(x, synth.arrays[IMAGES].reshape(-1, 784))
    ranges = [h.get("Range") for m, p, h in server.requests if p == f"/m/{IMAGES}"]
    assert ranges[0] is None and len(ranges) == 2
    assert ranges[1] == f"bytes={half}-"  # what the killed process had received was kept and resumed
    assert not part.exists()
    assert_only_final_files(home / ds.name)


def test_redirects_are_followed_within_a_limit(synth, home, server, monkeypatch):
    ds = with_mirrors(monkeypatch, synth, server.url + "/old/", server.url + "/loop/", server.url + "/good/")
    server.routes[f"/old/{LABELS}"] = Route(redirect=f"/new/{LABELS}")
    server.routes[f"/new/{LABELS}"] = Route(body=synth.gz[LABELS])
    dl = fast_downloader()
    fetch(dl, ds, LABELS, home / ds.name)
    assert server.gets(f"/new/{LABELS}") == 1
    # a redirect loop is given up after a few hops, and the next mirror is used
    (home / ds.name / LABELS).unlink()
    server.routes[f"/old/{LABELS}"] = Route(redirect=f"{server.url}/loop/{LABELS}")
    server.routes[f"/loop/{LABELS}"] = Route(redirect=f"/old/{LABELS}")
    publish(server, synth, "/good/", names=[LABELS])
    fetch(dl, ds, LABELS, home / ds.name)
    assert server.gets(f"/good/{LABELS}") == 1
    assert 5 <= server.gets(f"/loop/{LABELS}") <= 8


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test certificate")
def test_https_to_http_redirect_is_refused(synth, home, server, monkeypatch, tmp_path):
    """A real TLS server on 127.0.0.1 redirects to plain http: the downgrade is refused."""
    import ssl

    from helpers import Server

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with Server() as tls:
        tls.httpd.socket = context.wrap_socket(tls.httpd.socket, server_side=True)
        https_base = tls.url.replace("http://", "https://")
        tls.routes[f"/m/{LABELS}"] = Route(redirect=f"{server.url}/plain/{LABELS}")
        publish(server, synth, "/plain/", names=[LABELS])
        ds = with_mirrors(monkeypatch, synth, https_base + "/m/")
        # trust our test certificate, and only it, the way a user points at a custom CA
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        with pytest.raises(DownloadError, match="refused a redirect from https to http://"):
            fetch(fast_downloader(), ds, LABELS, home / ds.name)
        assert tls.gets(f"/m/{LABELS}") == 1 and server.gets(f"/plain/{LABELS}") == 0
        # an https mirror whose certificate is not trusted is a TLS error, not a silent download
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        with pytest.raises(DownloadError, match="TLS error"):
            fetch(fast_downloader(), ds, LABELS, home / ds.name)


def test_synthetic_helper_is_deterministic():
    assert make_synthetic().gz == make_synthetic().gz


def test_progress_bar_only_when_asked_or_on_a_terminal(synth, home, server, monkeypatch, capsys):
    ds = with_mirrors(monkeypatch, synth, server.url + "/m/")
    publish(server, synth, "/m/")
    load(ds.name, "test")  # stderr is not a terminal here: silence
    assert capsys.readouterr().err == ""
    load(ds.name, "train", progress=True)
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte.gz" in err and "100%" in err


def test_complete_part_file_left_by_a_killed_verifier_is_not_downloaded_again(synth, home, server, monkeypatch):
    ds = with_mirrors(monkeypatch, synth, server.url + "/m/")
    publish(server, synth, "/m/", names=[LABELS])
    folder = home / ds.name
    folder.mkdir(parents=True)
    url = f"{server.url}/m/{LABELS}"
    (folder / (LABELS + ".part")).write_bytes(synth.gz[LABELS])
    (folder / (LABELS + ".part.json")).write_text(json.dumps({"url": url, "etag": None, "last_modified": None}))
    fetch(fast_downloader(), ds, LABELS, folder)
    assert [h.get("Range") for _, p, h in server.requests] == [f"bytes={len(synth.gz[LABELS])}-"]
    assert (folder / LABELS).read_bytes() == synth.gz[LABELS]
    assert_only_final_files(folder)


def test_unresolvable_host_is_not_retried(synth, home, server, monkeypatch):
    """A name that does not resolve moves on at once: no backoff spent on it.

    The DNS failure is injected at the resolver for this one reserved name (so no query leaves the
    machine); the HTTP client stack above it runs for real.
    """
    import socket

    real_getaddrinfo = socket.getaddrinfo
    refused = []

    def getaddrinfo(host, *args, **kwargs):
        if str(host).endswith(".invalid"):
            refused.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    ds = with_mirrors(monkeypatch, synth, "http://mirror.mnistkit-test.invalid/m/", server.url + "/good/")
    publish(server, synth, "/good/", names=[LABELS])
    dl = fast_downloader(attempts=4)
    fetch(dl, ds, LABELS, home / ds.name)
    assert dl.waits == []  # no backoff spent on it
    assert refused == ["mirror.mnistkit-test.invalid"]  # looked up once, through the injected resolver
    assert server.gets(f"/good/{LABELS}") == 1
    with pytest.raises(DownloadError, match=r"cannot resolve host mirror\.mnistkit-test\.invalid"):
        fetch(dl, dataclasses.replace(ds, mirrors=ds.mirrors[:1]), IMAGES, home / ds.name)


def test_trickling_server_is_dropped_keeping_what_arrived(synth, home, server, monkeypatch):
    """A byte now and then never trips the read timeout; the minimum average rate does."""
    ds = with_mirrors(monkeypatch, synth, server.url + "/slow/", server.url + "/good/")
    server.routes[f"/slow/{IMAGES}"] = Route(body=synth.gz[IMAGES], trickle=0.02)
    publish(server, synth, "/good/", names=[IMAGES])
    dl = fast_downloader(attempts=2, read_timeout=0.25)
    dl.retry.min_rate = 4096
    with pytest.raises(DownloadError, match="too slow"):
        fetch(dl, dataclasses.replace(ds, mirrors=ds.mirrors[:1]), IMAGES, home / ds.name)
    ranges = [h.get("Range") for _, p, h in server.requests if p == f"/slow/{IMAGES}"]
    assert ranges[0] is None and ranges[1].startswith("bytes=")  # the second try resumed, nothing was thrown away
    fetch(dl, ds, IMAGES, home / ds.name)  # and with a good mirror behind it, the file arrives
    assert (home / ds.name / IMAGES).read_bytes() == synth.gz[IMAGES]


# --- issue 20: an adversarial pass over downloads ---------------------------------------------------


def test_headers_trickled_byte_by_byte_hit_an_overall_deadline(synth, home, server, monkeypatch):
    """A status line and headers sent a byte at a time never trip the read timeout; the deadline does."""
    ds = with_mirrors(monkeypatch, synth, server.url + "/slow/", server.url + "/good/")
    server.routes[f"/slow/{LABELS}"] = Route(header_trickle=0.02)  # 400 bytes: 8 s without a deadline
    publish(server, synth, "/good/", names=[LABELS])
    dl = fast_downloader(attempts=1, read_timeout=0.2)
    with pytest.raises(DownloadError, match=r"no complete response headers within 0\.4 s"):
        fetch(dl, dataclasses.replace(ds, mirrors=ds.mirrors[:1]), LABELS, home / ds.name)
    fetch(dl, ds, LABELS, home / ds.name)
    assert (home / ds.name / LABELS).read_bytes() == synth.gz[LABELS]


def test_malformed_redirect_location_moves_on_to_the_next_mirror(synth, home, server, monkeypatch):
    ds = with_mirrors(monkeypatch, synth, server.url + "/bad/", server.url + "/good/")
    server.routes[f"/bad/{LABELS}"] = Route(redirect="http://[::1/x")
    publish(server, synth, "/good/", names=[LABELS])
    dl = fast_downloader()
    fetch(dl, ds, LABELS, home / ds.name)
    assert server.gets(f"/good/{LABELS}") == 1 and dl.waits == []
    with pytest.raises(DownloadError, match=r"unusable answer \(Invalid IPv6 URL\)"):
        fetch(dl, dataclasses.replace(ds, mirrors=ds.mirrors[:1]), LABELS, home / "other")


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "-inf", "soon"])
def test_bad_timeout_values_are_ignored_with_a_warning(synth, home, server, monkeypatch, caplog, value):
    ds = with_mirrors(monkeypatch, synth, server.url + "/m/")
    publish(server, synth, "/m/")
    monkeypatch.setenv("MNISTKIT_TIMEOUT", value)
    with caplog.at_level("WARNING", logger="mnistkit"):
        _, (_xt, tt) = load_mnist(normalize=False, dataset=ds.name)
    np.testing.assert_array_equal(tt, synth.arrays["t10k-labels-idx1-ubyte.gz"])
    assert f"ignoring MNISTKIT_TIMEOUT={value!r}" in caplog.text


def test_folder_mirror_holding_a_padded_file_is_not_copied(synth, home, server, monkeypatch, tmp_path):
    """A labels file padded with 300 MB of zeros (sparse: no disk used) is refused before copying."""
    shared = tmp_path / "mirror"
    (shared / synth.dataset.name).mkdir(parents=True)
    padded = shared / synth.dataset.name / LABELS
    padded.write_bytes(synth.gz[LABELS])
    with open(padded, "r+b") as fh:
        fh.truncate(300 << 20)
    ds = with_mirrors(monkeypatch, synth, server.url + "/good/")
    publish(server, synth, "/good/", names=[LABELS])
    dl = fast_downloader([str(shared)])
    fetch(dl, ds, LABELS, home / ds.name)
    assert (home / ds.name / LABELS).read_bytes() == synth.gz[LABELS]
    assert server.gets(f"/good/{LABELS}") == 1
    with pytest.raises(DownloadError, match=r"is 314572800 bytes, more than any copy"):
        fetch(fast_downloader([str(shared)]), dataclasses.replace(ds, mirrors=()), LABELS, home / "other")


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_resume_after_a_cut_in_the_first_bytes(synth, home, server, monkeypatch, cut):
    ds = with_mirrors(monkeypatch, synth, server.url + "/m/")
    server.routes[f"/m/{IMAGES}"] = Route(body=synth.gz[IMAGES], drop_after=cut)
    path = fetch(fast_downloader(), ds, IMAGES, home / ds.name)
    assert path.read_bytes() == synth.gz[IMAGES]
    assert [h.get("Range") for _, p, h in server.requests] == [None, f"bytes={cut}-"]


def test_retries_start_again_after_progress(synth, home, server, monkeypatch):
    """A link that breaks every response after a few kB: each try advances, so the tries never run out."""
    ds = with_mirrors(monkeypatch, synth, server.url + "/m/")
    body = synth.gz[IMAGES]
    step = 8000
    server.routes[f"/m/{IMAGES}"] = Route(body=body, cut_every=step)
    dl = fast_downloader(attempts=2)
    path = fetch(dl, ds, IMAGES, home / ds.name)
    assert path.read_bytes() == body
    ranges = [h.get("Range") for _, p, h in server.requests]
    assert ranges == [None] + [f"bytes={k}-" for k in range(step, len(body), step)]
    assert len(ranges) > 2 * dl.retry.attempts  # more tries than one series allows
    assert set(dl.waits) == {0.5}  # every wait is the first of a series


def test_another_mirror_continues_the_part_file(synth, home, server, monkeypatch):
    ds = with_mirrors(monkeypatch, synth, server.url + "/a/", server.url + "/b/")
    body = synth.gz[IMAGES]
    half = len(body) // 2
    server.routes[f"/a/{IMAGES}"] = Route(body=body, drop_after=half, drop_times=9)
    publish(server, synth, "/b/", names=[IMAGES])
    path = fetch(fast_downloader(attempts=1), ds, IMAGES, home / ds.name)
    assert path.read_bytes() == body
    b_requests = [h for _, p, h in server.requests if p == f"/b/{IMAGES}"]
    assert [h.get("Range") for h in b_requests] == [f"bytes={half}-"]
    assert "If-Range" not in b_requests[0]  # another server's validator means nothing there


def test_206_to_a_request_without_range_is_not_appended_to_a_stale_part(synth, home, server, monkeypatch):
    ds = with_mirrors(monkeypatch, synth, server.url + "/m/")
    server.routes[f"/m/{LABELS}"] = Route(body=synth.gz[LABELS], always_206=True)
    folder = home / ds.name
    folder.mkdir(parents=True)
    (folder / (LABELS + ".part")).write_bytes(synth.gz[IMAGES][:40])  # left by a download from elsewhere
    (folder / (LABELS + ".part.json")).write_text(json.dumps({"url": "http://elsewhere.invalid/x"}))
    fetch(fast_downloader(), ds, LABELS, folder)
    assert (folder / LABELS).read_bytes() == synth.gz[LABELS]
    assert [h.get("Range") for _, p, h in server.requests] == [None]
    assert_only_final_files(folder)


def test_credentials_in_a_mirror_url_are_never_stored_or_shown(synth, home, server, monkeypatch, caplog):
    import base64

    secret = "s3cret-pa55"
    base = server.url.replace("http://", f"http://alice:{secret}@")
    ds = with_mirrors(monkeypatch, synth, base + "/m/", base + "/gone/")
    body = synth.gz[IMAGES]
    server.routes[f"/m/{IMAGES}"] = Route(body=body, drop_after=len(body) // 2)
    folder = home / ds.name
    with caplog.at_level("INFO", logger="mnistkit"), pytest.raises(DownloadError) as info:
        fetch(fast_downloader(attempts=1), ds, IMAGES, folder)
    record = (folder / (IMAGES + ".part.json")).read_text()
    assert (folder / (IMAGES + ".part")).stat().st_size == len(body) // 2  # kept for the resume
    assert secret not in record and "alice" not in record and "***@" in record
    assert secret not in str(info.value) and "***@" in str(info.value)
    assert secret not in caplog.text
    sent = server.requests[0][2]["Authorization"]
    assert base64.b64decode(sent.split()[1]).decode() == f"alice:{secret}"  # still used for the request
    path = fetch(fast_downloader(attempts=1), ds, IMAGES, folder)  # and the resume still works
    assert path.read_bytes() == body
    assert server.requests[-1][2].get("Range") == f"bytes={len(body) // 2}-"


def test_stale_part_holding_another_files_prefix_gets_one_fresh_try(synth, home, server, monkeypatch):
    ds = with_mirrors(monkeypatch, synth, server.url + "/m/")
    publish(server, synth, "/m/", names=[LABELS])
    folder = home / ds.name
    folder.mkdir(parents=True)
    url = f"{server.url}/m/{LABELS}"
    etag = f'"{hashlib.md5(synth.gz[LABELS]).hexdigest()}"'
    (folder / (LABELS + ".part")).write_bytes(synth.gz[IMAGES][:40])  # a prefix of another file
    (folder / (LABELS + ".part.json")).write_text(json.dumps({"url": url, "etag": etag, "last_modified": None}))
    dl = fast_downloader()
    fetch(dl, ds, LABELS, folder)
    assert (folder / LABELS).read_bytes() == synth.gz[LABELS]
    assert [h.get("Range") for _, p, h in server.requests] == ["bytes=40-", None]
    assert_only_final_files(folder)


def test_weak_etag_is_never_sent_as_if_range(synth, home, server, monkeypatch):
    ds = with_mirrors(monkeypatch, synth, server.url + "/m/")
    body = synth.gz[IMAGES]
    server.routes[f"/m/{IMAGES}"] = Route(body=body, drop_after=len(body) // 2, etag='W/"w1"')
    path = fetch(fast_downloader(), ds, IMAGES, home / ds.name)
    assert path.read_bytes() == body
    second = server.requests[1][2]
    assert second.get("Range") == f"bytes={len(body) // 2}-" and "If-Range" not in second
    assert server.gets(f"/m/{IMAGES}") == 2  # the compliant server resumed: no third, full transfer


def test_strong_validators_only():
    from mnistkit.transfer import strong_validator as _strong_validator

    assert _strong_validator({"etag": '"abc"'}) == '"abc"'
    assert _strong_validator({"etag": 'W/"abc"', "last-modified": "Tue, 01 Jan 2030 00:00:00 GMT"}) is None
    date = "Wed, 02 Jan 2030 00:00:00 GMT"
    assert _strong_validator({"last-modified": "Tue, 01 Jan 2030 00:00:00 GMT", "date": date}).startswith("Tue")
    assert _strong_validator({"last-modified": date, "date": date}) is None  # modified this second: weak
    assert _strong_validator({"last-modified": "garbage", "date": date}) is None
