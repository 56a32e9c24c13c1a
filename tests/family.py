"""Synthetic MNIST-family files in exactly the published names and layouts, registered in small sizes.

Each builder takes a real registry entry, shrinks its split sizes, writes matching files (EMNIST: one
``gzip.zip`` with all six splits and their mapping files; QMNIST: 8-column int32 labels, xz files) and
returns the shrunk entry, pinned to the synthetic bytes the same way the real one is pinned.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import zipfile
from dataclasses import dataclass, replace

import numpy as np

from mnistkit import registry
from mnistkit.idx import encode_idx
from mnistkit.registry import Dataset, archive_file, idx_file

EMNIST_SMALL = {
    697932: 30,
    116323: 10,
    112800: 24,
    18800: 8,
    124800: 26,
    20800: 9,
    240000: 20,
    40000: 7,
    60000: 12,
    10000: 5,
}
QMNIST_SMALL = {60000: 12, 10000: 4, 402953: 15}


@dataclass
class Family:
    """Shrunk registry entries, the files to publish (folder -> name -> bytes) and the arrays inside."""

    datasets: dict[str, Dataset]
    files: dict[str, dict[str, bytes]]
    arrays: dict[str, np.ndarray]  # published (member) name -> array as stored

    def register(self, monkeypatch) -> None:
        for ds in self.datasets.values():
            monkeypatch.setitem(registry.DATASETS, ds.name, ds)

    def serve(self, server) -> None:
        from helpers import Route

        for folder, files in self.files.items():
            for name, data in files.items():
                server.routes[f"/{folder}/{name}"] = Route(body=data)

    def write(self, home) -> None:
        for folder, files in self.files.items():
            (home / folder).mkdir(parents=True, exist_ok=True)
            for name, data in files.items():
                (home / folder / name).write_bytes(data)


def _digest(data: bytes, algo: str) -> str:
    return f"{algo}:{hashlib.new(algo, data).hexdigest()}"


def _labels(n: int, ds: Dataset, rng) -> np.ndarray:
    return (rng.permutation(n) % ds.num_classes + ds.label_offset).astype(np.uint8)


def _shrink(ds: Dataset, small: dict[int, int], files: tuple, mirrors: tuple[str, ...] = ()) -> Dataset:
    splits = tuple(
        replace(s, rows=None if s.rows is None else tuple(small.get(r, r) for r in s.rows)) for s in ds.splits
    )
    return replace(ds, files=files, splits=splits, mirrors=mirrors)


def emnist(seed: int = 0, compression: int = zipfile.ZIP_DEFLATED, pin_archive: bool = True) -> Family:
    """All six EMNIST splits in one ``gzip.zip`` (images stored transposed), with their mapping files."""
    rng = np.random.default_rng(seed)
    arrays, members, specs = {}, {}, {}
    for ds in registry.EMNIST:
        for spec in ds.files[1:]:
            shape = (EMNIST_SMALL[spec.shape[0]], *spec.shape[1:])
            data = rng.integers(0, 256, shape, dtype=np.uint8) if spec.transposed else _labels(shape[0], ds, rng)
            arrays[spec.name] = data
            members[spec.member] = gzip.compress(encode_idx(data), mtime=0)
            specs[spec.name] = idx_file(
                spec.name, shape, archive=spec.archive, member=spec.member, transposed=spec.transposed
            )
        mapping = "".join(
            f"{ds.label_offset + i} {' '.join(str(ord(c)) for c in name)}\n" for i, name in enumerate(ds.classes)
        )
        members[ds.mapping] = mapping.encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    body = buf.getvalue()
    pins = {"sha256": _digest(body, "sha256"), "md5": _digest(body, "md5")} if pin_archive else {}
    archive = archive_file("gzip.zip", len(body) if pin_archive else None, **pins)
    datasets = {
        ds.name: _shrink(ds, EMNIST_SMALL, (archive, *(specs[s.name] for s in ds.files[1:]))) for ds in registry.EMNIST
    }
    return Family(datasets, {"emnist": {"gzip.zip": body}}, arrays)


def qmnist(seed: int = 0) -> Family:
    """QMNIST's six files (gzip and xz), 8-column int32 labels, pinned by md5 as published."""
    rng = np.random.default_rng(seed)
    ds = registry.QMNIST
    arrays, published, specs = {}, {}, []
    for spec in ds.files:
        shape = (QMNIST_SMALL[spec.shape[0]], *spec.shape[1:])
        if spec.type_code == 0x08:
            data = rng.integers(0, 256, shape, dtype=np.uint8)
        else:
            data = rng.integers(0, 2**31 - 1, shape, dtype=np.int32)
            data[:, 0] = rng.permutation(shape[0]) % 10
        raw = encode_idx(data)
        body = lzma.compress(raw) if spec.name.endswith(".xz") else gzip.compress(raw, mtime=0)
        arrays[spec.name], published[spec.name] = data, body
        specs.append(idx_file(spec.name, shape, spec.type_code, md5=_digest(body, "md5")))
    return Family({ds.name: _shrink(ds, QMNIST_SMALL, tuple(specs))}, {"qmnist": published}, arrays)


def mnist_layout(name: str, seed: int = 0) -> Family:
    """Fashion-MNIST or KMNIST: MNIST's four .gz files, pinned by the .gz's sha256 as published."""
    rng = np.random.default_rng(seed)
    ds = registry.get_dataset(name)
    small = {60000: 12, 10000: 5}
    arrays, published, specs = {}, {}, []
    for spec in ds.files:
        shape = (small[spec.shape[0]], *spec.shape[1:])
        data = rng.integers(0, 256, shape, dtype=np.uint8) if len(shape) == 3 else _labels(shape[0], ds, rng)
        body = gzip.compress(encode_idx(data), mtime=0)
        arrays[spec.name], published[spec.name] = data, body
        specs.append(idx_file(spec.name, shape, size=len(body), sha256=_digest(body, "sha256")))
    return Family({ds.name: _shrink(ds, small, tuple(specs))}, {ds.folder: published}, arrays)
