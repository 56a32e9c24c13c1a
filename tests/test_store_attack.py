"""Attacks on object-storage mirrors, publishing and data distributions (a careless or hostile user)."""

from __future__ import annotations

import json
import os

import pytest
from helpers import run_cli

pytest.importorskip("s3fs", reason="remote mirror tests need the test extra (fsspec, s3fs, moto[server])")
pytest.importorskip("moto", reason="remote mirror tests need moto[server] (pip install '.[test]')")

from mnistkit.mirror import INDEX_NAME, publish, verify_mirror
from mnistkit.remote import filesystem
from s3server import S3Server, s3_env
from test_data_distributions import install_fake  # imported now: before conftest hides installed data

IMAGES = "train-images-idx3-ubyte.gz"


@pytest.fixture(scope="module")
def s3_server():
    with S3Server() as srv:
        yield srv


@pytest.fixture
def s3(s3_server, monkeypatch):
    s3_server.reset()
    for key in list(os.environ):
        if key.startswith(("AWS_", "FSSPEC_")):
            monkeypatch.delenv(key)
    for key, value in s3_env(s3_server.url).items():
        monkeypatch.setenv(key, value)
    return s3_server


def put(base: str, rel: str, data: bytes) -> None:
    fs, root = filesystem(base)
    bucket = root.split("/")[0]
    if not fs.exists(bucket):
        fs.mkdir(bucket)
    fs.pipe_file(f"{root}/{rel}", data)


LYING_ENTRIES = {
    "a string": "sha256:abc",
    "a list": [1, 2],
    "a number": 7,
    "null": None,
}


@pytest.mark.parametrize("entry", list(LYING_ENTRIES))
def test_verify_mirror_with_an_index_entry_of_the_wrong_shape_is_a_finding_not_a_crash(s3, synth, home, entry):
    synth.write(home)
    put("s3://shape/m", "tiny/.keep", b"")
    publish("s3://shape/m", ["tiny"], data_home=home)
    fs, _ = filesystem("s3://shape")
    index = json.loads(fs.cat_file(f"shape/m/tiny/{INDEX_NAME}"))
    index["files"][IMAGES] = LYING_ENTRIES[entry]
    put("s3://shape/m", f"tiny/{INDEX_NAME}", json.dumps(index).encode())
    findings = {f.name: f for f in verify_mirror("s3://shape/m")}
    assert not findings[IMAGES].ok, findings[IMAGES]
    result = run_cli("verify", "--mirror", "s3://shape/m", env=dict(os.environ))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    # publishing again refreshes the entry
    publish("s3://shape/m", ["tiny"], data_home=home)
    assert all(f.ok for f in verify_mirror("s3://shape/m"))


SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY"  # AWS secret keys hold '/' and '+'
LEAKY_URLS = [
    f"s3://AKIDEXAMPLE:{SECRET}@bucket/m",
    "s3://AKIDEXAMPLE:se#cretPART@bucket/m",
    "s3://AKIDEXAMPLE:se?cretPART@bucket/m",
]


