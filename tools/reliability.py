"""Run the attack suites and write docs/reliability.md: every fault class, how it is injected,
how many cases ran and what happened.

Usage (from the repository root, with the test extras and, for --long, atheris installed)::

    python tools/reliability.py            # the CI-sized suites (about a minute)
    python tools/reliability.py --long     # + hundred kill points, 2000 examples per property,
                                           #   and atheris for --fuzz-seconds (default 300)

The tests count their own cases (the ``tally`` fixture writes JSON lines to
``$MNISTKIT_RELIABILITY_LOG``); pytest's JUnit report says which passed.  Nothing here
decides an outcome: a row is "passed" only if every test behind it passed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"

#: (fault class, how it is injected, node id prefixes of the tests behind it)
CATALOG: list[tuple[str, str, list[str]]] = [
    (
        "IDX bytes: mangled valid files",
        "hypothesis: header lies (dims, rank, type, 2**64-byte sizes), bit flips, cuts, "
        "insertions, appended zeros/garbage/streams, over raw/gzip/xz; judged against an independent reference decoder, "
        "peak memory traced",
        ["tests/test_fuzz.py::test_mangled_files"],
    ),
    (
        "IDX bytes: arbitrary input",
        "hypothesis: random bytes after every known magic (IDX, gzip, xz, HTML, zip)",
        ["tests/test_fuzz.py::test_arbitrary"],
    ),
    (
        "IDX bytes: known malformed files",
        "hand-written cases: empty, truncated anywhere, trailing bytes, bad type, "
        "rank 0, HTML, zip, bz2, corrupt gzip/xz, 10**12-item header, sizes wrapping int64",
        [
            "tests/test_idx.py::test_malformed",
            "tests/test_idx.py::test_header_claiming",
            "tests/test_fuzz.py::test_header",
            "tests/test_fuzz.py::test_empty_array",
        ],
    ),
    (
        "Archive bytes: mangled zip members",
        "hypothesis: bit flips, cuts, insertions and 4-byte overwrites (lying "
        "sizes, offsets, method and flag fields) of a zip holding a gzip'd IDX member, read in place as EMNIST's "
        "gzip.zip is; judged against the stdlib's zipfile reading the member whole, peak memory traced; a damaged "
        "member of a served archive reported by name",
        [
            "tests/test_fuzz.py::test_mangled_archives",
            "tests/test_fuzz.py::test_archive",
            "tests/test_family.py::test_corrupted",
        ],
    ),
    (
        "SIGKILL during a cold load",
        "subprocess stopped at seeded file-system events (open/write/rename/remove/mmap) "
        "spread over lock, transfer, verification and cache writing; then a fresh process loads",
        [
            "tests/test_torture.py::test_sigkill_at_spread",
            "tests/test_torture.py::test_sigkill_between",
            "tests/test_store.py::test_cache_survives",
            "tests/test_sources.py::test_process_killed",
            "tests/test_sources.py::test_complete_part",
        ],
    ),
    (
        "Concurrent cold loads",
        "16 processes x 8 threads released together against one loopback server; then a lock "
        "holder SIGKILLed mid cache write and another crowd",
        ["tests/test_torture.py::test_many", "tests/test_sources.py::test_eight_processes"],
    ),
    (
        "Read-only data folder",
        "a real read-only bind mount (unshare) holding a cache, only files, or nothing",
        [
            "tests/test_hostile.py::test_read_only",
            "tests/test_store.py::test_read_only",
            "tests/test_store.py::test_unwritable",
        ],
    ),
    (
        "Full disk",
        "RLIMIT_FSIZE in a subprocess (SIGXFSZ ignored, so writes fail with EFBIG) during the download "
        "and during the cache write",
        ["tests/test_hostile.py::test_full_disk"],
    ),
    (
        "Damaged cache entry",
        "bytes flipped in the .npy payload; truncation; garbled header or manifest",
        ["tests/test_hostile.py::test_flipped", "tests/test_store.py::test_damaged"],
    ),
    (
        "Symlinks and odd paths",
        "data home, dataset folder or files as symlinks; a dangling link; spaces and "
        "non-ASCII in the data home and a file:// mirror",
        [
            "tests/test_hostile.py::test_symlinked",
            "tests/test_hostile.py::test_dangling",
            "tests/test_hostile.py::test_path_with",
        ],
    ),
    (
        "Lying server: lengths and encodings",
        "Content-Length longer/shorter than the body, announced 10**12 bytes, "
        "an endless body, Content-Encoding: gzip on a .gz (mislabelled, or applied twice)",
        [
            "tests/test_lying_server.py::test_content",
            "tests/test_lying_server.py::test_gzip",
            "tests/test_lying_server.py::test_endless",
            "tests/test_lying_server.py::test_announced",
        ],
    ),
    (
        "Lying server: redirects",
        "301/302/303/307/308 chains of 5 (followed) and 6 hops (refused), no Location, a loop, https to http",
        [
            "tests/test_lying_server.py::test_redirect",
            "tests/test_sources.py::test_redirects",
            "tests/test_sources.py::test_https",
        ],
    ),
    (
        "Failing mirrors",
        "403/404/410, 429 and 5xx, stalls (timeouts), a server trickling bytes (minimum rate), "
        "dropped connections (resume), ignored Range, HTML pages, wrong bytes, an unresolvable host",
        [
            "tests/test_sources.py::test_client_error",
            "tests/test_sources.py::test_503",
            "tests/test_sources.py::test_429",
            "tests/test_sources.py::test_html",
            "tests/test_sources.py::test_dropped",
            "tests/test_sources.py::test_server_ignoring",
            "tests/test_sources.py::test_slow",
            "tests/test_sources.py::test_wrong_bytes",
            "tests/test_sources.py::test_every_source",
            "tests/test_sources.py::test_trickling",
            "tests/test_sources.py::test_unresolvable",
        ],
    ),
    (
        "Lying server: headers and validators",
        "status line and headers trickled a byte at a time, a malformed "
        "redirect Location (`http://[::1/x`), a weak ETag with a server honouring If-Range as RFC 9110 says, "
        "206 answers to requests sent without Range",
        [
            "tests/test_sources.py::test_headers_trickled",
            "tests/test_sources.py::test_malformed_redirect",
            "tests/test_sources.py::test_weak_etag",
            "tests/test_sources.py::test_strong_validators",
            "tests/test_sources.py::test_206_to",
        ],
    ),
    (
        "Broken transfers and stale .part files",
        "cuts after 1-3 bytes, every response cut after 8 kB, a mirror "
        "abandoned mid-file with another behind it, a stale .part holding another file's prefix under this URL's "
        "record",
        [
            "tests/test_sources.py::test_resume_after_a_cut",
            "tests/test_sources.py::test_retries_start",
            "tests/test_sources.py::test_another_mirror",
            "tests/test_sources.py::test_stale_part",
        ],
    ),
    (
        "Oversized local copies",
        "a folder mirror holding a labels file padded to 300 MB with zeros (sparse); "
        "zero padding after gzip/xz streams past the bound",
        ["tests/test_sources.py::test_folder_mirror_holding", "tests/test_idx.py::test_zero_padding"],
    ),
    (
        "Hostile settings",
        "MNISTKIT_TIMEOUT of 0, -1, nan, inf, -inf and text; a mirror URL with user:password",
        ["tests/test_sources.py::test_bad_timeout", "tests/test_sources.py::test_credentials"],
    ),
    (
        "Hand-damaged data folders",
        "a wrong file of the user's under the published name, manifests that are "
        "valid JSON of another shape, a regular file named .cache",
        [
            "tests/test_store.py::test_wrong_hand_placed",
            "tests/test_store.py::test_manifest_of_another",
            "tests/test_store.py::test_a_file_named_cache",
        ],
    ),
]

FILES = sorted({prefix.split("::")[0] for _, _, prefixes in CATALOG for prefix in prefixes})


def run_pytest(long: bool, workdir: Path) -> tuple[dict[str, bool], dict[str, Counter]]:
    """Run the suites; returns (node id -> passed) and (node id -> outcome counts)."""
    junit, log = workdir / "junit.xml", workdir / "tally.jsonl"
    env = dict(os.environ, MNISTKIT_RELIABILITY_LOG=str(log), MNISTKIT_TORTURE_LONG="1" if long else "0")
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *FILES],
        cwd=ROOT,
        env=env,
        check=False,
    )
    passed = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        node = case.get("classname", "").replace(".", "/") + ".py::" + case.get("name", "")
        skipped = case.find("skipped") is not None
        passed[node] = None if skipped else not any(case.find(t) is not None for t in ("failure", "error"))
    tallies: dict[str, Counter] = {}
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            tallies.setdefault(record["test"], Counter()).update(record["outcomes"])
    return passed, tallies


def run_atheris(seconds: int, target: str = "idx") -> dict:
    """Fuzz one target with atheris for ``seconds``; runs, and whether it ended clean."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / "fuzz_idx.py"), "--target", target, f"-max_total_time={seconds}"],
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        check=False,
    )
    runs = re.search(r"Done (\d+) runs in (\d+) second", out.stderr)
    return {
        "runs": int(runs.group(1)) if runs else 0,
        "seconds": int(runs.group(2)) if runs else seconds,
        "clean": out.returncode == 0,
        "tail": out.stderr.strip().splitlines()[-12:],
    }


