"""The steps of one HTTP transfer (transfer.py), each alone: pure ones as tables, the request
against a real loopback server."""

from __future__ import annotations

import io
import json

import pytest
from helpers import Route, make_synthetic

from mnistkit.transfer import (
    ResumeRecord,
    SourceFailed,
    content_range,
    open_response,
    redact,
    resume_headers,
    size_cap,
    stream_body,
    triage,
)

SYNTH = make_synthetic()
SPEC = SYNTH.dataset.file("train-labels-idx1-ubyte.gz")  # size published: len of its .gz
BODY = SYNTH.gz[SPEC.name]
URL = "http://127.0.0.1:1/m/train-labels-idx1-ubyte.gz"


# --- step 1: resume_headers ----------------------------------------------------------------------

SAME = ResumeRecord(URL, '"v1"', len(BODY))
RESUME_TABLE = [
    ("nothing kept", None, 0, URL, {}, 0),
    ("kept, no record", None, 40, URL, {}, 0),
    ("same source, strong validator", SAME, 40, URL, {"Range": "bytes=40-", "If-Range": '"v1"'}, 40),
    ("same source, no validator", ResumeRecord(URL, None, None), 40, URL, {"Range": "bytes=40-"}, 40),
    ("other source, published size", SAME, 40, "http://other/m/x", {"Range": "bytes=40-"}, 40),
    ("other source, other size", ResumeRecord(URL, '"v1"', 7), 40, "http://other/m/x", {}, 0),
    ("other source, size unknown", ResumeRecord(URL, '"v1"', None), 40, "http://other/m/x", {}, 0),
    (
        "same source given with credentials",
        ResumeRecord("http://***@h/x", None, None),
        5,
        "http://u:p@h/x",
        {"Range": "bytes=5-"},
        5,
    ),
]


@pytest.mark.parametrize("case,record,have,url,extra,continued", RESUME_TABLE, ids=[r[0] for r in RESUME_TABLE])
def test_resume_headers(case, record, have, url, extra, continued):
    headers, kept = resume_headers(record, have, url, SPEC)
    assert headers == {"Accept-Encoding": "identity", **extra}
    assert kept == continued


# --- step 3: triage ------------------------------------------------------------------------------

N = len(BODY)
TRIAGE_TABLE = [
    ("200", 200, {"content-length": str(N)}, 0, None, (0, N, False)),
    ("200 without length", 200, {}, 0, None, (0, None, False)),
    ("200 to a Range: start over", 200, {"content-length": str(N)}, 40, SAME, (0, N, False)),
    ("206 resume", 206, {"content-range": f"bytes 40-{N - 1}/{N}"}, 40, SAME, (40, N, False)),
    ("206 whole file without Range", 206, {"content-range": f"bytes 0-{N - 1}/{N}"}, 0, None, (0, N, False)),
    ("416 to a resume", 416, {}, N, SAME, (N, N, True)),
]


@pytest.mark.parametrize("case,status,headers,have,record,want", TRIAGE_TABLE, ids=[r[0] for r in TRIAGE_TABLE])
def test_triage_accepts(case, status, headers, have, record, want):
    got = triage(status, "OK", headers, have, record, SPEC)
    assert (got.start, got.total, got.complete) == want


REFUSE_TABLE = [
    ("503", 503, {"retry-after": "7"}, 0, None, "HTTP 503", True, False),
    ("404", 404, {}, 0, None, "HTTP 404", False, False),
    ("416 without a resume", 416, {}, 0, None, "HTTP 416", False, False),
    ("HTML", 200, {"content-type": "text/html; charset=utf-8"}, 0, None, "HTML page", False, False),
    ("206 part without Range", 206, {"content-range": f"bytes 9-{N - 1}/{N}"}, 0, None, "without Range", False, False),
    ("206 wrong offset", 206, {"content-range": f"bytes 9-{N - 1}/{N}"}, 40, SAME, "wrong offset", True, True),
    ("206 of another size", 206, {"content-range": "bytes 40-99/100"}, 40, SAME, "another size", True, True),
    ("announced too much", 200, {"content-length": str(10**12)}, 0, None, "more than any copy", False, False),
]


@pytest.mark.parametrize(
    "case,status,headers,have,record,text,transient,discard", REFUSE_TABLE, ids=[r[0] for r in REFUSE_TABLE]
)
def test_triage_refuses(case, status, headers, have, record, text, transient, discard):
    with pytest.raises(SourceFailed, match=text) as info:
        triage(status, "Reason", headers, have, record, SPEC)
    assert (info.value.transient, info.value.discard) == (transient, discard)
    if status == 503:
        assert info.value.retry_after == 7.0


def test_content_range_parsing():
    assert content_range("bytes 100-199/200") == (100, 200)
    assert content_range("bytes 100-199/*") == (100, None)
    assert content_range("items 1-2/3") == (-1, None)
    assert content_range(None) == (-1, None)
    assert content_range("garbage") == (-1, None)


# --- step 4: stream_body -------------------------------------------------------------------------


