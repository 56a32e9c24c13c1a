"""Measurements run in a child process, one probe per call, for ``bench.py``.

Usage: ``python probes.py PROBE CONFIG_JSON``; prints one JSON object on the last line of stdout.

Each probe runs in a fresh interpreter, possibly another virtual environment (the peers are installed
in their own), so this file needs only the standard library and NumPy at import; the library under
test is imported inside its probe.  A probe that cannot import its library reports ``{"missing": ...}``.

Every probe touches every element of what it returns (``touch``): a lazy loader that maps a file and
reads nothing must not look fast for it.  Cold probes time one call (the process is fresh and the cache
emptied by the caller); warm probes make one untimed call first, then time ``repeat`` calls.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

IMAGES = ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")
LABELS = ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte")
STEMS = (IMAGES[0], LABELS[0], IMAGES[1], LABELS[1])


def touch(*arrays) -> None:
    """Read every element once (a vectorised max), so lazily mapped data is really loaded."""
    for a in arrays:
        np.asarray(a).max()


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def start_peak() -> float:
    """Reset the peak-memory mark where Linux allows it; returns the resident memory now, in MiB.

    Writing 5 to ``/proc/self/clear_refs`` resets ``VmHWM``, so several measurements in one
    process each get their own peak; elsewhere the process's ``ru_maxrss`` is the (coarser) fallback.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_mb("VmRSS")
    except OSError:
        return peak_mb()


def peak_mb() -> float:
    """Peak resident memory since :func:`start_peak`, in MiB (``ru_maxrss`` is in KiB on Linux)."""
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, cfg: dict, cold: bool) -> dict:
    """Time ``fn`` (which returns arrays) with and without touching them, and the peak memory."""
    if not cold:
        touch(*fn())  # warm: files in the page cache, caches built, imports done
    rss0 = start_peak()
    calls, totals = [], []
    for _ in range(1 if cold else cfg.get("repeat", 5)):
        t0 = time.perf_counter()
        arrays = fn()
        t1 = time.perf_counter()
        touch(*arrays)
        t2 = time.perf_counter()
        calls.append(t1 - t0)
        totals.append(t2 - t0)
        del arrays
    return {"call": calls, "total": totals, "peak_mb": peak_mb() - rss0}


# --- mnistkit ----------------------------------------------------------------------------------


def _mnistkit_dataset(cfg: dict) -> str:
    """Register the benchmark's files as a dataset when they are not the published MNIST."""
    spec = cfg.get("register")
    if not spec:
        return "mnist"
    from mnistkit import registry

    files = tuple(
        registry.FileSpec(f["name"], tuple(f["shape"]), 0x08, f["decoded_size"], f["decoded_sha256"])
        for f in spec["files"]
    )
    names = [f.name for f in files]
    ds = registry.Dataset(
        name=spec["name"],
        title="benchmark data",
        files=files,
        splits=(registry.Split("train", names[0], names[1]), registry.Split("test", names[2], names[3])),
        mirrors=(),
        classes=tuple(str(i) for i in range(10)),
    )
    registry.DATASETS[ds.name] = ds
    return ds.name


def _flat(result) -> list:
    (x, t), (xt, tt) = result
    return [x, t, xt, tt]


def probe_mnistkit_cold(cfg):
    import mnistkit

    name = _mnistkit_dataset(cfg)
    shutil.rmtree(Path(cfg["home"]) / name / ".cache", ignore_errors=True)
    return timed(
        lambda: _flat(mnistkit.load_mnist(normalize=False, dataset=name, data_home=cfg["home"], offline=True)),
        cfg,
        cold=True,
    )


def each_combo(load, cfg) -> dict:
    """Time ``load(**options)`` for every (label, options) of ``cfg["combos"]``, one after another."""
    return {
        "combos": {
            label: timed(lambda opts=opts: _flat(load(**opts)), cfg, cold=False) for label, opts in cfg["combos"]
        }
    }


def probe_mnistkit_warm(cfg):
    import mnistkit

    name = _mnistkit_dataset(cfg)
    return each_combo(lambda **o: mnistkit.load_mnist(**o, dataset=name, data_home=cfg["home"], offline=True), cfg)


# --- the classic tutorial helper (dataset/mnist.py of "Deep Learning from Scratch"), verbatim logic ---