def rows(passed: dict[str, bool | None], tallies: dict[str, Counter]) -> list[tuple[str, str, int, str]]:
    table = []
    for fault, how, prefixes in CATALOG:
        nodes = [n for n in passed if any(n.startswith(p) for p in prefixes)]
        ran = [n for n in nodes if passed[n] is not None]
        counts: Counter = Counter()
        cases = 0
        for n in ran:  # a test that counted its own cases counts those; any other test is one case
            tally = tallies.get(n)
            cases += sum(tally.values()) if tally else 1
            counts.update(tally or {})
        failed = [n for n in ran if not passed[n]]
        verdict = f"**FAILED** ({len(failed)} of {len(ran)} tests)" if failed else f"passed ({len(ran)} tests)"
        skipped = len(nodes) - len(ran)
        if skipped:
            verdict += f", {skipped} skipped"
        detail = "; ".join(f"{k}: {v}" for k, v in counts.most_common())
        table.append((fault, how, cases, verdict + (f". {detail}" if detail else "")))
    return table


_ATHERIS_ROWS = {
    "idx": ("IDX bytes: coverage-guided", "seeded with every type and container, same reference as above"),
    "zip-member": (
        "Archive bytes: coverage-guided",
        "zipfile instrumented too, seeded with stored and deflated archives, same reference as above",
    ),
}


