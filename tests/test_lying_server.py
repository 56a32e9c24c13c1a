"""A server that lies: wrong Content-Length, gzip Content-Encoding, redirect chains, endless bodies.

Each lie is told by a real loopback server (tests/helpers.py); the client must either end up
with exactly the published bytes or move on to the next mirror, and never keep anything wrong.
"""

from __future__ import annotations

import gzip

import pytest
from helpers import Route

from mnistkit import DownloadError
from test_sources import LABELS, assert_only_final_files, fast_downloader, fetch, publish, with_mirrors


@pytest.fixture
def mirrors(synth, home, server, monkeypatch):
    """The dataset with two built-in mirrors on the server: /liar/ (tried first) and /good/."""
    publish(server, synth, "/good/", names=[LABELS])
    return with_mirrors(monkeypatch, synth, server.url + "/liar/", server.url + "/good/")


def got_from(server, mirrors, home, synth, tally, outcome):
    """Fetch the labels; assert the published bytes arrived and nothing else stayed; count the case."""
    folder = home / mirrors.name
    fetch(fast_downloader(), mirrors, LABELS, folder)
    assert (folder / LABELS).read_bytes() == synth.gz[LABELS]
    assert_only_final_files(folder)
    tally.add(outcome)


def test_content_length_longer_than_the_body_is_resumed_and_verified(synth, home, server, mirrors, tally):
    body = synth.gz[LABELS]
    server.routes[f"/liar/{LABELS}"] = Route(body=body, content_length=len(body) + 1000)
    got_from(server, mirrors, home, synth, tally, "body kept, resumed, verified")
    assert server.gets(f"/good/{LABELS}") == 0  # the bytes were right: no need for the next mirror
    assert server.gets(f"/liar/{LABELS}") == 2  # cut short, then a Range request finds nothing more


def test_content_length_shorter_than_the_body_is_refused_and_connection_not_reused(synth, home, server, mirrors, tally):
    body = synth.gz[LABELS]
    server.routes[f"/liar/{LABELS}"] = Route(body=body, content_length=len(body) // 2)
    # the next mirror is on the same host: left-over bytes on a reused connection would garble it
    got_from(server, mirrors, home, synth, tally, "truncated body refused, next mirror")
    assert server.gets(f"/good/{LABELS}") == 1


def test_gzip_content_encoding_on_a_gz_file_keeps_the_bytes_as_published(synth, home, server, mirrors, tally):
    # The classic misconfiguration: the .gz file itself, labelled Content-Encoding: gzip.
    server.routes[f"/liar/{LABELS}"] = Route(body=synth.gz[LABELS], headers={"Content-Encoding": "gzip"})
    got_from(server, mirrors, home, synth, tally, "stored as published (not decoded)")
    assert server.gets(f"/good/{LABELS}") == 0
    assert server.requests[0][2]["Accept-Encoding"] == "identity"


def test_gzip_content_encoding_applied_on_top_of_a_gz_file_is_refused(synth, home, server, mirrors, tally):
    # A server that ignores Accept-Encoding: identity and compresses the .gz again.
    twice = gzip.compress(synth.gz[LABELS])
    server.routes[f"/liar/{LABELS}"] = Route(body=twice, headers={"Content-Encoding": "gzip"})
    got_from(server, mirrors, home, synth, tally, "refused (not IDX inside), next mirror")
    assert server.gets(f"/good/{LABELS}") == 1


@pytest.mark.parametrize("hops,accepted", [(5, True), (6, False)])
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_chains_are_followed_up_to_five_hops(synth, home, server, mirrors, tally, hops, accepted, status):
    for k in range(hops):
        target = f"/hop{k + 1}/{LABELS}" if k + 1 < hops else f"/final/{LABELS}"
        server.routes[f"/liar/{LABELS}" if k == 0 else f"/hop{k}/{LABELS}"] = Route(
            redirect=target, redirect_status=status
        )
    server.routes[f"/final/{LABELS}"] = Route(body=synth.gz[LABELS])
    got_from(server, mirrors, home, synth, tally, "followed" if accepted else "refused, next mirror")
    assert server.gets(f"/final/{LABELS}") == int(accepted)
    assert server.gets(f"/good/{LABELS}") == int(not accepted)


def test_redirect_without_location_moves_on(synth, home, server, mirrors, tally):
    server.routes[f"/liar/{LABELS}"] = Route(redirect="", redirect_status=None)
    got_from(server, mirrors, home, synth, tally, "refused, next mirror")


def test_endless_body_is_stopped_by_the_size_cap(synth, home, server, mirrors, tally):
    # Right magic first, so only the cap can stop it; no Content-Length announced.
    server.routes[f"/liar/{LABELS}"] = Route(body=synth.gz[LABELS], endless=True)
    got_from(server, mirrors, home, synth, tally, "stopped at the cap, next mirror")


def test_endless_body_everywhere_fails_with_the_reason(synth, home, server, monkeypatch, tally):
    ds = with_mirrors(monkeypatch, synth, server.url + "/liar/")
    server.routes[f"/liar/{LABELS}"] = Route(body=synth.gz[LABELS], endless=True)
    with pytest.raises(DownloadError, match="sent more than"):
        fetch(fast_downloader(), ds, LABELS, home / ds.name)
    assert not (home / ds.name / LABELS).exists()
    assert_only_final_files(home / ds.name)
    tally.add("DownloadError naming the cap")


def test_announced_size_over_the_cap_is_refused_before_reading(synth, home, server, mirrors, tally):
    server.routes[f"/liar/{LABELS}"] = Route(body=synth.gz[LABELS], content_length=10**12)
    got_from(server, mirrors, home, synth, tally, "refused from the header, next mirror")
