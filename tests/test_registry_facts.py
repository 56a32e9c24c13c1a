"""Every number the registry declares, read back from the reference facts and, when present, the real files.

The reference facts are committed copies (tests/reference/, see its README) of
../shared/reference/datasets.md, ../shared/data/README.md and the six EMNIST mapping files, so the walk
runs on a fresh clone.  The real published files (../shared/data/<dataset>/<file>) are used when present.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import lzma
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mnistkit import registry
from mnistkit.archive import parse_mapping
from mnistkit.idx import IdxHeader, parse_header
from mnistkit.integrity import verify
from mnistkit.sources import Downloader

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "reference"
SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = SHARED / "data"

# The reference's words for QMNIST's label columns -> the registry's field names, in the reference's order.
QMNIST_COLUMN_WORDS = {
    "class": "class",
    "NIST HSF series": "hsf_series",
    "writer id": "writer_id",
    "digit index within the writer's page": "digit_index",
    "NIST class code": "nist_class_code",
    "global NIST index": "nist_index",
    "duplicate flag": "duplicate",
    "unused": "unused",
}


# --- reading the reference ---------------------------------------------------------------------------


def _sections(text: str) -> dict[str, str]:
    """``datasets.md`` cut at its ``## ... (`name`)`` headings: name -> section text."""
    parts = re.split(r"^## ", text, flags=re.M)
    found = {}
    for part in parts[1:]:
        match = re.match(r".*\(`([a-z-]+(?:<split>)?)`\)", part.splitlines()[0])
        if match:
            found[match.group(1)] = part
    return found


def _table(section: str) -> dict[str, list[str]]:
    """The rows of a section's table whose first cell is a file name: name -> the other cells."""
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and re.match(r"^[a-z0-9-]+\.(gz|xz)$", cells[0]):
            rows[cells[0]] = cells[1:]
    return rows


def _braces(pattern: str) -> list[str]:
    """Expand ``a-{b,c}-{d,e}`` as a shell would."""
    pieces = re.split(r"\{([^}]*)\}", pattern)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(pieces)]
    return ["".join(combo) for combo in itertools.product(*choices)]


def _number(text: str) -> int:
    return int(text.replace(",", ""))


