"""A process that loads the synthetic dataset and can be stopped at any file-system event.

Run by tests/test_torture.py (and so by ``tools/reliability.py``)::

    python torture_child.py <data home> <mirror base URL> [--pause-at K | --pause-on TEXT [--nth N]]
                            [--threads N] [--wait]

Every file-system step the load takes inside the data home is an *event*, seen through
Python's audit hooks (open, rename, remove, mkdir, chmod, mmap) and a profile hook on every
``write`` call (so events land in the middle of a transfer and of a cache write, not only
between files).  Each event is labelled with the phase it belongs to: ``lock``, ``transfer``
(the ``.part`` file), ``verify`` (reading back and renaming the ``.part``) or ``cache``
(``.npy`` and manifest).  With ``--pause-at K`` the process prints ``PAUSE K <phase> <what>``
at event K and blocks, for the parent to SIGKILL it there (``--pause-on TEXT``: at the N-th event
whose ``"<phase> <what>"`` contains every ``|``-separated part of TEXT: the same step whatever the
interleaving of the files built in parallel); otherwise it prints one
``EVENTS <json>`` line (``"<phase> <what>"`` for every event) and ``DIGEST <sha256>`` of the arrays.
``--threads N`` loads from N threads at once; ``--wait`` prints ``READY`` and waits for a
line on stdin before loading, so that many processes can start together.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import make_synthetic

import mnistkit.idx
from mnistkit import load_mnist, registry


def digest(arrays) -> str:
    """SHA-256 over the bytes of every array, in order."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(a.tobytes())
    return h.hexdigest()


def phase_of(path: str, writing: bool) -> str:
    """Which step of a load touches ``path``."""
    if "/.locks/" in path:
        return "lock"
    if "/.cache/" in path:
        return "cache"
    if path.endswith((".part", ".part.json")):
        return "transfer" if writing or path.endswith(".json") else "verify"
    return "cache"  # the verified file, read back to build the cache entry


class Tracer:
    """Counts file-system events under ``home`` and pauses at one of them."""

    def __init__(self, home: str, pause_at: int | None, pause_on: str | None = None, nth: int = 1) -> None:
        self.home = home.rstrip("/") + "/"
        self.pause_at = pause_at
        self.pause_on = pause_on.split("|") if pause_on else None
        self.nth = nth
        self.phases: list[str] = []
        self.lock = threading.Lock()
        self.busy = threading.local()  # no events from inside the hook itself

    def event(self, phase: str, what: str) -> None:
        text = f"{phase} {what}"
        with self.lock:
            k = len(self.phases)
            self.phases.append(text)
            hit = k == self.pause_at
            if self.pause_on is not None and all(part in text for part in self.pause_on):
                self.nth -= 1
                hit = self.nth == 0
        if hit:
            sys.stdout.write(f"PAUSE {k} {phase} {what}\n")
            sys.stdout.flush()
            threading.Event().wait()  # until SIGKILL

    def audit(self, name: str, args: tuple) -> None:
        if getattr(self.busy, "on", False):
            return
        self.busy.on = True
        try:
            if name == "open" and isinstance(args[0], str) and args[0].startswith(self.home):
                mode, flags = args[1], args[2]
                writing = (mode is not None and any(c in mode for c in "wax+")) or bool(
                    flags & (os.O_WRONLY | os.O_RDWR)
                )
                self.event(phase_of(args[0], writing), f"open {args[0]}")
            elif name in ("os.rename", "os.remove", "os.mkdir", "os.chmod") and str(args[0]).startswith(self.home):
                self.event(phase_of(str(args[0]), False), f"{name} {args[0]}")
            elif name == "mmap.__new__" and self.phases:
                self.event(self.phases[-1].split()[0], "mmap")
        finally:
            self.busy.on = False

    def profile(self, frame, kind: str, arg) -> None:
        if kind != "c_return" or getattr(arg, "__name__", "") != "write" or getattr(self.busy, "on", False):
            return
        name = getattr(getattr(arg, "__self__", None), "name", None)
        if isinstance(name, int):  # os.fdopen: the file is known by its descriptor only
            try:
                name = os.readlink(f"/proc/self/fd/{name}")
            except OSError:
                return
        if isinstance(name, str) and name.startswith(self.home):
            self.busy.on = True
            try:
                self.event(phase_of(name, True), f"write {name}")
            finally:
                self.busy.on = False


def main() -> None:
    """Load the synthetic dataset from the mirror; see the module docstring."""
    parser = argparse.ArgumentParser()
    parser.add_argument("home")
    parser.add_argument("base")
    parser.add_argument("--pause-at", type=int)
    parser.add_argument("--pause-on")
    parser.add_argument("--nth", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--wait", action="store_true")
    args = parser.parse_args()
    ds = dataclasses.replace(make_synthetic().dataset, mirrors=(args.base,))
    registry.DATASETS[ds.name] = ds
    # Small decode chunks: the cache is written in many pieces, so kills land inside it.
    mnistkit.idx.CHUNK, mnistkit.idx._IN_CHUNK = 4096, 2048

    def load() -> str:
        (x, t), (xt, tt) = load_mnist(normalize=False, dataset=ds.name, data_home=args.home, progress=False)
        return digest((x, t, xt, tt))

    tracer = Tracer(str(Path(args.home).resolve()), args.pause_at, args.pause_on, args.nth)
    sys.addaudithook(tracer.audit)
    if not args.threads:
        sys.setprofile(tracer.profile)
        threading.setprofile(tracer.profile)
    if args.wait:
        print("READY", flush=True)
        sys.stdin.readline()
    if args.threads:
        results: list[str] = []
        start = threading.Barrier(args.threads)

        def worker() -> None:
            start.wait()  # every thread enters load_mnist at the same moment
            results.append(load())

        threads = [threading.Thread(target=worker) for _ in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == args.threads, "a thread failed"
        print("DIGEST " + " ".join(sorted(set(results))), flush=True)
        return
    result = load()
    print("EVENTS " + json.dumps(tracer.phases), flush=True)
    print("DIGEST " + result, flush=True)


if __name__ == "__main__":
    main()