def render(table, long: bool, fuzz: dict[str, dict] | None, elapsed: float) -> str:
    lines = [
        "# Reliability report",
        "",
        "What mnistkit was attacked with on purpose, and what it survived. Regenerate with",
        "`python tools/reliability.py` (the CI-sized suites) or `python tools/reliability.py --long`",
        "(hundred kill points, 2000 examples per fuzz property, and atheris for minutes).",
        "",
        f"This run: {'long' if long else 'CI-sized'}, {time.strftime('%Y-%m-%d')}, Python "
        f"{platform.python_version()} on {platform.system()} {platform.machine()}, {elapsed:.0f} s.",
        "",
        "| fault class | how it is injected | cases | outcome |",
        "|---|---|---:|---|",
    ]
    lines += [f"| {f} | {h} | {c} | {o} |" for f, h, c, o in table]
    for target, (fault, how) in _ATHERIS_ROWS.items():
        if fuzz is not None:
            result = fuzz[target]
            verdict = "no failure" if result["clean"] else "**FAILED** (see the crash-* file)"
            lines.append(
                f"| {fault} | atheris (libFuzzer) for {result['seconds']} s, {how} | {result['runs']} | {verdict} |"
            )
        else:
            lines.append(
                f"| {fault} | atheris (libFuzzer): `python fuzz/fuzz_idx.py --target {target} "
                "-max_total_time=60`, run by `--long` | not run | on demand |"
            )
    lines += ["", FINDINGS]
    return "\n".join(lines) + "\n"