class Facts:
    """What the reference says, per dataset, in the registry's terms."""

    def __init__(self, datasets_md: str, data_readme: str, mappings: dict[str, str]) -> None:
        self.sections = _sections(datasets_md)
        self.data_readme = data_readme
        self.mappings = mappings  # split -> published mapping text

    def mnist_layout(self, name: str) -> dict:
        section = self.sections[name]
        rows = _table(section)
        files = {f: {"size": _number(r[0]), "md5": r[1], "sha256": r[2]} for f, r in rows.items()}
        if name == "mnist":
            for f, r in rows.items():
                files[f]["raw_md5"] = r[3]
            found = re.findall(r"^- ((?:train|t10k)-(?:images|labels)): ([0-9a-f]{64})$", self.data_readme, re.M)
            decoded = dict(found)
            for f in files:
                files[f]["decoded_sha256"] = decoded[f.split("-idx")[0]]
        classes = None
        match = re.search(r"Classes[^:]*: (.+?)\.(?:\s|$)", section, re.S)
        if match:
            classes = tuple(c.strip() for c in match.group(1).replace("\n", " ").split(","))
        license_ = re.search(r"License (.+?) \(", section)
        return {
            "files": files,
            "classes": classes,
            "license": license_.group(1) if license_ else None,
            "urls": re.findall(r"https?://\S+?/(?=[\s)·]|$)", section),
        }

    def emnist(self) -> dict:
        section = " ".join(self.sections["emnist-<split>"].split())
        archive = re.search(r"`gzip.zip`, (\d+) bytes, md5 ([0-9a-f]{32}), sha256 ([0-9a-f]{64})", section)
        splits = {}
        sizes = section[section.index("Split sizes train/test:") : section.index("Correction:")]
        for split, train, test, extra in re.findall(r"(\w+) (\d+)/(\d+)(?: \(([^)]*)\))?", sizes):
            count = re.match(r"(\d+)", extra or "")
            per_class = re.search(r"(\d+) and (\d+) per class", extra or "")
            first_label = re.search(r"labels (\d+)\.\.(\d+)", extra or "")
            splits[split] = {
                "train": int(train),
                "test": int(test),
                "classes": int(count.group(1)) if count else None,
                "per_class": tuple(map(int, per_class.groups())) if per_class else None,
                "labels": tuple(map(int, first_label.groups())) if first_label else None,
            }
        members = re.search(r"Inside: `([^`]+)`", section).group(1)
        mapping_member = re.search(r"`(gzip/emnist-\{split\}-mapping\.txt)`", section).group(1)
        member_sizes = {}
        found = re.search(
            r"(letters) train images (\d+), train labels (\d+), test images (\d+), test labels (\d+) bytes", section
        )
        if found:
            split, *numbers = found.groups()
            parts = ("train-images-idx3", "train-labels-idx1", "test-images-idx3", "test-labels-idx1")
            for part, n in zip(parts, numbers, strict=True):
                member_sizes[f"emnist-{split}-{part}-ubyte.gz"] = int(n)
        return {
            "archive": {"size": int(archive.group(1)), "md5": archive.group(2), "sha256": archive.group(3)},
            "urls": re.findall(r"https://\S+?/gzip\.zip", section),
            "splits": splits,
            "members": set(_braces(members)),
            "mapping_member": mapping_member,
            "member_sizes": member_sizes,
            "transposed": "Images are stored transposed" in section,
        }

    def qmnist(self) -> dict:
        section = self.sections["qmnist"]
        flat = " ".join(section.split())
        sizes = re.search(
            r"Train (\d+), test (\d+) \(its first (\d+) are MNIST's test set: "
            r"\"test10k\"; the rest \"test50k\"\), nist (\d+)",
            flat,
        )
        train, test, first, nist = map(int, sizes.groups())
        columns = re.search(
            r"IDX type 0x([0-9A-Fa-f]{2}) \(big-endian int32\), rank (\d), (\d+) columns: (.+?)\.", flat
        )
        return {
            "md5": {f: r[0] for f, r in _table(section).items()},
            "splits": {"train": train, "test": test, "test10k": first, "test50k": test - first, "nist": nist},
            "label_type": int(columns.group(1), 16),
            "label_rank": int(columns.group(2)),
            "columns": [c.strip() for c in columns.group(4).split(",")],
            "n_columns": int(columns.group(3)),
            "urls": re.findall(r"https://\S+/", flat),
        }


def _facts() -> Facts:
    mappings = {
        p.name.split("-")[1]: p.read_text() for p in sorted((REFERENCE / "emnist-mapping").glob("emnist-*-mapping.txt"))
    }
    return Facts((REFERENCE / "datasets.md").read_text(), (REFERENCE / "data-README.md").read_text(), mappings)


def _plain(digest: str | None) -> str | None:
    return None if digest is None else digest.split(":", 1)[1]


# --- the walk over the reference (runs everywhere) -------------------------------------------------


