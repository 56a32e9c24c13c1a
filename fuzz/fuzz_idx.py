"""Coverage-guided fuzzing of mnistkit's decoders with atheris (libFuzzer), on demand.

Usage::

    pip install atheris
    python fuzz/fuzz_idx.py -max_total_time=60            # the IDX codec (raw, gzip, xz)
    python fuzz/fuzz_idx.py --target idx -runs=100000      # any libFuzzer option passes through
    python fuzz/fuzz_idx.py --target zip-member -max_total_time=60   # a gzip'd IDX member of a zip archive

Every input is judged by :func:`targets.check_one` against the target's independent
reference: the right array or the documented error, nothing else.  A hang is caught by
libFuzzer's ``-timeout`` (10 s per input here) and runaway memory by ``-rss_limit_mb``
(1024 MB here; inputs are at most ``-max_len`` = 64 KiB, so a decoder that trusts a header
claiming 10**12 items is stopped).  The corpus is seeded with valid files of every type and
container in ``fuzz/corpus/<target>/`` (not committed).  A failing input is saved by
libFuzzer as ``crash-<sha1>`` in the current folder and the exit status is non-zero.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

DEFAULTS = ["-timeout=10", "-rss_limit_mb=1024", "-max_len=65536", "-print_final_stats=1"]


def main(argv: list[str] | None = None) -> None:
    """Fuzz one target; arguments not known here go to libFuzzer."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="idx", help="which decoder to attack (default: idx)")
    args, rest = parser.parse_known_args(argv)
    try:
        import atheris
    except ImportError:
        sys.exit("atheris is not installed: pip install atheris")

    # zipfile too: the zip-member target's parsing happens there, and coverage of it guides the fuzzer
    with atheris.instrument_imports(include=["mnistkit", "targets", "zipfile"]):
        import zipfile  # noqa: F401 - instrumented for coverage

        import targets

        import mnistkit.archive
        import mnistkit.idx  # noqa: F401
    target = targets.TARGETS[args.target]
    corpus = HERE / "corpus" / target.name
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in target.seeds():
        (corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed)

    def one_input(data: bytes) -> None:
        targets.check_one(target, data)

    flags = [f for f in DEFAULTS if f.split("=")[0] not in {r.split("=")[0] for r in rest}]
    atheris.Setup([sys.argv[0], *flags, *rest, str(corpus)], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