def stream(chunks, **kw):
    out = io.BytesIO()
    ticks = iter(kw.pop("times", [0.0] * 1000))
    got = stream_body(iter(chunks), out, SPEC, clock=lambda: next(ticks), min_rate=1.0, grace=10.0, **kw)
    return got, out.getvalue()


def test_stream_body_writes_every_byte_and_counts_from_the_start():
    got, written = stream([BODY[:3], BODY[3:50], BODY[50:]])
    assert (got, written) == (len(BODY), BODY)
    got, written = stream([BODY[40:]], start=40, kept_head=BODY[:40])
    assert (got, written) == (len(BODY), BODY[40:])


def test_stream_body_judges_kept_and_new_bytes_together():
    stream([BODY[1:]], start=1, kept_head=BODY[:1])  # one kept byte alone is no verdict
    with pytest.raises(SourceFailed, match="starting over") as info:
        stream([b"<html>" * 100], start=1, kept_head=BODY[:1])
    assert info.value.transient and info.value.discard
    with pytest.raises(SourceFailed, match="an HTML page") as info:
        stream([b"<html><body>" * 60])
    assert not info.value.transient


def test_stream_body_caps_the_size_and_drops_a_trickle():
    cap = size_cap(SPEC)
    with pytest.raises(SourceFailed, match=f"more than {cap} bytes"):
        stream([BODY, bytes(cap)])
    with pytest.raises(SourceFailed, match="too slow") as info:
        stream([BODY[:600], BODY[600:]], times=[0.0, 1.0, 1000.0])  # 600 bytes in 1000 s
    assert info.value.transient


def test_stream_body_reports_progress_in_bytes():
    seen = []
    stream([BODY[:10], BODY[10:]], progress=seen.append)
    assert seen == [10, len(BODY) - 10]


# --- the resume record ---------------------------------------------------------------------------


def test_resume_record_round_trip_and_older_records(tmp_path):
    path = tmp_path / "x.part.json"
    record = ResumeRecord.from_response("http://u:secret@h/x", {"etag": '"s"'}, 99)
    record.write(path)
    assert "secret" not in path.read_text()
    assert ResumeRecord.read(path) == ResumeRecord("http://***@h/x", '"s"', 99)
    path.write_text(json.dumps({"url": "http://h/x", "etag": 'W/"w"', "last_modified": None}))  # mnistkit 0.1.0
    assert ResumeRecord.read(path) == ResumeRecord("http://h/x", None, None)
    for text in ["[]", "1", "{", '{"url": 3}', '{"url": "u", "total": "9"}', '{"url": "u", "validator": 1}']:
        path.write_text(text)
        assert ResumeRecord.read(path) is None, text


def test_redact():
    assert redact("https://user:pa:ss@host:8/p?q=1") == "https://***@host:8/p?q=1"
    assert redact("failed for http://a@b/c and ftp://x:y@z/") == "failed for http://***@b/c and ftp://***@z/"
    assert redact("http://host/a@b") == "http://host/a@b"  # an @ in the path is not a user


# --- step 2: open_response, against a real server -----------------------------------------------


def session():
    import requests

    from mnistkit.transfer import deadline_adapter

    s = requests.Session()
    s.mount("http://", deadline_adapter())
    return s


def test_open_response_follows_redirects_and_maps_failures(server):
    server.routes["/a"] = Route(redirect="/b")
    server.routes["/b"] = Route(body=BODY)
    with open_response(session(), server.url + "/a", {}, 5, 5) as resp:
        assert resp.status_code == 200 and resp.raw.read() == BODY
    server.routes["/bad"] = Route(redirect="http://[::1/x")
    with pytest.raises(SourceFailed, match="Invalid IPv6 URL") as info:
        open_response(session(), server.url + "/bad", {}, 5, 5)
    assert not info.value.transient
    server.routes["/slow"] = Route(header_trickle=0.02)
    with pytest.raises(SourceFailed, match=r"no complete response headers within 0\.2 s") as info:
        open_response(session(), server.url + "/slow", {}, 5, 0.1)
    assert info.value.transient
    # the connection that was cut does not poison the next request on the same session
    s = session()
    with pytest.raises(SourceFailed):
        open_response(s, server.url + "/slow", {}, 5, 0.1)
    with open_response(s, server.url + "/b", {}, 5, 5) as resp:
        assert resp.raw.read() == BODY


def test_the_header_deadline_holds_through_an_http_proxy(server, monkeypatch):
    """Through HTTP_PROXY the request goes to the proxy (here: the loopback server, which is asked for
    absolute URLs); the proxied connections get the deadline too."""
    host = "http://mirror.mnistkit-test.invalid"  # never resolved: the proxy is asked for it
    server.routes[f"{host}/good"] = Route(body=BODY)
    server.routes[f"{host}/slow"] = Route(header_trickle=0.02)
    monkeypatch.setenv("HTTP_PROXY", server.url)
    monkeypatch.setenv("NO_PROXY", "")
    s = session()
    with open_response(s, f"{host}/good", {}, 5, 5) as resp:
        assert resp.raw.read() == BODY
    with pytest.raises(SourceFailed, match="no complete response headers"):
        open_response(s, f"{host}/slow", {}, 5, 0.1)
    assert server.gets(f"{host}/good") == 1