def test_every_declared_number_matches_the_reference():
    """Walk every dataset, file and split of the registry; list each disagreement with the reference."""
    facts = _facts()
    problems: list[str] = []

    def same(what: str, declared, reference) -> None:
        if declared != reference:
            problems.append(f"{what}: registry {declared!r}, reference {reference!r}")

    seen = set()
    for name in ("mnist", "fashion-mnist", "kmnist"):
        ds, ref = registry.get_dataset(name), facts.mnist_layout(name)
        seen.add(name)
        same(f"{name} files", sorted(f.name for f in ds.files), sorted(ref["files"]))
        for spec in ds.files:
            want = ref["files"][spec.name]
            same(f"{name}/{spec.name} size", spec.size, want["size"])
            same(f"{name}/{spec.name} md5", _plain(spec.md5), want["md5"])
            same(f"{name}/{spec.name} sha256", _plain(spec.sha256), want["sha256"])
            if "decoded_sha256" in want:
                same(f"{name}/{spec.name} decoded sha256", _plain(spec.decoded_sha256), want["decoded_sha256"])
            images = "images" in spec.name
            n = 60000 if spec.name.startswith("train") else 10000
            same(f"{name}/{spec.name} shape", spec.shape, (n, 28, 28) if images else (n,))
            same(f"{name}/{spec.name} type", spec.type_code, 0x08)
        same(f"{name} splits", ds.info()["splits"], {"train": 60000, "test": 10000})
        same(f"{name} classes", ds.classes, ref["classes"] or tuple("0123456789"))
        same(f"{name} label offset", ds.label_offset, 0)
        if ref["license"]:
            same(f"{name} license", ds.license, ref["license"])
        for mirror in ds.mirrors:
            if mirror not in ref["urls"]:
                problems.append(f"{name}: mirror {mirror} is not in the reference ({ref['urls']})")
    same(
        "mnist license",
        registry.get_dataset("mnist").license,
        re.search(r"under the terms of\s+(CC BY-SA \d(?:\.\d)+)", facts.data_readme).group(1),
    )

    emnist = facts.emnist()
    same(
        "emnist split names", sorted(ds.name for ds in registry.EMNIST), sorted(f"emnist-{s}" for s in emnist["splits"])
    )
    members = set()
    for ds in registry.EMNIST:
        seen.add(ds.name)
        split = ds.name.split("-", 1)[1]
        want = emnist["splits"][split]
        archive = ds.files[0]
        same(
            f"{ds.name} archive",
            (archive.name, archive.kind, archive.size, _plain(archive.md5), _plain(archive.sha256)),
            ("gzip.zip", "archive", emnist["archive"]["size"], emnist["archive"]["md5"], emnist["archive"]["sha256"]),
        )
        same(f"{ds.name} split sizes", ds.info()["splits"], {"train": want["train"], "test": want["test"]})
        for spec in ds.files[1:]:
            members.add(spec.member)
            n = want["train"] if "-train-" in spec.name else want["test"]
            images = "-images-" in spec.name
            same(f"{ds.name}/{spec.name} shape", spec.shape, (n, 28, 28) if images else (n,))
            same(f"{ds.name}/{spec.name} transposed", spec.transposed, images and emnist["transposed"])
            same(f"{ds.name}/{spec.name} compressed size", spec.size, emnist["member_sizes"].get(spec.name))
        mapping = facts.mappings[split]
        published = parse_mapping(mapping)
        same(f"{ds.name} mapping member", ds.mapping, emnist["mapping_member"].replace("{split}", split))
        same(f"{ds.name} label mapping", ds.label_map(), published)
        same(f"{ds.name} mapping text", ds.mapping_text(), mapping)
        same(f"{ds.name} label offset", ds.label_offset, min(published))
        if want["classes"] is not None:
            same(f"{ds.name} class count", ds.num_classes, want["classes"])
        if want["labels"] is not None:
            same(f"{ds.name} label range", (ds.label_offset, ds.label_offset + ds.num_classes - 1), want["labels"])
        if want["per_class"] is not None:
            same(
                f"{ds.name} per-class counts x classes",
                (want["per_class"][0] * ds.num_classes, want["per_class"][1] * ds.num_classes),
                (want["train"], want["test"]),
            )
        for mirror in ds.mirrors:
            if mirror + "gzip.zip" not in emnist["urls"]:
                problems.append(f"{ds.name}: mirror {mirror} is not in the reference")
    same("emnist members", members, emnist["members"])

    qmnist, ds = facts.qmnist(), registry.QMNIST
    seen.add(ds.name)
    same("qmnist files", sorted(f.name for f in ds.files), sorted(qmnist["md5"]))
    for spec in ds.files:
        same(f"qmnist/{spec.name} md5", _plain(spec.md5), qmnist["md5"][spec.name])
        if "labels" in spec.name:
            same(
                f"qmnist/{spec.name} label type and rank",
                (spec.type_code, len(spec.shape)),
                (qmnist["label_type"], qmnist["label_rank"]),
            )
            same(f"qmnist/{spec.name} columns", spec.shape[1], qmnist["n_columns"])
    same("qmnist splits", ds.info()["splits"], qmnist["splits"])
    same("qmnist test10k rows", ds.split("test10k").rows, (0, qmnist["splits"]["test10k"]))
    same("qmnist label columns", list(ds.label_columns), [QMNIST_COLUMN_WORDS.get(c, c) for c in qmnist["columns"]])
    same("qmnist mirrors", list(ds.mirrors), qmnist["urls"])
    same("qmnist classes", ds.classes, tuple("0123456789"))

    # Every IDX file of the family: images are 28x28 uint8 (0x08, the reference's IDX section and MNIST's facts);
    # labels are uint8 vectors, except QMNIST's int32 tables checked above.
    for ds in registry.DATASETS.values():
        for spec in ds.files:
            if spec.kind != "idx":
                continue
            if "-images-" in spec.name or spec.name.startswith(("train-images", "t10k-images")):
                same(f"{ds.name}/{spec.name} image type and size", (spec.type_code, spec.shape[1:]), (0x08, (28, 28)))
                same(f"{ds.name} image_shape", ds.image_shape, (28, 28))
            elif not ds.label_columns:
                same(f"{ds.name}/{spec.name} label type and rank", (spec.type_code, len(spec.shape)), (0x08, 1))

    same("datasets walked", seen, set(registry.DATASETS))
    assert not problems, "the registry disagrees with the reference:\n" + "\n".join(problems)


