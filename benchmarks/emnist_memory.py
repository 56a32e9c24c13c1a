"""Peak memory and time of building the EMNIST byclass train cache from its zip archive, at full scale.

Writes a synthetic ``gzip.zip`` holding ``emnist-byclass-train-{images,labels}`` with the published shapes
(697,932 images, 547 MB decoded), then, in a fresh process, builds the cache from the archive (streamed:
zip member -> gunzip -> verify -> transpose -> .npy) and reports the peak resident memory against the
split's size; then a warm load.  Usage::

    python benchmarks/emnist_memory.py [WORKDIR]     # needs ~1.5 GB of disk
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

N = 697932  # emnist-byclass train, as published

MEASURE = r"""
import json, resource, sys, time
from dataclasses import replace
import numpy as np
from mnistkit import registry
from mnistkit.registry import archive_file
from mnistkit.store import Store

home = sys.argv[1]
ds = registry.get_dataset("emnist-byclass")
ds = replace(ds, files=(archive_file("gzip.zip", None),) + ds.files[1:], mirrors=())  # unpinned synthetic archive
store = Store(ds, home)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter()
images = store.load(ds.file("emnist-byclass-train-images-idx3-ubyte.gz"))
labels = store.load(ds.file("emnist-byclass-train-labels-idx1-ubyte.gz"))
cold = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter()
again = Store(ds, home).load(ds.file("emnist-byclass-train-images-idx3-ubyte.gz"))
warm = time.perf_counter() - t0
print(json.dumps({"cold_s": cold, "warm_s": warm, "rss_before": before, "rss_peak": peak,
                  "split_bytes": images.nbytes + labels.nbytes, "memmap": isinstance(again.base, np.memmap)}))
"""


def make_archive(folder: Path) -> None:
    """The archive, with MNIST-like sparse images (about 80% zero pixels)."""
    from mnistkit.idx import encode_idx

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N, 28, 28), dtype=np.uint8)
    images[rng.random((N, 28, 28)) < 0.8] = 0
    labels = (np.arange(N) % 62).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / "gzip.zip", "w", zipfile.ZIP_STORED) as zf:  # members are .gz already
        for name, array in (("images-idx3", images), ("labels-idx1", labels)):
            zf.writestr(f"gzip/emnist-byclass-train-{name}-ubyte.gz", gzip.compress(encode_idx(array), 1, mtime=0))


def main() -> None:
    if sys.argv[1:2] == ["--make"]:
        return make_archive(Path(sys.argv[2]) / "emnist")
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="mnistkit-bench-"))
    archive = work / "emnist" / "gzip.zip"
    if not archive.exists():
        # In its own process: a child's peak RSS counts its parent's memory at fork time (Linux).
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--make", str(work)], check=True)
        print(f"archive: {archive.stat().st_size / 1e6:.0f} MB written in {time.perf_counter() - t0:.1f} s")
    shutil.rmtree(work / "emnist" / ".cache", ignore_errors=True)  # always a cold build
    out = subprocess.run([sys.executable, "-c", MEASURE, str(work)], check=True, capture_output=True, text=True)
    r = json.loads(out.stdout)
    mb = 1 << 20
    grown = r["rss_peak"] - r["rss_before"]
    print(f"split (images + labels): {r['split_bytes'] / mb:.0f} MiB")
    print(
        f"cold build from the archive: {r['cold_s']:.1f} s; peak RSS {r['rss_peak'] / mb:.0f} MiB, of which "
        f"{r['rss_before'] / mb:.0f} MiB interpreter and imports: the build added {grown / mb:.0f} MiB "
        f"= {grown / r['split_bytes']:.3f} x the split"
    )
    print(f"warm load: {r['warm_s'] * 1000:.1f} ms, memory map: {r['memmap']}")


if __name__ == "__main__":
    main()
