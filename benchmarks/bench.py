"""mnistkit side by side with what users would otherwise use, and with what the machine allows.

Usage::

    python benchmarks/bench.py [DATA] [--repeat N] [--cold-repeat N] [--venvs DIR] [--no-peers]
                               [--doc docs/benchmarks.md] [--json results.json]

``DATA`` is a folder with the four MNIST ``.gz`` files (default ``$MNISTKIT_BENCH_DATA``, else
``../shared/data/mnist`` beside the repository).  Every measurement runs ``probes.py`` in a fresh
child process: cold ones once per process with the cache emptied (``--cold-repeat`` processes), warm
ones ``--repeat`` times after one untimed call.  Peers run with the Python of their own virtual
environment, ``<venvs>/<peer>/bin/python`` (``--venvs``, default ``$MNISTKIT_BENCH_VENVS`` or
``/tmp/mnistkit-bench-venvs``); a missing environment or package is reported as "not installed".

The table (medians, min-max, ratios) goes to stdout; ``--doc`` also writes the Markdown page with the
machine, the command, the table, the targets and a bar chart (PNG beside it; needs matplotlib).
Files that are not the published MNIST (tiny test data) are registered as a dataset of their own.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import mnistkit

HERE = Path(__file__).resolve().parent
PROBES = HERE / "probes.py"
REPO = HERE.parent
STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
PEER_VENVS = ("idx2numpy", "python-mnist", "torch", "hf")
COMBOS = [  # (label, load_mnist options), the tutorial's positional order
    ("uint8", dict(normalize=False)),
    ("uint8, (N,1,28,28)", dict(normalize=False, flatten=False)),
    ("uint8, one-hot", dict(normalize=False, one_hot_label=True)),
    ("float32", dict(normalize=True)),
    ("float32, (N,1,28,28)", dict(normalize=True, flatten=False)),
    ("float32, one-hot", dict(normalize=True, one_hot_label=True)),
]


class Row:
    """One line of the table: a name, its group and per-run times (seconds, touch included)."""

    def __init__(self, group: str, name: str, result: dict):
        self.group, self.name = group, name
        self.missing = result.get("missing")
        self.total = result.get("total", [])
        self.call = result.get("call", [])
        self.peak_mb = result.get("peak_mb")
        self.version = result.get("version")

    @property
    def median(self) -> float:
        return statistics.median(self.total) if self.total else float("nan")

    @property
    def call_median(self) -> float:
        return statistics.median(self.call) if self.call else float("nan")


def run_probe(python: str, probe: str, cfg: dict) -> dict:
    """Run one probe in a fresh process; a failure is reported in the row, not raised."""
    if not Path(python).exists():
        return {"missing": f"no environment ({python})"}
    env = {**os.environ, "PYTHONHASHSEED": "0", "TQDM_DISABLE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([python, str(PROBES), probe, json.dumps(cfg)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"missing": "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def merge(results: list[dict]) -> dict:
    """Join the results of several one-run processes (cold runs) into one."""
    for r in results:
        if "missing" in r:
            return r
    return {
        "call": [c for r in results for c in r["call"]],
        "total": [t for r in results for t in r["total"]],
        "peak_mb": max(r["peak_mb"] for r in results),
        "version": results[0].get("version"),
    }


def prepare(data: Path, work: Path, log) -> tuple[dict, dict | None, int]:
    """Lay the files out for every loader; returns (paths, mnistkit registration or None, largest size)."""
    paths = {k: work / k for k in ("gz", "raw", "npy", "home", "torch", "hf", "keras")}
    for p in paths.values():
        p.mkdir(parents=True, exist_ok=True)
    files, largest = [], 0
    from mnistkit.idx import read_idx

    for stem in STEMS:
        src = data / (stem + ".gz")
        if not src.is_file():
            msg = f"{src} not found: pass the folder holding the four MNIST .gz files"
            raise SystemExit(msg)
        shutil.copyfile(src, paths["gz"] / src.name)
        decoded = gzip.decompress(src.read_bytes())
        (paths["raw"] / stem).write_bytes(decoded)
        array = read_idx(decoded)
        np.save(paths["npy"] / (stem + ".npy"), array)
        largest = max(largest, len(decoded))
        files.append(
            {
                "name": src.name,
                "shape": list(array.shape),
                "decoded_size": len(decoded),
                "decoded_sha256": "sha256:" + hashlib.sha256(decoded).hexdigest(),
            }
        )
    (paths["home"] / "mnist").mkdir(exist_ok=True)
    from mnistkit.registry import get_dataset

    published = {f.name: f.decoded_sha256 for f in get_dataset("mnist").files}
    register = None
    dataset = "mnist"
    if any(published.get(f["name"]) != f["decoded_sha256"] for f in files):
        log(f"note: {data} is not the published MNIST; registering it as dataset 'bench-data'")
        register = {"name": "bench-data", "files": files}
        dataset = "bench-data"
    for stem in STEMS:
        (paths["home"] / dataset).mkdir(exist_ok=True)
        shutil.copyfile(paths["gz"] / (stem + ".gz"), paths["home"] / dataset / (stem + ".gz"))
    arrays = {s: np.load(paths["npy"] / (s + ".npy")) for s in STEMS}
    np.savez_compressed(
        paths["keras"] / "mnist.npz",
        x_train=arrays[STEMS[0]],
        y_train=arrays[STEMS[1]],
        x_test=arrays[STEMS[2]],
        y_test=arrays[STEMS[3]],
    )
    return paths, register, largest


def measure(args, log) -> tuple[list[Row], dict]:
    """Run every probe; returns the rows and facts for the targets."""
    data = Path(args.data).resolve()
    work = Path(tempfile.mkdtemp(prefix="mnistkit-bench-"))
    me = sys.executable
    # An installed package has its bytecode compiled by pip; an editable checkout (and an environment with
    # PYTHONDONTWRITEBYTECODE=1) would otherwise recompile every module in every fresh child process and
    # charge that to import and cold-load times.
    subprocess.run([me, "-m", "compileall", "-q", str(Path(mnistkit.__file__).parent)], check=True)
    venvs = Path(args.venvs)
    rows: list[Row] = []
    try:
        paths, register, largest = prepare(data, work, log)
        gz, reps, cold_reps = str(paths["gz"]), args.repeat, args.cold_repeat
        base = {"repeat": reps, "register": register, "home": str(paths["home"])}

        def add(group, name, result):
            rows.append(Row(group, name, result))
            r = rows[-1]
            log(
                f"  {group:9} {name:38} "
                + (f"not installed ({r.missing})" if r.missing else f"{1e3 * r.median:9.1f} ms")
            )

        def cold(python, probe, cfg):
            return merge([run_probe(python, probe, cfg) for _ in range(cold_reps)])

        log("measuring (medians so far):")

        def add_combos(group, result):
            for label, _ in COMBOS:
                add(group, "warm: " + label, result if "missing" in result else result["combos"][label])

        add("mnistkit", "cold: .gz -> verified cache + uint8", cold(me, "mnistkit_cold", base))
        add_combos("mnistkit", run_probe(me, "mnistkit_warm", {**base, "combos": COMBOS}))

        pkl = str(work / "tutorial.pkl")
        add("tutorial", "cold: .gz -> pickle + uint8", cold(me, "tutorial_cold", {"gz": gz, "pickle": pkl}))
        add_combos("tutorial", run_probe(me, "tutorial_warm", {"pickle": pkl, "combos": COMBOS, "repeat": reps}))
        npz = paths["keras"] / "mnist.npz"
        sha = hashlib.sha256(npz.read_bytes()).hexdigest()
        add(
            "keras",
            "npz: hash check + np.load",
            run_probe(me, "keras_npz", {"npz": str(npz), "sha256": sha, "cold": False, "repeat": reps}),
        )
        if not args.no_peers:
            py = {name: str(venvs / name / "bin" / "python") for name in PEER_VENVS}
            add(
                "idx2numpy",
                "cold: .gz -> uint8 (no cache)",
                cold(py["idx2numpy"], "idx2numpy", {"gz": gz, "cold": True}),
            )
            add(
                "python-mnist",
                "cold: .gz -> uint8 (no cache)",
                cold(py["python-mnist"], "python_mnist", {"gz": gz, "cold": True}),
            )
            tv = {"gz": gz, "root": str(paths["torch"]), "repeat": reps}
            add("torchvision", "cold: extract .gz + read", cold(py["torch"], "torchvision", {**tv, "cold": True}))
            add("torchvision", "warm: MNIST(root)", run_probe(py["torch"], "torchvision", {**tv, "cold": False}))
            hf = {"gz": gz, "parquet": str(paths["hf"]), "cache": str(work / "hf-cache"), "repeat": max(1, reps // 3)}
            setup = run_probe(py["hf"], "hf_setup", hf)
            if "missing" in setup:
                add("datasets", "cold: parquet -> arrow -> numpy", setup)
                add("datasets", "warm: arrow cache -> numpy", setup)
            else:
                add(
                    "datasets",
                    "cold: parquet -> arrow -> numpy",
                    merge([run_probe(py["hf"], "hf", {**hf, "cold": True}) for _ in range(max(1, cold_reps // 2))]),
                )
                add("datasets", "warm: arrow cache -> numpy", run_probe(py["hf"], "hf", {**hf, "cold": False}))

        floors = run_probe(me, "floors", {"raw": str(paths["raw"]), "npy": str(paths["npy"]), "gz": gz, "repeat": reps})
        labels = {
            "fromfile": "np.fromfile of the decoded files",
            "npy_mmap": "memory-mapped .npy (not touched)",
            "alloc_write_f32": "allocate + write the float32 output",
            "sha256": "SHA-256 of the decoded bytes",
        }
        for key, result in floors.items():
            add("floor", labels.get(key, key), result)
        add("import", "import numpy", import_time(me, "import numpy", reps))
        add("import", "import numpy, mnistkit", import_time(me, "import numpy, mnistkit", reps))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows, {"largest": largest, "data": shown_path(data)}


def import_time(python: str, statement: str, repeat: int) -> dict:
    """Wall time of a fresh interpreter running ``statement`` (startup included; compare two rows)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([python, "-c", statement], check=True)
        times.append(time.perf_counter() - t0)
    return {"call": times, "total": times, "peak_mb": None}


