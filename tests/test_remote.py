"""Mirrors and publishing on object storage: a real S3 server (moto) on 127.0.0.1, s3fs as the client."""

from __future__ import annotations

import json
import logging
import os
import sys

import numpy as np
import pytest
from helpers import make_synthetic, run_cli

pytest.importorskip("s3fs", reason="remote mirror tests need the test extra (fsspec, s3fs, moto[server])")
pytest.importorskip("moto", reason="remote mirror tests need moto[server] (pip install '.[test]')")

from mnistkit import DownloadError, MissingDependencyError, load_mnist
from mnistkit.errors import ArgumentError
from mnistkit.mirror import INDEX_NAME, publish, verify_mirror
from mnistkit.remote import StorageError, _stamp, filesystem
from mnistkit.sources import Downloader, ResumeRecord, RetryPolicy
from s3server import S3Server, s3_env

IMAGES = "train-images-idx3-ubyte.gz"


@pytest.fixture(scope="module")
def s3_server():
    with S3Server() as srv:
        yield srv


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The loopback S3 server, emptied, with the environment pointing botocore at it."""
    s3_server.reset()
    for key in list(os.environ):
        if key.startswith(("AWS_", "FSSPEC_")):
            monkeypatch.delenv(key)
    for key, value in s3_env(s3_server.url).items():
        monkeypatch.setenv(key, value)
    return s3_server


def put_objects(base: str, files: dict[str, bytes]) -> None:
    fs, root = filesystem(base)
    bucket = root.split("/")[0]
    if not fs.exists(bucket):
        fs.mkdir(bucket)
    for rel, data in files.items():
        fs.pipe_file(f"{root}/{rel}", data)


def make_bucket(name: str) -> None:
    fs, _ = filesystem(f"s3://{name}")
    fs.mkdir(name)


def assert_loaded(synth, **kw):
    (x, _t), (_xt, tt) = load_mnist(normalize=False, dataset=synth.dataset.name, **kw)
    np.testing.assert_array_equal(x.reshape(synth.arrays[IMAGES].shape), synth.arrays[IMAGES])
    np.testing.assert_array_equal(tt, synth.arrays["t10k-labels-idx1-ubyte.gz"])


def leftovers(folder) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith((".part", ".json", ".tmp"))]


# --- an S3 bucket as a mirror ----------------------------------------------------------------------


def test_s3_mirror_from_the_environment(s3, synth, home, monkeypatch):
    put_objects("s3://team-data/mnistkit", {f"tiny/{n}": d for n, d in synth.gz.items()})
    monkeypatch.setenv("MNISTKIT_MIRROR", "s3://team-data/mnistkit/")
    assert_loaded(synth)
    for name, data in synth.gz.items():
        assert (home / "tiny" / name).read_bytes() == data
        assert s3.gets(f"/team-data/mnistkit/tiny/{name}"), name  # really read from the bucket
    assert leftovers(home / "tiny") == []


def test_publish_then_load_from_a_fresh_home_with_only_that_mirror(s3, synth, home, tmp_path):
    synth.write(home)
    make_bucket("mirror")
    done = publish("s3://mirror/mk", ["tiny"], data_home=home)
    assert [(p.name, p.action) for p in done] == [(n, "uploaded") for n in synth.gz] + [(INDEX_NAME, "index")]
    fs, _ = filesystem("s3://mirror")
    index = json.loads(fs.cat_file(f"mirror/mk/tiny/{INDEX_NAME}"))
    for name, data in synth.gz.items():
        assert fs.cat_file(f"mirror/mk/tiny/{name}") == data
        import hashlib

        assert index["files"][name]["size"] == len(data)
        assert index["files"][name]["sha256"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert index["datasets"] == ["tiny"] and index["format"] == 1
    assert "testing" not in json.dumps(index)  # no credential ever lands in the index

    fresh = tmp_path / "fresh-node"
    assert_loaded(synth, data_home=fresh, mirrors=["s3://mirror/mk"])  # "tiny" has no built-in mirror
    for name, data in synth.gz.items():
        assert (fresh / "tiny" / name).read_bytes() == data

    # publishing again uploads nothing: sizes, stamps and checksums are those recorded
    puts_before = sum(1 for m, p, _ in s3.requests if m == "PUT" and not p.endswith(INDEX_NAME))
    again = publish("s3://mirror/mk", ["tiny"], data_home=home)
    assert [p.action for p in again] == ["skipped"] * 4 + ["index"]
    assert sum(1 for m, p, _ in s3.requests if m == "PUT" and not p.endswith(INDEX_NAME)) == puts_before
    assert all(f.ok for f in verify_mirror("s3://mirror/mk")), verify_mirror("s3://mirror/mk")


def test_files_put_there_by_hand_are_compared_by_content_not_reuploaded(s3, synth, home):
    synth.write(home)
    put_objects("s3://byhand/m", {f"tiny/{n}": d for n, d in synth.gz.items()})  # e.g. `aws s3 sync`
    put_objects("s3://byhand/m", {f"tiny/{IMAGES}": synth.gz[IMAGES][:-10] + b"0123456789"})  # same size, wrong
    done = {p.name: p.action for p in publish("s3://byhand/m", data_home=home)}  # default: what is here
    assert done[IMAGES] == "uploaded"
    assert [done[n] for n in synth.gz if n != IMAGES] == ["skipped"] * 3
    fs, _ = filesystem("s3://byhand")
    assert fs.cat_file(f"byhand/m/tiny/{IMAGES}") == synth.gz[IMAGES]


BAD_OBJECTS = {
    "truncated": (lambda gz: gz[: len(gz) // 2], "rejected after download"),
    "other data": (lambda gz: make_synthetic(seed=1).gz[IMAGES], "rejected after download"),
    "an HTML page": (lambda gz: b"<!DOCTYPE html><html>" + b" " * 1000 + b"</html>", "served an HTML page"),
    "too big": (lambda gz: gz + bytes(200_000), "more than any copy of"),
}


@pytest.mark.parametrize("damage", list(BAD_OBJECTS))
def test_a_bad_file_in_a_bucket_is_refused_and_the_next_source_tried(s3, synth, home, damage, caplog):
    make_bad, reason = BAD_OBJECTS[damage]
    bad = make_bad(synth.gz[IMAGES])
    put_objects("s3://bad/m", {**{f"tiny/{n}": d for n, d in synth.gz.items()}, f"tiny/{IMAGES}": bad})
    put_objects("s3://good/m", {f"tiny/{n}": d for n, d in synth.gz.items()})
    with caplog.at_level(logging.WARNING, logger="mnistkit"):
        assert_loaded(synth, mirrors="s3://bad/m,s3://good/m")
    assert s3.gets(f"/good/m/tiny/{IMAGES}") and not s3.gets("/good/m/tiny/train-labels-idx1-ubyte.gz")
    warned = [r.getMessage() for r in caplog.records if "s3://bad/m/tiny/" + IMAGES in r.getMessage()]
    assert warned and reason in warned[0], warned
    assert (home / "tiny" / IMAGES).read_bytes() == synth.gz[IMAGES]
    assert leftovers(home / "tiny") == []


def test_missing_bucket_is_one_clear_line(s3, synth, home):
    with pytest.raises(DownloadError) as info:
        load_mnist(dataset="tiny", mirrors=["s3://no-such-bucket/m"])
    lines = [line for line in str(info.value).splitlines() if "s3://no-such-bucket" in line]
    assert len(lines) == 1
    assert "the bucket no-such-bucket does not exist" in lines[0] and "create it or correct the URL" in lines[0]
    assert leftovers(home / "tiny") == []


def test_missing_credentials_are_one_clear_line(s3, synth, home, monkeypatch):
    make_bucket("private")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(DownloadError) as info:
        load_mnist(dataset="tiny", mirrors=["s3://private/m"])
    lines = [line for line in str(info.value).splitlines() if "s3://private" in line]
    assert len(lines) == 1
    assert "no usable credentials for s3://" in lines[0] and "AWS_ACCESS_KEY_ID" in lines[0], lines[0]


def test_publish_errors_are_one_line_with_exit_code_1(s3, synth, home):
    synth.write(home)
    env = {**os.environ}
    result = run_cli("publish", "s3://no-such-bucket/m", "tiny", env=env)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "the bucket no-such-bucket does not exist" in result.stderr, result.stderr
    env.pop("AWS_ACCESS_KEY_ID")
    env.pop("AWS_SECRET_ACCESS_KEY")
    make_bucket("private")
    result = run_cli("publish", "s3://private/m", "tiny", env=env)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "no usable credentials for s3://" in result.stderr, result.stderr
    with pytest.raises(StorageError):
        publish("s3://no-such-bucket/m", ["tiny"], data_home=home)


def test_cli_publish_and_verify_mirror(s3, synth, home):
    synth.write(home)
    make_bucket("cli")
    result = run_cli("publish", "s3://cli/mirror", env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("uploaded s3://cli/mirror/tiny/") == 4 and "4 uploaded" in result.stdout, result.stdout
    assert "testing" not in result.stdout + result.stderr  # credentials are never printed
    result = run_cli("verify", "--mirror", "s3://cli/mirror", env=dict(os.environ))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok   s3://cli/mirror/tiny/") == 4 and "4 checked, 0 bad" in result.stdout
    # a file replaced behind the index's back: found by reading it where it is
    put_objects("s3://cli/mirror", {f"tiny/{IMAGES}": make_synthetic(seed=3).gz[IMAGES]})
    result = run_cli("verify", "--mirror", "s3://cli/mirror", env=dict(os.environ))
    assert result.returncode == 1
    assert f"BAD  s3://cli/mirror/tiny/{IMAGES}" in result.stdout and "1 bad" in result.stdout, result.stdout


@pytest.mark.parametrize("how", ["FSSPEC_S3_ENDPOINT_URL", "fsspec config file", "AWS credentials file"])
def test_endpoint_and_credentials_the_backends_way(s3, synth, home, tmp_path, how):
    """Settings read by fsspec and botocore themselves, in a fresh process: mnistkit passes none of them."""
    import socket

    put_objects("s3://viaconf/m", {f"tiny/{n}": d for n, d in synth.gz.items()})
    with socket.socket() as sock:  # a loopback port nothing listens on: were a setting ignored,
        sock.bind(("127.0.0.1", 0))  # the client would fail there, never reach out to AWS
        closed = sock.getsockname()[1]
    env = {**os.environ, "AWS_MAX_ATTEMPTS": "1", "MNISTKIT_MIRROR": "s3://viaconf/m"}
    if how == "FSSPEC_S3_ENDPOINT_URL":
        env.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{closed}", FSSPEC_S3_ENDPOINT_URL=s3.url)
    elif how == "fsspec config file":
        conf = tmp_path / "fsspec-conf"
        conf.mkdir()
        (conf / "s3.json").write_text(json.dumps({"s3": {"endpoint_url": s3.url}}))
        env.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{closed}", FSSPEC_CONFIG_DIR=str(conf))
    else:
        creds = tmp_path / "aws-credentials"
        creds.write_text("[default]\naws_access_key_id = fromfile\naws_secret_access_key = fromfile\n")
        env.pop("AWS_ACCESS_KEY_ID")
        env.pop("AWS_SECRET_ACCESS_KEY")
        env["AWS_SHARED_CREDENTIALS_FILE"] = str(creds)
    result = run_cli("download", "tiny", env=env)
    assert result.returncode == 0, result.stderr
    assert (home / "tiny" / IMAGES).read_bytes() == synth.gz[IMAGES]
    assert "fromfile" not in result.stdout + result.stderr


def test_verify_mirror_of_a_served_data_folder_without_index(synth, home, tmp_path):
    from mnistkit.serve import MirrorServer

    synth.write(home)
    with MirrorServer(home, log=lambda line: None).start() as server:
        found = verify_mirror(server.url, ["tiny"])
        result = run_cli("verify", "--mirror", server.url, "tiny")
    assert [f.name for f in found if f.note] == [INDEX_NAME]
    assert sorted(f.name for f in found if not f.note and f.ok) == sorted(synth.gz)
    assert result.returncode == 0 and "4 checked, 0 bad" in result.stdout, result.stdout + result.stderr


def test_verify_mirror_reports_missing_files_and_stale_index(s3, synth, home):
    synth.write(home)
    make_bucket("mm1")
    publish("s3://mm1/x", ["tiny"], data_home=home)
    fs, _ = filesystem("s3://mm1")
    fs.rm_file("mm1/x/tiny/t10k-labels-idx1-ubyte.gz")
    labels = synth.raw["train-labels-idx1-ubyte.gz"]  # the right data, uncompressed: valid, but not what was indexed
    fs.pipe_file("mm1/x/tiny/train-labels-idx1-ubyte.gz", labels)
    found = {f.name: f for f in verify_mirror("s3://mm1/x", ["tiny"])}
    assert found["t10k-labels-idx1-ubyte.gz"].problem == "missing on the mirror"
    assert "the index records" in found["train-labels-idx1-ubyte.gz"].problem
    assert found[IMAGES].ok and found["t10k-images-idx3-ubyte.gz"].ok


# --- transfer rules: resume, retries ----------------------------------------------------------------


def fast_downloader(sources, attempts=3):
    waits: list[float] = []
    retry = RetryPolicy(attempts=attempts, base_delay=0.5, max_delay=4, connect_timeout=5, read_timeout=5)
    dl = Downloader(sources, retry=retry, sleep=waits.append, rng=lambda: 1.0, progress=False)
    dl.waits = waits
    return dl


def test_an_interrupted_transfer_resumes_with_an_offset_read(s3, synth, home):
    put_objects("s3://res/m", {f"tiny/{n}": d for n, d in synth.gz.items()})
    fs, _ = filesystem("s3://res")
    url = f"s3://res/m/tiny/{IMAGES}"
    folder = home / "tiny"
    folder.mkdir(parents=True)
    half = len(synth.gz[IMAGES]) // 2
    (folder / (IMAGES + ".part")).write_bytes(synth.gz[IMAGES][:half])
    ResumeRecord(url, _stamp(fs.info(f"res/m/tiny/{IMAGES}")), len(synth.gz[IMAGES])).write(
        folder / (IMAGES + ".part.json")
    )
    dl = fast_downloader(["s3://res/m"])
    path = dl(synth.dataset, synth.dataset.file(IMAGES), folder)
    assert path.read_bytes() == synth.gz[IMAGES]
    ranges = s3.gets(f"/res/m/tiny/{IMAGES}")
    assert ranges and all(r.startswith(f"bytes={half}-") for r in ranges), ranges
    assert leftovers(folder) == []


def test_a_connection_dropped_mid_body_is_retried_and_resumed(s3, synth, home, monkeypatch):
    from mnistkit import remote
    from s3server import Drop

    monkeypatch.setattr(remote, "_READ", 16384)  # three reads for this 47 kB file (8 MiB in real use)
    put_objects("s3://drop/m", {f"tiny/{IMAGES}": synth.gz[IMAGES]})
    # the second block breaks off mid-body until s3fs's own 5 tries are spent: ours take over
    s3.drop[f"/drop/m/tiny/{IMAGES}"] = Drop(range="bytes=16384-", times=5, after=1000)
    folder = home / "tiny"
    folder.mkdir(parents=True)
    dl = fast_downloader(["s3://drop/m"], attempts=3)
    path = dl(synth.dataset, synth.dataset.file(IMAGES), folder)
    assert path.read_bytes() == synth.gz[IMAGES]
    assert dl.waits == [0.5]  # one retry of ours, after backoff
    ranges = s3.gets(f"/drop/m/tiny/{IMAGES}")
    assert ranges.count("bytes=0-16383") == 1, ranges  # the first block was kept, never read again
    assert ranges.count("bytes=16384-32767") == 6, ranges  # 5 broken, then the resumed read
    assert leftovers(folder) == []


def test_a_part_from_another_version_of_the_object_starts_over(s3, synth, home):
    put_objects("s3://res2/m", {f"tiny/{IMAGES}": synth.gz[IMAGES]})
    folder = home / "tiny"
    folder.mkdir(parents=True)
    (folder / (IMAGES + ".part")).write_bytes(b"\x1f\x8b" + b"x" * 100)  # kept from some other file
    ResumeRecord(f"s3://res2/m/tiny/{IMAGES}", 'ETag:"stale"', 101).write(folder / (IMAGES + ".part.json"))
    path = fast_downloader(["s3://res2/m"])(synth.dataset, synth.dataset.file(IMAGES), folder)
    assert path.read_bytes() == synth.gz[IMAGES]
    assert all(r is None or r.startswith("bytes=0-") for r in s3.gets(f"/res2/m/tiny/{IMAGES}"))


def test_an_unreachable_endpoint_is_retried_with_backoff_then_given_up(s3, synth, home, monkeypatch):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's own retries off: ours are being tested
    dl = fast_downloader(["s3://any/m"], attempts=3)
    (home / "tiny").mkdir(parents=True)
    with pytest.raises(DownloadError) as info:
        dl(synth.dataset, synth.dataset.file(IMAGES), home / "tiny")
    assert "gave up after 3 tries" in str(info.value) and "connection failed" in str(info.value)
    assert dl.waits == [0.5, 1.0]


# --- without the backend, with credentials in the URL, offline ---------------------------------------


def test_without_fsspec_an_s3_url_says_what_to_install(synth, home, monkeypatch):
    monkeypatch.setitem(sys.modules, "fsspec", None)  # as if not installed: import fails
    monkeypatch.setitem(sys.modules, "fsspec.core", None)
    with pytest.raises(MissingDependencyError) as info:
        load_mnist(dataset="tiny", mirrors=["s3://bucket/m"])
    assert str(info.value) == (
        "s3:// mirrors need fsspec and s3fs, which is not installed; install it with: pip install 'mnistkit[cloud]'"
    )
    with pytest.raises(MissingDependencyError, match=r"gs:// mirrors need fsspec and gcsfs.*mnistkit\[gcs\]"):
        publish("gs://bucket/m", ["tiny"], data_home=home)


@pytest.mark.parametrize("base", ["s3://", "s3:///prefix", "gs://"])
def test_a_url_without_bucket_is_refused_in_one_line(synth, home, base):
    with pytest.raises(ArgumentError, match="names no bucket or host") as info:
        load_mnist(dataset="tiny", mirrors=[base])
    assert "\n" not in str(info.value)


def test_a_password_in_the_url_is_refused_and_never_printed(synth, home):
    with pytest.raises(ArgumentError) as info:
        load_mnist(dataset="tiny", mirrors=["sftp://me:hunter2@host/data"])
    assert "hunter2" not in str(info.value) and "holds a password" in str(info.value)


def test_a_memory_mirror_works_offline(synth, home):
    import fsspec

    fs = fsspec.filesystem("memory")
    for name, data in synth.gz.items():
        fs.pipe_file(f"/offline-mirror/tiny/{name}", data)
    assert_loaded(synth, mirrors=["memory://offline-mirror"], offline=True)


def test_offline_skips_network_storage(synth, home):
    from mnistkit import MissingFilesError

    with pytest.raises(MissingFilesError):
        load_mnist(dataset="tiny", mirrors=["s3://bucket/m"], offline=True)


# --- a folder as destination -----------------------------------------------------------------------


def test_publish_to_a_folder_then_serve_it_as_a_mirror(synth, home, tmp_path):
    synth.write(home)
    dest = tmp_path / "shared" / "mirror"
    done = publish(str(dest), data_home=home)
    assert [p.action for p in done] == ["uploaded"] * 4 + ["index"]
    assert sorted(p.name for p in (dest / "tiny").iterdir()) == sorted([*synth.gz, INDEX_NAME])  # no temp files
    assert [p.action for p in publish(str(dest), data_home=home)] == ["skipped"] * 4 + ["index"]
    (dest / "tiny" / IMAGES).write_bytes(make_synthetic(seed=2).gz[IMAGES])  # damaged behind our back
    bad = [f for f in verify_mirror(f"file://{dest}") if not f.ok]
    assert [f.name for f in bad] == [IMAGES]
    assert next(p.action for p in publish(str(dest), data_home=home)) == "uploaded"
    assert all(f.ok for f in verify_mirror(str(dest)))
    assert_loaded(synth, data_home=tmp_path / "node", mirrors=[str(dest)])


def test_an_unreadable_index_is_reported_and_every_file_still_checked(synth, home, tmp_path):
    synth.write(home)
    dest = tmp_path / "mirror"
    publish(str(dest), data_home=home)
    (dest / "tiny" / INDEX_NAME).write_text("{not json")
    found = verify_mirror(str(dest))
    assert [f.name for f in found if not f.ok] == [INDEX_NAME]
    assert sorted(f.name for f in found if f.ok) == sorted(synth.gz)
    assert [p.action for p in publish(str(dest), data_home=home)] == ["skipped"] * 4 + ["index"]  # by content
    assert all(f.ok for f in verify_mirror(str(dest)))


def test_an_http_destination_is_refused_before_anything_is_read(synth, home):
    synth.write(home)
    with pytest.raises(ArgumentError, match="read-only"):
        publish("http://127.0.0.1:9/mirror", data_home=home)


def test_a_filesystem_destination_gets_write_beside_then_rename(synth, home, tmp_path):
    """fsspec's local:// filesystem takes the path of sftp://, hdfs://: a temporary name, then a rename."""
    synth.write(home)
    dest = tmp_path / "fs-mirror"
    from mnistkit.remote import open_place

    assert open_place(f"local://{dest}").atomic_put is False
    assert [p.action for p in publish(f"local://{dest}", data_home=home)] == ["uploaded"] * 4 + ["index"]
    (dest / "tiny" / IMAGES).write_bytes(make_synthetic(seed=5).gz[IMAGES])  # replaced: the rename overwrites
    assert next(p.action for p in publish(f"local://{dest}", data_home=home)) == "uploaded"
    assert sorted(p.name for p in (dest / "tiny").iterdir()) == sorted([*synth.gz, INDEX_NAME])  # no temp names
    assert all(f.ok for f in verify_mirror(f"local://{dest}"))
    assert_loaded(synth, data_home=tmp_path / "node", mirrors=[f"local://{dest}"], offline=True)