def test_the_walk_sees_a_wrong_number(monkeypatch):
    """The walk is not vacuous: the number this issue was about, put back, is reported."""
    wrong = registry.emnist_split(
        "letters", registry.get_dataset("emnist-letters").classes, 88800, 14800, "letters", label_offset=1
    )
    monkeypatch.setattr(registry, "EMNIST", (*registry.EMNIST[:3], wrong, *registry.EMNIST[4:]))
    monkeypatch.setitem(registry.DATASETS, "emnist-letters", wrong)
    with pytest.raises(AssertionError, match=r"emnist-letters split sizes: registry \{'train': 88800"):
        test_every_declared_number_matches_the_reference()


@pytest.mark.parametrize(
    "copy, original",
    [
        ("datasets.md", "reference/datasets.md"),
        ("data-README.md", "data/README.md"),
        *[
            (f"emnist-mapping/emnist-{s}-mapping.txt", f"reference/emnist-mapping/emnist-{s}-mapping.txt")
            for s in ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")
        ],
    ],
)
def test_committed_reference_is_a_copy_of_the_original(copy, original):
    source = SHARED / original
    if not source.is_file():
        pytest.skip(f"{source} not found (a fresh clone without ../shared): the committed copy is used as is")
    assert (REFERENCE / copy).read_bytes() == source.read_bytes(), (
        f"tests/reference/{copy} differs from {source}: copy it again and rerun this file"
    )


# --- the walk over the real files (when present) -----------------------------------------------------


def _decode(data: bytes, name: str) -> bytes:
    if name.endswith(".xz"):
        return lzma.decompress(data)
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _real_files():
    seen = set()
    for ds in registry.DATASETS.values():
        for spec in ds.files:
            if spec.archive is None and (ds.folder, spec.name) not in seen:  # EMNIST's archive: once
                seen.add((ds.folder, spec.name))
                yield ds, spec, SHARED_DATA / ds.folder / spec.name