# --- targets, table, document ----------------------------------------------------------------


def find(rows: list[Row], group: str, prefix: str) -> Row | None:
    for r in rows:
        if r.group == group and r.name.startswith(prefix) and not r.missing:
            return r
    return None


def targets(rows: list[Row], facts: dict) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for every target of issue 4 that this run can judge."""
    out = []
    ms = lambda s: f"{1e3 * s:.1f} ms"  # noqa: E731
    warm8, f32 = find(rows, "mnistkit", "warm: uint8"), find(rows, "mnistkit", "warm: float32")
    fromfile, alloc = find(rows, "floor", "np.fromfile"), find(rows, "floor", "allocate")
    cold = find(rows, "mnistkit", "cold")
    gunzips = [r for r in rows if r.group == "floor" and r.name.startswith("gunzip") and not r.missing]
    if warm8:
        out.append(("warm uint8 call <= 2 ms", ms(warm8.call_median), warm8.call_median <= 0.002))
    if warm8 and fromfile:
        ratio = warm8.median / fromfile.median
        out.append(("warm uint8, touched, <= 1.2x np.fromfile", f"{ratio:.2f}x", ratio <= 1.2))
    if f32 and alloc:
        ratio = f32.median / alloc.median
        out.append(("warm float32, touched, <= 1.3x allocate+write", f"{ratio:.2f}x", ratio <= 1.3))
    if cold and gunzips:
        best = min(gunzips, key=lambda r: r.median)
        ratio = cold.median / best.median
        out.append((f"cold <= 1.5x fastest gunzip ({best.name[8:]})", f"{ratio:.2f}x", ratio <= 1.5))
        peers = [
            r
            for r in rows
            if r.group not in ("mnistkit", "floor", "import")
            and not r.missing
            and (r.name.startswith("cold") or r.group == "keras")
        ]
        if peers:
            fastest = min(peers, key=lambda r: r.median)
            out.append(
                (
                    f"cold faster than every peer's (fastest: {fastest.group})",
                    f"{fastest.median / cold.median:.2f}x faster",
                    cold.median < fastest.median,
                )
            )
    if cold and cold.peak_mb is not None:
        limit = 1.5 * facts["largest"] / 2**20
        out.append(
            (
                f"cold peak memory < 1.5x largest decoded file ({limit:.0f} MiB)",
                f"{cold.peak_mb:.0f} MiB",
                cold.peak_mb < limit,
            )
        )
    numpy_row, both = find(rows, "import", "import numpy"), find(rows, "import", "import numpy, mnistkit")
    if numpy_row and both:
        extra = both.median - numpy_row.median
        out.append(("import mnistkit <= import numpy + 30 ms", f"+{ms(extra)}", extra <= 0.030))
    return out


def table(rows: list[Row]) -> str:
    """Markdown table: median and min-max (touch included), ratios to mnistkit and to the floor."""
    ref = {"cold": find(rows, "mnistkit", "cold")}
    for label, _ in COMBOS:
        ref[label] = find(rows, "mnistkit", "warm: " + label)
    floor_ref = {"uint8": find(rows, "floor", "np.fromfile"), "float32": find(rows, "floor", "allocate")}
    gunzips = [r for r in rows if r.group == "floor" and r.name.startswith("gunzip") and not r.missing]
    floor_ref["cold"] = min(gunzips, key=lambda r: r.median) if gunzips else None
    lines = [
        "| loader | measurement | median | min-max | peak MiB | x mnistkit | x floor |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = r.group + (f" {r.version}" if r.version else "")
        if r.missing:
            lines.append(f"| {name} | {r.name} | not installed | {r.missing} | | | |")
            continue
        kind = "cold" if r.name.startswith("cold") or r.group in ("keras", "idx2numpy", "python-mnist") else None
        label = r.name.split(": ", 1)[1] if r.name.startswith("warm: ") else None
        mk = ref.get(label) if label in ref else (ref["cold"] if kind == "cold" else None)
        fl = floor_ref.get("cold" if kind == "cold" else (label or "").split(",")[0])
        ratio_mk = f"{r.median / mk.median:.2f}" if mk and r.group != "mnistkit" else ""
        ratio_fl = f"{r.median / fl.median:.2f}" if fl and r.group not in ("floor", "import") else ""
        peak = f"{r.peak_mb:.0f}" if r.peak_mb is not None and r.group != "import" else ""
        lines.append(
            f"| {name} | {r.name} | {1e3 * r.median:.1f} ms | {1e3 * min(r.total):.1f}-"
            f"{1e3 * max(r.total):.1f} | {peak} | {ratio_mk} | {ratio_fl} |"
        )
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    except OSError:
        mem = float("nan")
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, NumPy {np.__version__}; load average at the end "
        f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())} (other jobs share the machine)"
    )


def chart(rows: list[Row], png: Path) -> bool:
    """Horizontal bars of the medians (log scale: 1 ms to seconds on one axis)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    shown = [r for r in rows if not r.missing and r.group != "import"]
    colours = {"mnistkit": "#1f77b4", "floor": "#7f7f7f"}
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(shown) + 1.2))
    ax.barh(range(len(shown)), [1e3 * r.median for r in shown], color=[colours.get(r.group, "#ff7f0e") for r in shown])
    ax.set_yticks(range(len(shown)), [f"{r.group}: {r.name}" for r in shown], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("median time, ms (log scale; every element touched unless noted)")
    ax.set_title("Loading MNIST: mnistkit (blue), peers (orange), machine floors (grey)", fontsize=9)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return True


def shown_path(path: Path) -> str:
    """``path`` as the report may print it: relative to the repository's parent, never a machine path."""
    try:
        return os.path.relpath(Path(path).resolve(), REPO)
    except ValueError:  # another drive (Windows)
        return Path(path).name


def document(rows, facts, doc: Path, command: str) -> None:
    png = doc.with_suffix(".png")
    has_chart = chart(rows, png)
    goals = "\n".join(f"| {t} | {m} | {'met' if ok else 'NOT met'} |" for t, m, ok in targets(rows, facts))
    text = f"""# Benchmarks

Generated by `benchmarks/bench.py`; table, targets and chart below come from the same run.

- Machine: {machine()}
- Data: the four MNIST `.gz` files in `{facts["data"]}`
- Date: {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
- Regenerate: `{command}`

Every loader reads the same files; each row runs in a fresh child process. *Cold* rows start from the
`.gz` files with every cache emptied (one process per run); *warm* rows time repeated calls after one
untimed call. Times include touching every element of the result once (a vectorised `max`), so a lazy
memory map does not pass for speed; the `call` time alone is in the JSON output. *Peak MiB* is the
growth of the process's peak resident memory during the timed calls. Ratios: median over mnistkit's
median for the same measurement, and over the matching floor (`np.fromfile` for uint8 loads,
allocate+write for float32 loads, the fastest gunzip for cold loads).

{table(rows)}

{f"![bar chart of the medians]({png.name})" if has_chart else "(chart not drawn: matplotlib is not installed)"}

## Targets (issue 4)

| target | measured | verdict |
|---|---|---|
{goals}

## How the peers are run

- **tutorial**: the classic `dataset/mnist.py` helper of *Deep Learning from Scratch*, its logic verbatim
  (gzip + `np.frombuffer`, a pickle cache, `astype(float32)` then `/= 255.0`, a Python loop for one-hot).
- **keras**: what `keras.datasets.mnist.load_data` does once `mnist.npz` is in `~/.keras/datasets`:
  SHA-256 of the file in 65,535-byte chunks (`validate_file`), then `np.load` of the four arrays from a
  compressed `.npz` (written here from the same files). Reproduced rather than imported: Keras needs a
  backend framework and would try to download its own `.npz`, whose hash pins other bytes.
- **idx2numpy**, **python-mnist** (`return_type="numpy", gz=True`): no cache, so every load is cold.
- **torchvision**: `torchvision.datasets.MNIST(root, download=False)` with the files in place; cold
  extracts the `.gz` files first with `extract_archive`, as `download=True` does after fetching.
- **datasets** (Hugging Face): MNIST as the hub stores it, PNG images and class labels in Parquet, written
  from the same files; cold is `load_dataset("parquet", ...)` into an empty cache, warm reuses the Arrow
  cache; both decode the images to NumPy with `with_format("numpy")`.
- Peers live in their own virtual environments (`--venvs`), never in mnistkit's or in CI.
"""
    doc.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    default_data = os.environ.get("MNISTKIT_BENCH_DATA") or str(REPO.parent / "shared" / "data" / "mnist")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", nargs="?", default=default_data, help="folder with the four MNIST .gz files")
    p.add_argument("--repeat", type=int, default=9, help="timed calls per warm measurement (default 9)")
    p.add_argument("--cold-repeat", type=int, default=5, help="fresh processes per cold measurement (default 5)")
    p.add_argument(
        "--venvs",
        default=os.environ.get("MNISTKIT_BENCH_VENVS", "/tmp/mnistkit-bench-venvs"),
        help="folder of the peers' virtual environments: idx2numpy, python-mnist, torch, hf",
    )
    p.add_argument("--no-peers", action="store_true", help="skip the peers that need their own environment")
    p.add_argument("--doc", type=Path, help="write this Markdown page (and its PNG chart beside it)")
    p.add_argument("--json", type=Path, help="write the raw per-run times here")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.cold_repeat < 1:
        p.error("--repeat and --cold-repeat must be at least 1")
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    rows, facts = measure(args, log)
    print(table(rows))
    print()
    for target, measured, ok in targets(rows, facts):
        print(f"{'met    ' if ok else 'NOT MET'}  {target}: {measured}")
    if args.doc:
        command = "python benchmarks/bench.py " + " ".join(a for a in (argv or sys.argv[1:]))
        document(rows, facts, args.doc, command.strip())
    if args.json:
        args.json.write_text(json.dumps({"facts": facts, "rows": [vars(r) for r in rows]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