def test_nothing_to_publish_is_one_line(home):
    with pytest.raises(ArgumentError, match="nothing to publish"):
        publish("/tmp/unused-destination", data_home=home)


# --- the settings reach remote sources (--mirror, --offline, --timeout) ---------------------------


def test_cli_mirror_flag_reaches_s3_and_offline_skips_it(s3, synth, home):
    put_objects("s3://cliflag/m", {f"tiny/{n}": d for n, d in synth.gz.items()})
    env = dict(os.environ)
    result = run_cli("--offline", "--mirror", "s3://cliflag/m", "download", "tiny", env=env)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "offline mode" in result.stderr, result.stderr
    assert not s3.gets(f"/cliflag/m/tiny/{IMAGES}")  # not even asked
    result = run_cli("--mirror", "s3://cliflag/m", "download", "tiny", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    for name, data in synth.gz.items():
        assert (home / "tiny" / name).read_bytes() == data
        assert s3.gets(f"/cliflag/m/tiny/{name}"), name


def test_verify_mirror_option_does_not_replace_the_global_mirrors():
    from mnistkit.cli import build_parser

    args = build_parser().parse_args(["--mirror", "s3://get/from", "verify", "--mirror", "s3://check/this"])
    assert args.mirror == ["s3://get/from"] and args.mirror_src == "s3://check/this"
    args = build_parser().parse_args(["--mirror", "s3://get/from", "verify"])
    assert args.mirror == ["s3://get/from"] and args.mirror_src is None


@pytest.mark.parametrize("timeout", [None, 7.0])
def test_the_timeout_setting_reaches_the_s3_client(s3, synth, home, timeout):
    from mnistkit.settings import Settings

    put_objects("s3://slow/m", {f"tiny/{n}": d for n, d in synth.gz.items()})
    dl = Downloader.from_settings(Settings.resolve(data_home=home, mirrors="s3://slow/m", timeout=timeout))
    spec = next(s for s in synth.dataset.files if s.name == IMAGES)
    (home / "tiny").mkdir(parents=True)
    assert dl(synth.dataset, spec, home / "tiny").read_bytes() == synth.gz[IMAGES]
    config = dl._remote_filesystems["s3://slow"].config_kwargs
    assert (config["connect_timeout"], config["read_timeout"]) == ((10.0, 30.0) if timeout is None else (7.0, 7.0))


def test_publish_and_verify_mirror_are_exported_from_the_package(synth, home, tmp_path):
    import mnistkit

    assert mnistkit.publish is publish and mnistkit.verify_mirror is verify_mirror
    synth.write(home)
    mnistkit.publish(str(tmp_path / "m"), ["tiny"], data_home=home)
    assert all(f.ok for f in mnistkit.verify_mirror(str(tmp_path / "m"), ["tiny"]))
