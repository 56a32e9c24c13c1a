"""Crash and concurrency torture: SIGKILL at many points of a cold load; many loaders at once.

The loads run in real subprocesses (tests/torture_child.py) against one loopback server.
A kill point is the K-th file-system event of a cold load (an open, a write, a rename, ...),
chosen from a fixed seed and spread over the lock, transfer, verification and cache phases;
the child reports reaching it and blocks there, so the kill lands exactly there, no sleeping.
After each kill a fresh process must load exactly the right arrays, and no temporary file
may be left over.  CI runs ten kill points; ``MNISTKIT_TORTURE_LONG=1`` runs a hundred.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from helpers import long_mode

from test_sources import publish
from torture_child import digest

CHILD = str(Path(__file__).resolve().parent / "torture_child.py")
KILL_POINTS = 100 if long_mode() else 10
PROCESSES, THREADS = 16, 8
AFTER_KILL = PROCESSES if long_mode() else 4  # processes in the crowd that follows a killed lock holder
PHASES = ("lock", "transfer", "verify", "cache")

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="the tracer names files via /proc")


def child(home: Path, base: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, CHILD, str(home), base, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )


def finish(proc: subprocess.Popen) -> dict[str, str]:
    """Wait for a child that must succeed (a deadlock fails here, not forever); its output lines by key."""
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-3000:]
    return dict(line.split(" ", 1) for line in out.decode().splitlines() if " " in line)


def kill_at(home: Path, base: str, k: int | None = None, on: str | None = None, nth: int = 1) -> str | None:
    """Start a cold load, SIGKILL it at event ``k`` (or the ``nth`` event matching ``on``); returns what it was doing.

    The files of a dataset are built two at a time, so the interleaving of their events, and
    their number, varies a little between runs: a child that finishes before event ``k``
    (None is returned) must simply have loaded the right arrays.  A step named with ``on``
    is the same step in every run: the child must reach it.
    """
    where = ["--pause-at", str(k)] if on is None else ["--pause-on", on, "--nth", str(nth)]
    proc = child(home, base, *where)
    line = proc.stdout.readline().decode().strip()  # the real condition: it is there, and blocked
    if line.startswith("EVENTS ") and on is None:
        finish(proc)
        return None
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert line.startswith("PAUSE "), f"child did not reach {where}: {line!r}"
    return line


def leftovers(folder: Path) -> list[str]:
    """Temporary files in a dataset folder after a successful load (there must be none)."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.name.endswith((".part", ".part.json", ".tmp")) or (p.name.startswith(".") and p.is_file())
    )


def expected_digest(synth) -> str:
    a = synth.arrays
    return digest(
        [
            a["train-images-idx3-ubyte.gz"].reshape(-1, 784),
            a["train-labels-idx1-ubyte.gz"],
            a["t10k-images-idx3-ubyte.gz"].reshape(-1, 784),
            a["t10k-labels-idx1-ubyte.gz"],
        ]
    )


def spread(events: list[str], n: int, seed: int) -> list[int]:
    """``n`` event numbers from a seed, taken in turn from each phase so that every phase gets its share."""
    by_phase = defaultdict(list)
    for k, event in enumerate(events):
        by_phase[event.split()[0]].append(k)
    rng = random.Random(seed)
    pools = [rng.sample(by_phase[p], len(by_phase[p])) for p in PHASES if by_phase[p]]
    chosen: list[int] = []
    while len(chosen) < min(n, len(events)):
        for pool in pools:
            if pool and len(chosen) < n:
                chosen.append(pool.pop())
    return sorted(chosen)


@pytest.fixture
def mirror(synth, server):
    publish(server, synth, "/m/")
    return server.url + "/m/"


def test_sigkill_at_spread_points_then_the_next_load_is_exact(synth, tmp_path, mirror, tally):
    dry = finish(child(tmp_path / "dry", mirror))
    events = json.loads(dry["EVENTS"])
    assert dry["DIGEST"] == expected_digest(synth)
    assert set(PHASES) <= {e.split()[0] for e in events}, events
    points = spread(events, KILL_POINTS, seed=8)
    for k in points:
        home = tmp_path / f"kill-{k}"
        paused = kill_at(home, mirror, k)
        phase = paused.split()[2] if paused else "no phase (this run had fewer events)"
        again = finish(child(home, mirror))  # a fresh process, as the user's next call
        assert again["DIGEST"] == expected_digest(synth), f"wrong arrays after a kill at event {k} ({phase})"
        assert leftovers(home / synth.dataset.name) == [], f"after a kill at event {k} ({phase})"
        tally.add(
            f"killed in {phase}: next load exact, nothing left over"
            if paused
            else "finished before the kill point: exact, nothing left over"
        )


def test_sigkill_between_verified_part_and_final_name(synth, tmp_path, mirror, tally):
    """Found by the torture: a kill between renaming the .part and removing its resume record
    left the record behind for good (the final file is there, so nothing ever cleaned it)."""
    events = json.loads(finish(child(tmp_path / "dry", mirror))["EVENTS"])
    part = "/" + Path(next(e.split()[-1] for e in events if e.endswith(".part"))).name
    steps = [f"os.remove|{part}.json", f"os.rename|{part}"]  # the resume record removed, the .part renamed
    assert all(any(all(x in e for x in step.split("|")) for e in events) for step in steps), events
    for i, step in enumerate(steps):
        home = tmp_path / f"kill-{i}"
        assert step.split("|")[0] in kill_at(home, mirror, on=step)
        assert finish(child(home, mirror))["DIGEST"] == expected_digest(synth)
        assert leftovers(home / synth.dataset.name) == [], step
        tally.add("killed at the rename of a verified .part: next load exact, nothing left over")


def run_many(home: Path, base: str, processes: int = PROCESSES) -> set[str]:
    """``processes`` processes of THREADS threads each load at once; the set of digests they got."""
    procs = [child(home, base, "--threads", str(THREADS), "--wait") for _ in range(processes)]
    for proc in procs:
        assert proc.stdout.readline().strip() == b"READY"
    for proc in procs:  # all at once: nobody has started until everyone is ready
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    return {d for proc in procs for d in finish(proc)["DIGEST"].split()}


def test_many_processes_and_threads_cold_then_after_a_killed_lock_holder(synth, tmp_path, server, mirror, tally):
    home = tmp_path / "shared"
    assert run_many(home, mirror) == {expected_digest(synth)}
    for name in synth.gz:
        assert server.gets(f"/m/{name}") == 1, f"{name} was downloaded more than once"
    assert leftovers(home / synth.dataset.name) == []
    tally.add(f"cold: {PROCESSES} processes x {THREADS} threads, one GET per file, identical arrays")

    # A lock holder killed in the middle of a cache write: the next crowd must not be blocked.
    cache = home / synth.dataset.name / ".cache"
    for p in cache.iterdir():
        p.unlink()
    server.requests.clear()
    assert "cache write" in kill_at(home, mirror, on="cache write|.npy.tmp", nth=3)  # inside a cache entry
    assert run_many(home, mirror, AFTER_KILL) == {expected_digest(synth)}
    assert server.requests == []  # the files were there: rebuilt from them, no download
    assert leftovers(home / synth.dataset.name) == []
    tally.add(f"lock holder SIGKILLed mid cache write: next {AFTER_KILL} x {THREADS} complete, no stale lock")
