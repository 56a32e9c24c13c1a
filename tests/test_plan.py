"""The pure decision (plan.py) as a table, and the declared manifests (manifest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnistkit.manifest import ArchiveManifest, CacheManifest, read_manifest, write_manifest
from mnistkit.plan import Action, OnDisk, cache_matches, plan
from mnistkit.registry import FileSpec, archive_file

SPEC = FileSpec("x-labels.gz", shape=(3,), type_code=0x08, decoded_size=11, decoded_sha256="sha256:" + "ab" * 32)
ARCHIVE = archive_file("a.zip", 100, sha256="sha256:" + "cd" * 32)
GOOD = CacheManifest("x-labels.gz", "x-labels.gz", "gzip", False, "sha256:" + "ab" * 32, (3,), "|u1", 131)
F1, F2 = (Path("/d/x-labels.gz"), 50, 7), (Path("/d/.downloaded/x-labels.gz"), 50, 9)
ARCH = ArchiveManifest("a.zip", "sha256:" + "cd" * 32, 100, 5)


def other(**changes):
    import dataclasses

    return dataclasses.replace(GOOD, **changes)


#: (case, on disk, expected action, expected files)
TABLE = [
    ("cached", OnDisk(GOOD, 131, (F1,)), Action.USE, ()),
    ("cached, no file left", OnDisk(GOOD, 131), Action.USE, ()),
    ("cached, folder read-only", OnDisk(GOOD, 131, writable=False), Action.USE, ()),
    ("npy truncated", OnDisk(GOOD, 130, (F1,)), Action.BUILD, (F1[0],)),
    ("npy missing", OnDisk(GOOD, None, (F1,)), Action.BUILD, (F1[0],)),
    ("manifest unreadable", OnDisk(None, 131, (F1, F2)), Action.BUILD, (F1[0], F2[0])),
    ("other file's manifest", OnDisk(other(file="y"), 131, (F1,)), Action.BUILD, (F1[0],)),
    ("other checksum", OnDisk(other(decoded_sha256="sha256:00"), 131, (F1,)), Action.BUILD, (F1[0],)),
    ("other dtype", OnDisk(other(dtype=">i4"), 131, (F1,)), Action.BUILD, (F1[0],)),
    ("older format", OnDisk(other(format=0), 131, (F1,)), Action.BUILD, (F1[0],)),
    ("archive manifest in its place", OnDisk(ARCH, 131, (F1,)), Action.BUILD, (F1[0],)),
    ("not cached, files here", OnDisk(None, None, (F1,)), Action.BUILD, (F1[0],)),
    ("nothing here", OnDisk(), Action.FETCH, ()),
    ("a .part to resume", OnDisk(part_size=40), Action.FETCH, ()),
    ("nothing, no downloading", OnDisk(can_fetch=False), Action.FAIL, ()),
    ("files, no downloading", OnDisk(files=(F1,), can_fetch=False), Action.BUILD, (F1[0],)),
    ("read-only with files", OnDisk(None, None, (F1,), writable=False), Action.DECODE, (F1[0],)),
    ("read-only, stale cache", OnDisk(other(file="y"), 131, (F1,), writable=False), Action.DECODE, (F1[0],)),
    ("read-only, nothing", OnDisk(writable=False), Action.FAIL, ()),
]


@pytest.mark.parametrize("case,on_disk,action,files", TABLE, ids=[row[0] for row in TABLE])
def test_plan_table(case, on_disk, action, files):
    decided = plan(SPEC, on_disk, "|u1")
    assert decided.action is action, decided
    assert decided.files == files
    assert decided.reason


def test_plan_explains_a_resume_and_a_read_only_folder():
    assert "resuming at byte 40" in plan(SPEC, OnDisk(part_size=40), "|u1").reason
    assert "cannot be written" in plan(SPEC, OnDisk(writable=False), "|u1").reason


ARCHIVE_TABLE = [
    ("verified, unchanged", OnDisk(ARCH, files=((Path("/d/a.zip"), 100, 5),)), Action.USE, (Path("/d/a.zip"),)),
    (
        "set-aside copy verified",
        OnDisk(ARCH, files=((Path("/d/a.zip"), 90, 1), (Path("/d/.downloaded/a.zip"), 100, 5))),
        Action.USE,
        (Path("/d/.downloaded/a.zip"),),
    ),
    ("touched since", OnDisk(ARCH, files=((Path("/d/a.zip"), 100, 6),)), Action.BUILD, (Path("/d/a.zip"),)),
    ("never verified", OnDisk(None, files=((Path("/d/a.zip"), 100, 5),)), Action.BUILD, (Path("/d/a.zip"),)),
    (
        "a cache manifest in its place",
        OnDisk(GOOD, files=((Path("/d/a.zip"), 100, 5),)),
        Action.BUILD,
        (Path("/d/a.zip"),),
    ),
    ("absent", OnDisk(ARCH), Action.FETCH, ()),
]


@pytest.mark.parametrize("case,on_disk,action,files", ARCHIVE_TABLE, ids=[row[0] for row in ARCHIVE_TABLE])
def test_plan_table_for_archives(case, on_disk, action, files):
    decided = plan(ARCHIVE, on_disk)
    assert (decided.action, decided.files) == (action, files)


def test_cache_matches_is_the_cheap_check():
    assert cache_matches(SPEC, GOOD, 131, "|u1")
    assert not cache_matches(SPEC, GOOD, 131, ">i4")
    transposed = FileSpec("x-labels.gz", shape=(3,), type_code=0x08, decoded_size=11, transposed=True)
    assert not cache_matches(transposed, GOOD, 131, "|u1")  # cached stored-way, wanted upright
    no_hash = FileSpec("x-labels.gz", shape=(3,), type_code=0x08, decoded_size=11)
    assert cache_matches(no_hash, other(decoded_sha256="sha256:anything"), 131, "|u1")


def test_manifest_round_trip_and_the_format_on_disk(tmp_path):
    path = tmp_path / "m.json"
    write_manifest(path, GOOD)
    data = json.loads(path.read_text())
    assert data["shape"] == [3] and data["format"] == 1 and data["created"].endswith("Z")
    back = read_manifest(path)
    assert isinstance(back, CacheManifest) and back.shape == (3,) and back.npy_size == 131
    write_manifest(path, ARCH)
    assert read_manifest(path) == ArchiveManifest("a.zip", ARCH.checksum, 100, 5, read_manifest(path).created)
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temporary file left


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "[]",
        "1",
        '"x"',
        "true",
        "null",
        "{}",
        '{"npy_size": "131"}',
        '{"npy_size": true}',
        json.dumps({**json.loads(json.dumps(GOOD.__dict__, default=list)), "shape": [3, "4"]}),
        json.dumps({**json.loads(json.dumps(GOOD.__dict__, default=list)), "npy_size": 1.5}),
    ],
)
def test_anything_but_a_manifest_reads_as_none(tmp_path, text):
    path = tmp_path / "m.json"
    path.write_text(text)
    assert read_manifest(path) is None


def test_a_manifest_written_by_0_1_without_upright_still_reads(tmp_path):
    data = {
        "format": 1,
        "file": "f",
        "verified_from": "f",
        "container": "gzip",
        "decoded_sha256": "sha256:00",
        "shape": [2],
        "dtype": "|u1",
        "npy_size": 130,
        "created": "2026-01-01T00:00:00Z",
    }
    path = tmp_path / "m.json"
    path.write_text(json.dumps(data))
    assert read_manifest(path).upright is False
