"""`mnistkit serve` with a room of clients at once: throughput, memory, Range, idle connections.

Usage::

    python benchmarks/serve_load.py [DATA] [--clients 200] [--repeat 3] [--doc docs/serve.md]

``DATA`` is a folder with the four MNIST ``.gz`` files (default ``../shared/data/mnist`` beside the
repository; without it, random files of the same sizes stand in).  Everything runs on 127.0.0.1 and
stops by itself.  For each server (mnistkit serve; ``python -m http.server``, what one would otherwise
start; nginx with one worker, when installed, as the "real web server" of the README):

* **Load**: ``--clients`` clients start at the same instant (one barrier across 4 client processes);
  each downloads the four files and checks every byte (SHA-256 against the originals).  Every other
  client *resumes*: it takes the first 40 % of each file with ``Range: bytes=0-N``, then the rest
  with ``Range: bytes=N-`` and ``If-Range``, as mnistkit's downloader does after an interruption.
  Reported: wall time from the barrier to the last byte, aggregate throughput, per-client times,
  the server's resident memory before and at its peak (``VmHWM``), its thread count and CPU time.
* **Idle**: 1,000 connections that send half a request head and wait; reported: the server's
  memory and threads while they are held, whether a normal client is still served byte-exact, and
  whether the server releases them (waited for up to the header timeout + 10 s).

Timings depend on the machine and on whatever else runs on it; the load average is recorded.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import multiprocessing as mp
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
SIZES = (9912422, 28881, 1648877, 4542)  # the published MNIST files, for stand-ins
WORKERS = 4
IDLE = 1000
HEADER_TIMEOUT = 5.0  # mnistkit serve's --header-timeout in these runs (default 10)


# --- servers -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"the server exited with {proc.returncode}"
            raise RuntimeError(msg)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    msg = "the server did not listen in time"
    raise RuntimeError(msg)


class Peer:
    """One server under test, started over ``root`` (which holds ``mnist/<files>``)."""

    def __init__(self, name: str, root: Path, tmp: Path) -> None:
        self.name, self.root, self.tmp = name, root, tmp
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self.missing: str | None = None
        self.pid: int | None = None

    def argv(self) -> list[str] | None:
        if self.name == "mnistkit serve":
            return [
                sys.executable,
                "-m",
                "mnistkit",
                "--data-home",
                str(self.root),
                "serve",
                "--port",
                str(self.port),
                "--header-timeout",
                str(HEADER_TIMEOUT),
            ]
        if self.name == "python -m http.server":
            return [
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "--directory",
                str(self.root),
                str(self.port),
            ]
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if nginx is None:
            self.missing = "not installed"
            return None
        conf = self.tmp / "nginx.conf"
        temp = self.tmp / "nginx-temp"
        temp.mkdir(exist_ok=True)
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(
            textwrap.dedent(f"""\
            {user}
            worker_processes 1;
            error_log {self.tmp}/nginx-error.log;
            pid {self.tmp}/nginx.pid;
            events {{ worker_connections 4096; }}
            http {{
                access_log off; sendfile on; tcp_nopush on;
                client_body_temp_path {temp}/b; proxy_temp_path {temp}/p; fastcgi_temp_path {temp}/f;
                uwsgi_temp_path {temp}/u; scgi_temp_path {temp}/s;
                client_header_timeout {HEADER_TIMEOUT:g}s;
                server {{ listen 127.0.0.1:{self.port}; root {self.root}; location / {{ }} }}
            }}
        """)
        )
        return [nginx, "-p", str(self.tmp), "-c", str(conf), "-g", "daemon off;"]

    def __enter__(self) -> Peer:
        argv = self.argv()
        if argv is None:
            return self
        self.log = open(self.tmp / f"{self.name.split()[0]}-{self.port}.log", "w")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.log)
        _wait_listening(self.port, self.proc)
        self.pid = self.proc.pid
        if self.name.startswith("nginx"):  # measure the worker, which serves; the master only supervises
            kids = _children(self.proc.pid)
            self.pid = kids[0] if kids else self.proc.pid
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.log.close()


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (kB) and Threads of a process, from /proc."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = int(value.split()[0])
    return out


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# --- clients ---------------------------------------------------------------------------------------


def _download(port: int, path: str, headers: dict) -> tuple[int, bytes, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(), dict(resp.headers)
    finally:
        conn.close()


def _client(port: int, files: dict[str, tuple[int, str]], resume: bool) -> dict:
    """Download every file once (resuming ones in two Range requests); check each against its SHA-256."""
    begun = time.monotonic()
    exact, statuses, nbytes, ranges_ok = 0, [], 0, True
    for name, (size, digest) in files.items():
        path = f"/mnist/{name}"
        if resume:
            cut = max(1, int(size * 0.4))
            st1, first, h = _download(port, path, {"Range": f"bytes=0-{cut - 1}"})
            extra = {"Range": f"bytes={len(first)}-"}
            if "ETag" in h:
                extra["If-Range"] = h["ETag"]
            st2, rest, _ = _download(port, path, extra)
            statuses += [st1, st2]
            ranges_ok &= (st1, st2) == (206, 206)
            blob = first + rest if st2 == 206 else rest  # a server ignoring Range sends it all again
        else:
            st, blob, _ = _download(port, path, {})
            statuses.append(st)
        nbytes += len(blob)
        exact += len(blob) == size and hashlib.sha256(blob).hexdigest() == digest
    return {
        "time": time.monotonic() - begun,
        "end": time.monotonic(),
        "exact": exact,
        "statuses": statuses,
        "bytes": nbytes,
        "resume": resume,
        "ranges_ok": ranges_ok,
    }


def _worker(port: int, files: dict, ids: list[int], ready, go, out) -> None:
    results: list[dict] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        go.wait()
        try:
            r = _client(port, files, resume=bool(i % 2))
        except Exception as err:
            r = {"error": repr(err), "end": time.monotonic(), "resume": bool(i % 2)}
        with lock:
            results.append(r)

    threads = [threading.Thread(target=run, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    ready.put(len(threads))
    for t in threads:
        t.join()
    out.put(results)


def load_run(port: int, pid: int, files: dict, clients: int) -> dict:
    """``clients`` clients at once against the server on ``port``; the server's figures from ``pid``."""
    ctx = mp.get_context("fork")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    groups = [list(range(w, clients, WORKERS)) for w in range(WORKERS)]
    procs = [ctx.Process(target=_worker, args=(port, files, ids, ready, go, out)) for ids in groups]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=60)
    before = _status(pid)
    cpu0 = _cpu_seconds(pid)
    peak_threads, stop = [before["Threads"]], threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            try:
                peak_threads.append(_status(pid)["Threads"])
            except (OSError, KeyError):
                return

    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.monotonic()
    go.set()
    results = [r for _ in procs for r in out.get(timeout=600)]
    for p in procs:
        p.join()
    stop.set()
    sampler.join()
    after = _status(pid)
    ok = [r for r in results if "error" not in r]
    wall = max(r["end"] for r in results) - t0
    total = sum(r["bytes"] for r in ok)
    times = sorted(r["time"] for r in ok)
    return {
        "clients": clients,
        "failed": len(results) - len(ok),
        "exact": sum(r["exact"] == len(files) for r in ok),
        "range_clients": sum(r["resume"] for r in results),
        "range_honoured": sum(r["resume"] and r.get("ranges_ok", False) for r in results),
        "statuses": sorted({s for r in ok for s in r["statuses"]}),
        "wall": wall,
        "bytes": total,
        "mb_s": total / wall / 1e6,
        "p50": statistics.median(times) if times else float("nan"),
        "p95": times[int(0.95 * (len(times) - 1))] if times else float("nan"),
        "max": times[-1] if times else float("nan"),
        "rss_before_mb": before["VmRSS"] / 1024,
        "rss_peak_mb": after["VmHWM"] / 1024,
        "threads_peak": max(peak_threads),
        "cpu_s": _cpu_seconds(pid) - cpu0,
        "errors": sorted({r["error"] for r in results if "error" in r})[:3],
    }