FINDINGS = """## What the attacks found (and was fixed)

| found by | what happened | fix |
|---|---|---|
| hypothesis (header lies) | a header of 4 dimensions of 65536 declares 2**64 bytes, which is 0 in int64: every size check passed and NumPy raised a bare `ValueError` | sizes in Python integers (`idx.IdxHeader.payload_size`) |
| atheris | a header with a zero dimension and huge others (shape `(0, 2**32-1, ...)`) is an empty array NumPy cannot create: bare `ValueError` | `parse_header` refuses shapes no array can have (`IdxFormatError`) |
| crash torture | a kill between renaming a verified `.part` and deleting its resume record left `<file>.part.json` for good | the record is deleted before the rename |
| hypothesis (zip members) | a zip whose offsets, sizes, method or flag fields lie made `zipfile` raise `ValueError` ("negative seek value"), `NotImplementedError` ("strong encryption") and other bare errors | every kind of damage `zipfile` reports is an `IdxFormatError` naming the member (`archive.py`) |
| review of the lying-server results | a server trickling a few bytes at a time never tripped the per-read timeout, so only the size cap bounded it | a minimum average rate (`RetryPolicy.min_rate`, 1 KiB/s after twice the read timeout): the transfer is dropped, what arrived is kept and resumed, then the next source |
| full disk | a write error while downloading or caching surfaced as a bare `OSError` and the `.part` stayed; a short unbuffered write to the cache lost bytes silently, then "the cache entry vanished" | `DataFolderError` naming the folder, nothing half-written kept; cache writes loop until complete |
| adversarial pass (issue 20) | a wrong file placed by hand under the published name was reported, then overwritten by the download | the user's file is never replaced: the verified download goes to `<dataset>/.downloaded/<name>` and is found from there |
| adversarial pass (issue 20) | a server sending its status line and headers a byte every 1.5 s was waited on for as long as it trickled (the read timeout bounds each silence), with the file's lock held | an overall deadline for the status line and headers (twice the read timeout), then retry and the next source |
| adversarial pass (issue 20) | a redirect to a malformed `Location` (`http://[::1/x`) crashed the load with a bare `ValueError`; later mirrors were never tried | any unparsable answer is a failure of that source: next mirror |
| adversarial pass (issue 20) | `MNISTKIT_TIMEOUT` of `0`, `-1`, `nan` or `inf` crashed with a traceback | only a finite number above zero is used; anything else is ignored with a warning, like text |
| adversarial pass (issue 20) | a manifest holding valid JSON that is not an object (`[]`, `1`, `"x"`, `true`) made `load`, `list` and `verify --fix` fail with `AttributeError` | any manifest (or resume record) of another shape is unreadable: the entry is rebuilt |
| adversarial pass (issue 20) | a regular file named `.cache` was reported as an unwritable folder; `download` tried no mirror; `clean` deleted one file, then failed | the error names the file that is in the way; `clean` checks before deleting anything |
| adversarial pass (issue 20) | a folder mirror's file padded with 300 MB of zeros was copied whole and accepted (zero padding after a gzip stream had no bound) | the HTTP size cap applies to local sources too (checked before copying), and at most 4096 zero bytes may follow a compressed stream |
| adversarial pass (issue 20) | a resume after a cut in the first bytes judged the kept `.part` alone (1 byte: "unknown data") and abandoned a good mirror | the kept bytes and the new ones are checked together |
| adversarial pass (issue 20) | retries never reset: a link cut every 300 kB gave up on a file that each try advanced; another mirror restarted the `.part` from zero | a try that brings 64 KiB (or a sixteenth of a small file) starts a new series; another mirror continues a `.part` whose recorded size is the published size |
| adversarial pass (issue 20) | a 206 answer to a request sent without Range was appended to a stale `.part` | bytes are appended only when a Range was sent and the answer starts where the `.part` ends |
| adversarial pass (issue 20) | credentials in a mirror URL were written to `.part.json` and shown in logs and errors | every URL is shown and stored as `scheme://***@host/...` |
| adversarial pass (issue 20) | a stale `.part` holding another file's prefix got its mirror blamed for corrupt data | a resumed download that fails verification is fetched once more from the start before the mirror is blamed |
| adversarial pass (issue 20) | weak ETags were sent as `If-Range`, which compliant servers answer with the whole file, so resume never worked there | only strong validators: a strong ETag, or Last-Modified when no ETag was given and the date is strong |

## Known limits

* A flipped byte inside a cache entry's payload passes the cheap check done on every load (size, header,
  manifest); the full re-hash (SHA-256 of the IDX header + `.npy` payload against the manifest) detects it:
  `mnistkit verify` runs it, and `mnistkit verify --fix` rebuilds the entry.
* A server that applies `Content-Encoding: gzip` on top of a `.gz` file despite `Accept-Encoding: identity` is
  refused (next mirror), not decoded.
"""


def main(argv: list[str] | None = None) -> int:
    """Run everything and write docs/reliability.md; the exit status is 1 if anything failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long", action="store_true", help="the long, on-demand runs")
    parser.add_argument("--fuzz-seconds", type=int, default=300, help="atheris time with --long (default 300)")
    args = parser.parse_args(argv)
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        passed, tallies = run_pytest(args.long, Path(tmp))
    # The archive target gets a third of the time: its code under test is small and zipfile's is instrumented.
    fuzz = (
        {
            "idx": run_atheris(args.fuzz_seconds, "idx"),
            "zip-member": run_atheris(max(1, args.fuzz_seconds // 3), "zip-member"),
        }
        if args.long
        else None
    )
    table = rows(passed, tallies)
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render(table, args.long, fuzz, time.monotonic() - start), encoding="utf-8")
    print(f"wrote {DOC}")
    failed = any("FAILED" in row[3] for row in table) or any(not r["clean"] for r in (fuzz or {}).values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
