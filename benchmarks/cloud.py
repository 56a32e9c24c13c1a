"""Publishing to and loading from an S3-compatible server on 127.0.0.1, next to the floors.

Usage::

    python benchmarks/cloud.py [DATA] [--repeat N] [--doc docs/cloud.md]

``DATA`` is a folder with the four MNIST ``.gz`` files (default ``../shared/data/mnist`` beside the
repository); without it, MNIST-shaped synthetic files are made (sparse strokes, so they compress
like MNIST) and the page says so.  The S3 server is moto's (``pip install '.[test]'``), started in
this process on a free loopback port and stopped at the end; nothing leaves the machine.

Each figure is the median of ``--repeat`` runs (min-max beside it), timed in this process, the cases
taken in turn in every round so that all of them see the same background load:

* publish cold: ``mnistkit.mirror.publish`` of the four files to an empty bucket (verify the local
  files, upload, write the index), against the floor: ``s3fs.put_file`` of the same four files;
* publish again: everything already there (sizes, stamps and checksums match the index);
* publish over hand-copied files: no index, so each object is read back and compared;
* load cold from the S3 mirror: ``load_mnist`` into an empty data home with only that mirror
  (download, verify the decoded bytes, build the cache), against the floor: ``s3fs.cat_file`` of
  the four objects, and against the same load from ``mnistkit serve`` (HTTP) and from a folder;
* ``verify_mirror``: every byte of the mirror read and verified where it is.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def start_s3() -> tuple[object, str]:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import WSGIRequestHandler, make_server

    try:  # moto 5.2.5+ keeps underscores in S3 metadata header names (mnistkit sends none)
        from moto.moto_server.werkzeug_app import MotoRequestHandler as Handler
    except ImportError:  # older moto 5 (the declared floor): werkzeug's own handler serves as well
        Handler = WSGIRequestHandler

    class Quiet(Handler):
        def log_request(self, *args, **kwargs):
            pass

    httpd = make_server(
        "127.0.0.1", 0, DomainDispatcherApplication(create_backend_app), threaded=True, request_handler=Quiet
    )
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    host, port = httpd.server_address[:2]
    return httpd, f"http://{host}:{port}"


def synthetic_mnist(folder: Path) -> None:
    """MNIST-shaped files that compress like MNIST: mostly black, a few bright strokes per image."""
    from mnistkit.idx import encode_idx

    rng = np.random.default_rng(0)
    for name, n in (("train", 60000), ("t10k", 10000)):
        images = np.zeros((n, 28, 28), np.uint8)
        rows = rng.integers(4, 24, (n, 6))
        cols = rng.integers(4, 24, (n, 6))
        for k in range(6):
            images[np.arange(n)[:, None], rows[:, k : k + 1] + np.arange(3)[None, :], cols[:, k : k + 1]] = 255
        labels = rng.integers(0, 10, n).astype(np.uint8)
        (folder / f"{name}-images-idx3-ubyte.gz").write_bytes(gzip.compress(encode_idx(images), 6))
        (folder / f"{name}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(encode_idx(labels), 6))


def register(folder: Path):
    """The dataset the files are: mnist when they are the published files, else a dataset of their own."""
    import dataclasses
    import hashlib

    from mnistkit import registry
    from mnistkit.integrity import verify

    ds = registry.MNIST
    try:
        for name in NAMES:
            verify(folder / name, ds.file(name))
        return ds, True
    except Exception:
        from mnistkit.idx import read_idx

        files = []
        for spec in ds.files:  # shapes and checksums from the files themselves (tiny test data too)
            raw = gzip.decompress((folder / spec.name).read_bytes())
            files.append(
                dataclasses.replace(
                    spec,
                    shape=read_idx(raw).shape,
                    decoded_size=len(raw),
                    decoded_sha256="sha256:" + hashlib.sha256(raw).hexdigest(),
                    size=None,
                    sha256=None,
                    md5=None,
                )
            )
        ds = dataclasses.replace(ds, name="mnist-like", files=tuple(files), mirrors=())
        registry.DATASETS[ds.name] = ds
        return ds, False


def timed(fn, repeat: int, setup=None) -> list[float]:
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", default=str(HERE.parent.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--doc", help="write the Markdown page here")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="mnistkit-cloud-bench-"))
    src = Path(args.data)
    generated = not all((src / n).is_file() for n in NAMES)
    if generated:
        src = work / "synthetic"
        src.mkdir()
        synthetic_mnist(src)
    ds, real = register(src)
    what = (
        "the published MNIST files"
        if real
        else "MNIST-shaped synthetic files (the real ones were absent)"
        if generated
        else f"the files in {args.data} (not the published MNIST: registered as a dataset of their own)"
    )
    home = work / "home"
    (home / ds.folder).mkdir(parents=True)
    for name in NAMES:
        shutil.copy(src / name, home / ds.folder / name)
    total = sum((src / n).stat().st_size for n in NAMES)

    httpd, endpoint = start_s3()
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    from mnistkit import load_mnist
    from mnistkit.mirror import publish, verify_mirror
    from mnistkit.remote import filesystem
    from mnistkit.serve import MirrorServer

    fs, _ = filesystem("s3://x")
    counter = iter(range(10**6))
    state: dict = {}

    def fresh_bucket():
        state["bucket"] = f"bench{next(counter)}"
        fs.mkdir(state["bucket"])

    def hand_copied():
        fresh_bucket()
        for n in NAMES:
            fs.put_file(str(src / n), f"{state['bucket']}/m/{ds.folder}/{n}")

    def cat_all():
        client, _ = filesystem("s3://warm")  # a new client, as a cold load makes one
        for n in NAMES:
            client.cat_file(f"warm/m/{ds.folder}/{n}")

    def fresh_home():
        state["home"] = Path(tempfile.mkdtemp(dir=work))

    def load_from(mirror):
        return lambda: load_mnist(
            normalize=False, dataset=ds.name, data_home=state["home"], mirrors=[mirror], progress=False
        )

    fs.mkdir("warm")
    publish("s3://warm/m", [ds.name], data_home=home)
    server = MirrorServer(home, log=lambda line: None).start()  # quiet: this is a benchmark
    put, get = "s3fs.put_file of the 4 files (floor)", "s3fs.cat_file of the 4 objects, new client (floor)"
    # (label, setup, timed call, floor label)
    cases = [
        (
            put,
            fresh_bucket,
            lambda: [fs.put_file(str(src / n), f"{state['bucket']}/floor/{ds.folder}/{n}") for n in NAMES],
            None,
        ),
        (
            "publish, cold (verify, upload, index)",
            fresh_bucket,
            lambda: publish(f"s3://{state['bucket']}/m", [ds.name], data_home=home),
            put,
        ),
        (
            "publish again (all 4 already there: index and stamps match)",
            None,
            lambda: publish("s3://warm/m", [ds.name], data_home=home),
            put,
        ),
        (
            "publish over hand-copied files (no index: read back, compare)",
            hand_copied,
            lambda: publish(f"s3://{state['bucket']}/m", [ds.name], data_home=home),
            put,
        ),
        (get, None, cat_all, None),
        ("load_mnist cold, S3 mirror (download, verify, cache)", fresh_home, load_from("s3://warm/m"), get),
        ("load_mnist cold, `mnistkit serve` mirror (HTTP)", fresh_home, load_from(server.url), get),
        ("load_mnist cold, folder mirror", fresh_home, load_from(str(home)), get),
        (
            "verify_mirror of the S3 mirror (read and verify every byte)",
            None,
            lambda: verify_mirror("s3://warm/m", [ds.name]),
            get,
        ),
    ]
    # Round robin: every case sees the same background load over the run (this machine is shared).
    times: dict[str, list[float]] = {label: [] for label, *_ in cases}
    for _ in range(args.repeat):
        for label, setup, call, _floor in cases:
            times[label] += timed(call, 1, setup)
    medians = {label: statistics.median(t) for label, t in times.items()}
    rows = []
    for label, _setup, _call, floor in cases:
        t = times[label]
        rows.append((label, medians[label], min(t), max(t), medians[floor] if floor else None, ""))
        print(f"{label:62} {medians[label] * 1000:8.0f} ms  ({min(t) * 1000:.0f}-{max(t) * 1000:.0f})", flush=True)
    s3_load = medians["load_mnist cold, S3 mirror (download, verify, cache)"]
    http_load = medians["load_mnist cold, `mnistkit serve` mirror (HTTP)"]
    folder_load = medians["load_mnist cold, folder mirror"]
    server.shutdown()
    httpd.shutdown()
    shutil.rmtree(work, ignore_errors=True)

    if args.doc:
        write_doc(Path(args.doc), rows, what, total, args, s3_load, http_load, folder_load, ds)
    return 0


def write_doc(path: Path, rows, what: str, total: int, args, s3_load, http_load, folder_load, ds) -> None:
    import subprocess

    try:
        cpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        cpu = "?"
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    import fsspec
    import moto
    import s3fs

    decoded = sum(spec.decoded_size for spec in ds.files)
    lines = [
        "# Remote mirrors: publish and load against an S3-compatible server on 127.0.0.1",
        "",
        "Written by `python benchmarks/cloud.py --doc docs/cloud.md` (median of "
        f"{args.repeat} rounds, each case once per round in turn; min-max beside it; all in one process).",
        "",
        f"* data: {what}, {total / 1e6:.1f} MB in 4 `.gz` files ({decoded / 1e6:.0f} MB decoded)",
        f"* server: moto {moto.__version__} (S3 in Python, werkzeug) on 127.0.0.1; client s3fs {s3fs.__version__}, "
        f"fsspec {fsspec.__version__}",
        f"* machine: {cpu} cores, Python {platform.python_version()}, load average {load:.1f} when the run ended "
        "(a shared machine: compare ratios within this run, not across runs)",
        "",
        "| what | median | min-max | MB/s of `.gz` | vs floor |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, med, lo, hi, floor, _ in rows:
        ratio = f"{med / floor:.2f}x" if floor else "floor"
        rate = f"{total / 1e6 / med:.1f}"
        lines.append(f"| {label} | {med * 1000:.0f} ms | {lo * 1000:.0f}-{hi * 1000:.0f} ms | {rate} | {ratio} |")
    lines += [
        "",
        f"Cold load from S3 is {s3_load / http_load:.2f}x the same load from `mnistkit serve` and "
        f"{s3_load / folder_load:.2f}x the load from a folder mirror; the floor rows are the bare transfers "
        "with s3fs (no verification, no cache).",
        "",
        "What the figures include: `publish` verifies each local file's decoded bytes and hashes the file "
        "before uploading, then writes `index.json`; a cold `load_mnist` reads each object into "
        "`<file>.part`, verifies the decoded bytes, renames it and builds the `.npy` cache. moto is a "
        "Python server on loopback: the floor rows say nothing of the bandwidth of S3 or MinIO. What "
        "carries over to real storage is the cost mnistkit adds to the transfer (verification and the "
        "cache build, about the folder-mirror row; for publish, re-verifying the local files).",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