def _tutorial_convert(folder: str) -> dict:
    out = {}
    for key, stem, offset in (
        ("train_img", IMAGES[0], 16),
        ("train_label", LABELS[0], 8),
        ("test_img", IMAGES[1], 16),
        ("test_label", LABELS[1], 8),
    ):
        with gzip.open(os.path.join(folder, stem + ".gz"), "rb") as f:
            data = np.frombuffer(f.read(), np.uint8, offset=offset)
        out[key] = data.reshape(-1, 784) if key.endswith("img") else data
    return out


def _tutorial_load(pkl: str, normalize=True, flatten=True, one_hot_label=False):
    with open(pkl, "rb") as f:
        dataset = pickle.load(f)
    if normalize:
        for key in ("train_img", "test_img"):
            dataset[key] = dataset[key].astype(np.float32)
            dataset[key] /= 255.0
    if one_hot_label:  # the tutorial's loop, kept: it is what users of the helper run
        for key in ("train_label", "test_label"):
            t = np.zeros((dataset[key].size, 10))
            for idx, row in enumerate(t):
                row[dataset[key][idx]] = 1
            dataset[key] = t
    if not flatten:
        for key in ("train_img", "test_img"):
            dataset[key] = dataset[key].reshape(-1, 1, 28, 28)
    return (dataset["train_img"], dataset["train_label"]), (dataset["test_img"], dataset["test_label"])


def probe_tutorial_cold(cfg):
    pkl = cfg["pickle"]

    def cold():
        dataset = _tutorial_convert(cfg["gz"])
        with open(pkl, "wb") as f:
            pickle.dump(dataset, f, -1)
        return _flat(_tutorial_load(pkl, normalize=False))

    return timed(cold, cfg, cold=True)


def probe_tutorial_warm(cfg):
    return each_combo(lambda **o: _tutorial_load(cfg["pickle"], **o), cfg)


# --- peers in their own environments -----------------------------------------------------------


def probe_idx2numpy(cfg):
    import idx2numpy

    def load():
        out = []
        for stem in STEMS:
            with gzip.open(os.path.join(cfg["gz"], stem + ".gz"), "rb") as f:
                out.append(idx2numpy.convert_from_file(f))
        return out

    return {**timed(load, cfg, cold=cfg["cold"]), "version": getattr(idx2numpy, "__version__", "?")}


def probe_python_mnist(cfg):
    from importlib.metadata import version

    from mnist import MNIST

    def load():  # its fastest documented route: NumPy output straight from the .gz files
        data = MNIST(cfg["gz"], return_type="numpy", gz=True)
        (x, t), (xt, tt) = data.load_training(), data.load_testing()
        return [x, t, xt, tt]

    return {**timed(load, cfg, cold=cfg["cold"]), "version": version("python-mnist")}


def probe_torchvision(cfg):
    import torchvision
    from torchvision.datasets import MNIST
    from torchvision.datasets.utils import extract_archive

    root = Path(cfg["root"])
    raw = root / "MNIST" / "raw"

    def construct():
        out = []
        for train in (True, False):
            ds = MNIST(str(root), train=train, download=False)
            out += [ds.data.numpy(), ds.targets.numpy()]
        return out

    if not cfg["cold"]:
        return {**timed(construct, cfg, cold=False), "version": torchvision.__version__}
    shutil.rmtree(root / "MNIST", ignore_errors=True)
    raw.mkdir(parents=True)
    for stem in STEMS:
        shutil.copyfile(os.path.join(cfg["gz"], stem + ".gz"), raw / (stem + ".gz"))

    def cold():  # what download=True does once the .gz files are fetched: extract, then read
        for stem in STEMS:
            extract_archive(str(raw / (stem + ".gz")), str(raw), remove_finished=False)
        return construct()

    return {**timed(cold, cfg, cold=True), "version": torchvision.__version__}


def probe_keras_npz(cfg):
    """keras.datasets.mnist.load_data once the npz is in ~/.keras/datasets: hash check, then np.load."""

    def load():
        hasher = hashlib.sha256()  # keras.utils.file_utils.validate_file, chunk size and all
        with open(cfg["npz"], "rb") as f:
            for chunk in iter(lambda: f.read(65535), b""):
                hasher.update(chunk)
        if hasher.hexdigest() != cfg["sha256"]:
            msg = "npz hash mismatch"
            raise RuntimeError(msg)
        with np.load(cfg["npz"], allow_pickle=True) as f:
            return [f["x_train"], f["y_train"], f["x_test"], f["y_test"]]

    return timed(load, cfg, cold=cfg["cold"])