def test_every_declared_number_matches_the_real_files():
    """Each real published file: its size, checksums, IDX header and decoded checksum against the registry."""
    present = [(ds, spec, path) for ds, spec, path in _real_files() if path.is_file()]
    if not present:
        pytest.skip(f"no real published files under {SHARED_DATA} (a fresh clone without ../shared)")
    raw_md5 = {f: r["raw_md5"] for f, r in _facts().mnist_layout("mnist")["files"].items()}
    problems = []
    for ds, spec, path in present:
        data = path.read_bytes()
        where = f"{ds.name}/{spec.name} ({path})"
        published = hashlib.md5(data).hexdigest() == _plain(spec.md5)
        if published:  # byte for byte the published file: every number about the file itself applies
            if spec.size is not None and len(data) != spec.size:
                problems.append(f"{where}: size {len(data)}, registry {spec.size}")
            if spec.sha256 and hashlib.sha256(data).hexdigest() != _plain(spec.sha256):
                problems.append(f"{where}: sha256 differs from the registry's")
        elif spec.decoded_sha256 is None:
            problems.append(f"{where}: not the published bytes, and no decoded checksum to check it by")
        decoded = _decode(data, spec.name)
        header = parse_header(decoded[:32], str(path))
        if (header.type_code, header.shape) != (spec.type_code, spec.shape):
            problems.append(
                f"{where}: header 0x{header.type_code:02x} {header.shape}, registry 0x{spec.type_code:02x} {spec.shape}"
            )
        if len(decoded) != spec.decoded_size:
            problems.append(f"{where}: decoded size {len(decoded)}, registry {spec.decoded_size}")
        if spec.decoded_sha256 and hashlib.sha256(decoded).hexdigest() != _plain(spec.decoded_sha256):
            problems.append(f"{where}: decoded sha256 differs from the registry's")
        if ds.name == "mnist" and hashlib.md5(decoded).hexdigest() != raw_md5[spec.name]:
            problems.append(f"{where}: decoded md5 differs from the reference's raw md5")
        if ds.label_columns and "labels" in spec.name:
            table = np.frombuffer(decoded, ">i4", offset=IdxHeader(spec.type_code, spec.shape).header_size)
            classes = table.reshape(spec.shape)[:, 0]
            if classes.min() < ds.label_offset or classes.max() >= ds.label_offset + ds.num_classes:
                problems.append(f"{where}: class column runs {classes.min()}..{classes.max()}")
    problems += _archive_problems()
    assert not problems, "the registry disagrees with the real files:\n" + "\n".join(problems)


def _archive_problems() -> list[str]:
    """The EMNIST archive, when present: each member's compressed size, IDX header and mapping file."""
    archive = SHARED_DATA / "emnist" / "gzip.zip"
    if not archive.is_file():
        return []
    import zipfile

    problems = []
    with zipfile.ZipFile(archive) as zf:
        for ds in registry.EMNIST:
            for spec in ds.files[1:]:
                info = zf.getinfo(spec.member)
                if spec.size is not None and info.file_size != spec.size:
                    problems.append(f"{ds.name}/{spec.member}: {info.file_size} bytes, registry {spec.size}")
                with zf.open(spec.member) as fh, gzip.open(fh) as raw:
                    header = parse_header(raw.read(32), spec.member)
                if (header.type_code, header.shape) != (spec.type_code, spec.shape):
                    problems.append(f"{ds.name}/{spec.member}: header {header.shape}, registry {spec.shape}")
            if zf.read(ds.mapping).decode("ascii") != ds.mapping_text():
                problems.append(f"{ds.name}: {archive}:{ds.mapping} differs from the registry's label_map()")
    return problems


@pytest.mark.parametrize("ds, spec, path", [pytest.param(*t, id=f"{t[0].name}/{t[1].name}") for t in _real_files()])
def test_real_file_passes_the_download_check(ds, spec, path, tmp_path):
    """The check a download makes, on the real file: fetched from a folder source, verified, renamed."""
    if not path.is_file():
        pytest.skip(f"{path} is not available here")
    got = Downloader([str(SHARED_DATA)], offline=True)(ds, spec, tmp_path)
    assert got == tmp_path / spec.name and got.read_bytes() == path.read_bytes()
    assert not list(tmp_path.glob("*.part*"))
    # ...and by the published checksum of the file as served (the check used where no decoded one is pinned)
    if hashlib.md5(path.read_bytes()).hexdigest() == _plain(spec.md5):
        verify(path, replace(spec, decoded_sha256=None))
        verify(path, replace(spec, decoded_sha256=None, sha256=None))  # md5 alone, as QMNIST publishes
    else:  # MNIST's train images here: re-compressed, so only the decoded checksum can vouch for it
        from mnistkit import ChecksumError

        with pytest.raises(ChecksumError, match="of the compressed file"):
            verify(path, replace(spec, decoded_sha256=None))