def idle_run(port: int, pid: int, files: dict) -> dict:
    """1,000 half-open connections: memory and threads while held, a normal client, release."""
    base_fds = _fds(pid)
    socks = []
    try:
        for _ in range(IDLE):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(b"GET /mnist/train-labels-idx1-ubyte.gz HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        deadline = time.monotonic() + 30
        while _fds(pid) < base_fds + IDLE and time.monotonic() < deadline:
            time.sleep(0.05)
        held = _status(pid)
        held_fds = _fds(pid) - base_fds
        begun = time.monotonic()
        try:
            normal = all(_client(port, {name: files[name]}, resume=False)["exact"] == 1 for name in files)
        except OSError:
            normal = False
        normal_s = time.monotonic() - begun
        deadline = time.monotonic() + HEADER_TIMEOUT + 10
        while _fds(pid) > base_fds + 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        released = _fds(pid) <= base_fds + 2
        after = _status(pid)
    finally:
        for s in socks:
            s.close()
    return {
        "held": held_fds,
        "rss_mb": held["VmRSS"] / 1024,
        "threads": held["Threads"],
        "normal_ok": normal,
        "normal_s": normal_s,
        "released": released,
        "threads_after": after["Threads"],
        "waited_s": HEADER_TIMEOUT + 10,
    }


# --- the page --------------------------------------------------------------------------------------


def _machine() -> str:
    import numpy as np  # noqa: F401 - only to report the same machine line as bench.py

    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def render(runs: dict[str, list[dict]], idle: dict[str, dict], args, data_note: str, load_end: str, date: str) -> str:
    import mnistkit

    lines = [
        "# `mnistkit serve` under load",
        "",
        "Generated by `benchmarks/serve_load.py`; every figure below comes from the run described here.",
        "",
        f"- Machine: {_machine()}; load average at the end {load_end} (other jobs share the machine; the "
        f"clients run on the same {os.cpu_count()} cores as the server)",
        f"- mnistkit {mnistkit.__version__}; data: {data_note}",
        f"- Date: {date}",
        f"- Regenerate: `python benchmarks/serve_load.py --clients {args.clients} --repeat {args.repeat} "
        "--doc docs/serve.md`",
        "",
        f"## {args.clients} clients at once",
        "",
        f"{args.clients} clients start together (4 client processes, one thread per client); each downloads "
        "the four MNIST files and checks them byte for byte (SHA-256). Every other client resumes: the "
        "first 40 % of each file with `Range: bytes=0-N`, the rest with `Range: bytes=N-` and `If-Range`. "
        f"Median of {args.repeat} runs per server (min-max in brackets); *RSS* is the server's resident "
        "memory before the run and its peak (`VmHWM`, the whole life of the process); *CPU* the server's "
        "CPU seconds during the run. nginx runs one worker process (mnistkit serve is one thread).",
        "",
        "| server | byte-exact clients | Range honoured | wall s | MB/s | x mnistkit | client p50 / p95 / max s "
        "| RSS before -> peak MiB | peak threads | server CPU s |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    ref = None
    for name, rs in runs.items():
        if not rs:
            lines.append(f"| {name} | not installed | | | | | | | | |")
            continue
        med = {k: statistics.median(r[k] for r in rs) for k in ("wall", "mb_s", "p50", "p95", "max", "cpu_s")}
        if ref is None:
            ref = med["mb_s"]
        lo, hi = min(r["exact"] for r in rs), max(r["exact"] for r in rs)
        exact = f"{lo}/{rs[0]['clients']}" if lo == hi else f"{lo}-{hi}/{rs[0]['clients']}"
        honoured = f"{min(r['range_honoured'] for r in rs)}/{rs[0]['range_clients']}"
        mbs = [r["mb_s"] for r in rs]
        lines.append(
            f"| {name} | {exact} | {honoured} | {med['wall']:.2f} | {med['mb_s']:.0f} ({min(mbs):.0f}-{max(mbs):.0f}) "
            f"| {med['mb_s'] / ref:.2f} | {med['p50']:.2f} / {med['p95']:.2f} / {med['max']:.2f} "
            f"| {min(r['rss_before_mb'] for r in rs):.0f} -> {max(r['rss_peak_mb'] for r in rs):.0f} "
            f"| {max(r['threads_peak'] for r in rs)} | {med['cpu_s']:.2f} |"
        )
    lines.append("")
    for name, rs in runs.items():
        failed = sum(r["failed"] for r in rs)
        if failed:
            kinds = sorted({e for r in rs for e in r["errors"]})
            lines.append(
                f"- {name}: {failed} client(s) failed over the {len(rs)} runs ({'; '.join(kinds)}; the "
                "clients' socket timeout is 120 s); its MB/s counts the clients that finished."
            )
    cpu = {n: statistics.median(r["cpu_s"] / (r["bytes"] / 1e9) for r in rs) for n, rs in runs.items() if rs}
    lines += [
        "- Server CPU per GB delivered: " + ", ".join(f"{n} {v:.2f} s" for n, v in cpu.items()) + ". The clients "
        "(Python, SHA-256 of every byte) share the cores with the server, so wall time and MB/s are bounded by "
        "them as much as by the server; the CPU column is the server's own cost. A client's time starts when "
        "its thread first runs, so under load the wall time can exceed the slowest client's time.",
        "- mnistkit serve's threads: the one serving thread, its log writer, and NumPy's BLAS thread started at "
        "import; none per client.",
    ]
    lines += [
        "",
        f"Transferred per run: {runs['mnistkit serve'][0]['bytes'] / 1e9:.2f} GB "
        f"(HTTP statuses seen by mnistkit's clients: {', '.join(map(str, runs['mnistkit serve'][0]['statuses']))}).",
        "A server that ignores Range answers 200 with the whole file, so its resuming clients download "
        "the first 40 % twice (counted in its MB/s).",
        "",
        f"## {IDLE} half-open connections",
        "",
        f"{IDLE} connections each send half a request head and wait. Then a normal client downloads the four "
        f"files; then we wait up to {HEADER_TIMEOUT + 10:g} s for the server to let the idle ones go (mnistkit "
        f"serve ran with `--header-timeout {HEADER_TIMEOUT:g}`, nginx with `client_header_timeout "
        f"{HEADER_TIMEOUT:g}s`).",
        "",
        "| server | connections held | RSS while held MiB | threads while held | normal client byte-exact "
        "| its time s | released | threads after |",
        "|---|---:|---:|---:|---|---:|---|---:|",
    ]
    for name, r in idle.items():
        if r is None:
            lines.append(f"| {name} | not installed | | | | | | |")
            continue
        lines.append(
            f"| {name} | {r['held']} | {r['rss_mb']:.0f} | {r['threads']} | {'yes' if r['normal_ok'] else 'NO'} "
            f"| {r['normal_s']:.2f} "
            f"| {'yes' if r['released'] else 'no, still held after ' + format(r['waited_s'], 'g') + ' s'} "
            f"| {r['threads_after']} |"
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--servers", default="mnistkit,http.server,nginx", help="comma-separated: mnistkit, http.server, nginx"
    )
    parser.add_argument("--doc", help="write the Markdown page here")
    parser.add_argument("--json", help="write the raw results here")
    parser.add_argument("--from-json", metavar="FILE", help="only render the page from results saved by --json")
    args = parser.parse_args(argv)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        args.clients, args.repeat = saved["meta"]["clients"], saved["meta"]["repeat"]
        page = render(
            saved["load"],
            saved["idle"],
            args,
            saved["meta"]["data_note"],
            saved["meta"]["load_end"],
            saved["meta"]["date"],
        )
        print(page)
        if args.doc:
            Path(args.doc).write_text(page)
        return 0

    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))

    with tempfile.TemporaryDirectory(prefix="mnistkit-serve-load-") as tmpdir:
        tmp = Path(tmpdir)
        os.chmod(tmp, 0o755)  # nginx's worker may run as another user
        root = tmp / "root"
        (root / "mnist").mkdir(parents=True)
        src = Path(args.data)
        if all((src / n).is_file() for n in NAMES):
            for n in NAMES:
                shutil.copyfile(src / n, root / "mnist" / n)
            data_note = f"the four MNIST `.gz` files from `{src}`"
        else:
            for n, size in zip(NAMES, SIZES, strict=True):
                (root / "mnist" / n).write_bytes(os.urandom(size))
            data_note = "random files of the four MNIST `.gz` sizes (the real files were not found)"
        files = {}
        for n in NAMES:
            blob = (root / "mnist" / n).read_bytes()
            files[n] = (len(blob), hashlib.sha256(blob).hexdigest())

        wanted = {"mnistkit": "mnistkit serve", "http.server": "python -m http.server", "nginx": "nginx (1 worker)"}
        names = [wanted[s.strip()] for s in args.servers.split(",")]
        runs: dict[str, list[dict]] = {n: [] for n in names}
        idle: dict[str, dict | None] = {}
        for name in names:
            for rep in range(args.repeat):
                with Peer(name, root, tmp) as peer:  # a fresh server per run: VmHWM is that run's peak
                    if peer.proc is None:
                        break
                    r = load_run(peer.port, peer.pid, files, args.clients)
                    runs[name].append(r)
                    print(
                        f"{name} run {rep + 1}: {r['exact']}/{r['clients']} exact, {r['wall']:.2f} s, "
                        f"{r['mb_s']:.0f} MB/s, peak RSS {r['rss_peak_mb']:.0f} MiB, "
                        f"threads {r['threads_peak']} {r['errors']}",
                        flush=True,
                    )
            with Peer(name, root, tmp) as peer:
                if peer.proc is None:
                    idle[name] = None
                    continue
                idle[name] = r = idle_run(peer.port, peer.pid, files)
                print(f"{name} idle: {r}", flush=True)
        load_end = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        page = render(runs, idle, args, data_note, load_end, date)
        print(page)
        if args.doc:
            Path(args.doc).write_text(page)
        if args.json:
            meta = {
                "clients": args.clients,
                "repeat": args.repeat,
                "data_note": data_note,
                "load_end": load_end,
                "date": date,
            }
            Path(args.json).write_text(json.dumps({"meta": meta, "load": runs, "idle": idle}, indent=1))
    mine = runs.get("mnistkit serve") or []
    return 0 if all(r["exact"] == r["clients"] and r["range_honoured"] == r["range_clients"] for r in mine) else 1


if __name__ == "__main__":
    sys.exit(main())