@pytest.mark.parametrize("url", LEAKY_URLS)
def test_a_password_with_slash_hash_or_question_mark_is_refused_and_never_printed(synth, home, url, caplog):
    from mnistkit import load_mnist
    from mnistkit.errors import ArgumentError

    secret = url.split(":", 2)[2].split("@")[0]
    with caplog.at_level("DEBUG", logger="mnistkit"), pytest.raises(ArgumentError) as info:
        load_mnist(dataset="tiny", mirrors=[url])
    assert "holds a password" in str(info.value)
    assert secret not in str(info.value) and secret[2:] not in str(info.value), str(info.value)
    assert not any(secret[2:] in r.getMessage() for r in caplog.records)
    for args in (["verify", "--mirror", url], ["publish", url, "mnist"]):
        result = run_cli(*args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "holds a password" in result.stderr
        assert secret[2:] not in result.stdout + result.stderr, result.stderr
    assert not [p for p in home.rglob("*") if p.is_file() and secret[2:].encode() in p.read_bytes()]


@pytest.mark.parametrize("url", ["sftp://host:22/data@2024/m", "s3://bucket/a:b@c/m"])
def test_an_at_sign_in_the_path_is_not_taken_for_a_password(url):
    from mnistkit.remote import check_url, redact

    check_url(url)
    assert redact(url) == url


# --- installed data distributions, damaged in place ---------------------------------------------------


def _dist_damages(synth):
    from helpers import make_synthetic

    other = make_synthetic(seed=1).gz
    return {
        "deleted": None,
        "another dataset's file": other[IMAGES],
        "the labels file under the images name": synth.gz["train-labels-idx1-ubyte.gz"],
        "a folder": "dir",
        "empty": b"",
        "a symlink to /dev/zero": "zero",
    }


DAMAGES = [
    "deleted",
    "another dataset's file",
    "the labels file under the images name",
    "a folder",
    "empty",
    "a symlink to /dev/zero",
]


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("read_only", [False, True])
def test_a_damaged_installed_file_is_refused_and_the_mirror_used(
    synth, monkeypatch, tmp_path, home, damage, read_only, caplog
):
    import numpy as np
    from helpers import Route, Server

    import mnistkit
    from mnistkit.cli import main

    folder = install_fake(monkeypatch, tmp_path / "site", "tiny", synth.gz)
    bad = _dist_damages(synth)[damage]
    target = folder / IMAGES
    target.unlink()
    if bad == "dir":
        target.mkdir()
    elif bad == "zero":
        target.symlink_to("/dev/zero")
    elif bad is not None:
        target.write_bytes(bad)
    names = sorted(p.name for p in folder.iterdir())
    if read_only:
        for p in (folder, folder.parent):
            p.chmod(0o555)
    try:
        assert main(["list"]) == 0
        assert main(["info", "tiny"]) == 0
        with Server() as server:
            for n, body in synth.gz.items():
                server.routes[f"/tiny/{n}"] = Route(body=body)
            (x, _), (_, tt) = mnistkit.load_mnist(normalize=False, flatten=False, dataset="tiny", mirrors=server.url)
            assert server.gets(f"/tiny/{IMAGES}") == 1
            assert server.gets("/tiny/t10k-images-idx3-ubyte.gz") == 0
        np.testing.assert_array_equal(x[:, 0], synth.arrays[IMAGES])
        np.testing.assert_array_equal(tt, synth.arrays["t10k-labels-idx1-ubyte.gz"])
        assert sorted(p.name for p in folder.iterdir()) == names  # nothing written into the distribution
    finally:
        for p in (folder, folder.parent):
            p.chmod(0o755)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_publish_to_a_read_only_folder_is_one_line_exit_1(synth, home, tmp_path):
    from mnistkit.errors import MnistkitError

    synth.write(home)
    dest = tmp_path / "ro"
    dest.mkdir()
    dest.chmod(0o555)
    try:
        with pytest.raises(MnistkitError) as info:
            publish(dest, ["tiny"], data_home=home)
        assert "\n" not in str(info.value) and str(dest) in str(info.value), str(info.value)
        assert list(dest.iterdir()) == []
    finally:
        dest.chmod(0o755)


def test_publish_over_wrong_files_in_a_folder_replaces_them_and_lying_index_is_not_trusted(synth, home, tmp_path):
    from helpers import make_synthetic

    synth.write(home)
    dest = tmp_path / "mirror"
    publish(dest, ["tiny"], data_home=home)
    other = make_synthetic(seed=2).gz[IMAGES]
    target = dest / "tiny" / IMAGES
    st = target.stat()
    # rewritten in place, same size, the recorded mtime put back (cp -p, rsync -t)
    data = bytearray(synth.gz[IMAGES])
    data[-20] ^= 0xFF
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    findings = {f.name: f for f in verify_mirror(dest)}
    assert not findings[IMAGES].ok
    done = {p.name: p.action for p in publish(dest, ["tiny"], data_home=home)}
    assert done[IMAGES] == "uploaded", done
    assert target.read_bytes() == synth.gz[IMAGES]
    target.write_bytes(other)
    done = {p.name: p.action for p in publish(dest, ["tiny"], data_home=home)}
    assert done[IMAGES] == "uploaded" and target.read_bytes() == synth.gz[IMAGES]
    assert all(f.ok for f in verify_mirror(dest))


@pytest.mark.parametrize("base", ["s3://rootpub", "s3://rootpub/", "s3://rootpub/a/b/"])
def test_publish_to_a_bucket_root_or_trailing_slash_then_load_and_verify(s3, synth, home, tmp_path, base):
    import numpy as np

    from mnistkit import load_mnist

    synth.write(home)
    put("s3://rootpub", ".keep", b"")
    done = publish(base, ["tiny"], data_home=home)
    assert all("//tiny" not in p.url for p in done), [p.url for p in done]
    assert all(f.ok for f in verify_mirror(base))
    (x, _), (_, tt) = load_mnist(
        normalize=False, flatten=False, dataset="tiny", data_home=tmp_path / "n", mirrors=[base]
    )
    np.testing.assert_array_equal(x[:, 0], synth.arrays[IMAGES])
    np.testing.assert_array_equal(tt, synth.arrays["t10k-labels-idx1-ubyte.gz"])


def test_an_object_replaced_after_publish_is_refused_on_load_and_by_verify(s3, synth, home, tmp_path):
    from helpers import make_synthetic

    from mnistkit import DownloadError, load_mnist

    synth.write(home)
    put("s3://swap/m", ".keep", b"")
    publish("s3://swap/m", ["tiny"], data_home=home)
    put("s3://swap/m", f"tiny/{IMAGES}", make_synthetic(seed=5).gz[IMAGES])
    assert not {f.name: f for f in verify_mirror("s3://swap/m")}[IMAGES].ok
    with pytest.raises(DownloadError) as info:
        load_mnist(dataset="tiny", data_home=tmp_path / "n", mirrors=["s3://swap/m"])
    assert f"s3://swap/m/tiny/{IMAGES}" in str(info.value)
    assert not list((tmp_path / "n" / "tiny").glob(IMAGES + "*"))


def test_verify_mirror_on_a_missing_bucket_or_without_credentials_is_one_line(s3, synth, home):
    env = dict(os.environ)
    result = run_cli("verify", "--mirror", "s3://no-such-bucket/m", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "no-such-bucket" in result.stderr, result.stderr
    put("s3://priv/m", "mnist/index.json", b"{}")
    env.pop("AWS_ACCESS_KEY_ID")
    env.pop("AWS_SECRET_ACCESS_KEY")
    result = run_cli("verify", "--mirror", "s3://priv/m", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "no usable credentials" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("index", [{"format": 1, "files": []}, {"format": 1}, {"format": 1, "files": {"x": {}}}])
def test_an_index_that_lists_nothing_is_a_bad_finding_not_no_index(synth, home, tmp_path, index):
    synth.write(home)
    dest = tmp_path / "m"
    publish(dest, ["tiny"], data_home=home)
    (dest / "tiny" / INDEX_NAME).write_text(json.dumps(index))
    findings = verify_mirror(dest)
    assert [f.name for f in findings if not f.ok] == [INDEX_NAME], findings
    assert "lists none" in findings[0].problem