def probe_hf_setup(cfg):
    """Write MNIST as the Hugging Face hub stores it: PNG images and class labels in Parquet."""
    import io

    import datasets
    from PIL import Image

    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(i) for i in range(10)])}
    )
    for split, (img, lbl) in (("train", (IMAGES[0], LABELS[0])), ("test", (IMAGES[1], LABELS[1]))):
        with gzip.open(os.path.join(cfg["gz"], img + ".gz")) as f:
            x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
        with gzip.open(os.path.join(cfg["gz"], lbl + ".gz")) as f:
            t = np.frombuffer(f.read(), np.uint8, offset=8)
        pngs = []
        for a in x:
            buf = io.BytesIO()
            Image.fromarray(a).save(buf, format="PNG")
            pngs.append({"bytes": buf.getvalue(), "path": None})
        ds = datasets.Dataset.from_dict({"image": pngs, "label": t.tolist()}, features=features)
        ds.to_parquet(os.path.join(cfg["parquet"], f"{split}.parquet"))
    return {"call": [], "total": [], "peak_mb": 0, "version": datasets.__version__}


def probe_hf(cfg):
    import datasets

    datasets.disable_progress_bars()
    files = {s: os.path.join(cfg["parquet"], f"{s}.parquet") for s in ("train", "test")}
    if cfg["cold"]:
        shutil.rmtree(cfg["cache"], ignore_errors=True)

    def load():
        dd = datasets.load_dataset("parquet", data_files=files, cache_dir=cfg["cache"]).with_format("numpy")
        out = []
        for split in ("train", "test"):
            out += [dd[split]["image"], dd[split]["label"]]
        return out

    return {**timed(load, cfg, cold=cfg["cold"]), "version": datasets.__version__}


# --- floors: what the machine allows ----------------------------------------------------------


def probe_floors(cfg):
    repeat = cfg.get("repeat", 5)
    raw = [os.path.join(cfg["raw"], s) for s in STEMS]
    npy = [os.path.join(cfg["npy"], s + ".npy") for s in STEMS]
    gz = [Path(cfg["gz"], s + ".gz").read_bytes() for s in STEMS]
    sizes = [os.path.getsize(p) for p in raw]
    decoded = [Path(p).read_bytes() for p in raw]
    n = sum(sizes[i] - 16 for i in (0, 2)) // 784
    out = {}

    def run(name, fn, touched=True):
        out[name] = timed(lambda: fn() if touched else (fn(), [])[1], {"repeat": repeat}, cold=False)

    run("fromfile", lambda: [np.fromfile(p, np.uint8) for p in raw])
    run("npy_mmap", lambda: [np.load(p, mmap_mode="r") for p in npy], touched=False)

    def alloc_write():
        a = np.empty((n, 784), np.float32)
        a.fill(0.5)
        return [a]

    run("alloc_write_f32", alloc_write)
    run("sha256", lambda: [hashlib.sha256(d).digest() for d in decoded], touched=False)
    decompressors = {"gzip.decompress": gzip.decompress}
    import zlib

    decompressors["zlib, exact buffer"] = lambda b, s: zlib.decompress(b, 31, s)
    try:
        from zlib_ng import zlib_ng

        decompressors["zlib-ng, exact buffer"] = lambda b, s: zlib_ng.decompress(b, 31, s)
    except ImportError:
        pass
    try:
        from isal import isal_zlib

        decompressors["isal, exact buffer"] = lambda b, s: isal_zlib.decompress(b, 31, s)
    except ImportError:
        pass
    for name, fn in decompressors.items():
        if name == "gzip.decompress":
            run("gunzip: " + name, lambda fn=fn: [fn(b) for b in gz], touched=False)
        else:
            run("gunzip: " + name, lambda fn=fn: [fn(b, s) for b, s in zip(gz, sizes, strict=True)], touched=False)
    return out


def main() -> None:
    name, cfg = sys.argv[1], json.loads(sys.argv[2])
    try:
        result = globals()["probe_" + name](cfg)
    except ImportError as err:
        result = {"missing": f"{err.name or err} not installed"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
