"""The ``mnistkit`` command line: a thin layer over the public API.

Each subcommand calls one public function; errors become one sentence on
stderr and a non-zero exit code (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import __version__
from .errors import ArgumentError, MissingFilesError, MnistkitError

EXIT_OK = 0
EXIT_ERROR = 1  # a runtime failure: download failed, bad data, ...
EXIT_USAGE = 2  # bad arguments (argparse uses 2 as well)
EXIT_MISSING = 3  # files missing and not obtainable (offline)


def _cmd_show(args: argparse.Namespace) -> int:
    from .api import load
    from .registry import get_dataset
    from .render import save_png, terminal_lines

    ds = get_dataset(args.name)
    images, labels = load(ds.name, args.split, normalize=False, flatten=False)
    if not -len(images) <= args.index < len(images):
        msg = f"--index {args.index} is out of range: {ds.name} {args.split} has {len(images)} images"
        raise ArgumentError(msg)
    label = int(labels[args.index])
    name = ds.classes[label] if 0 <= label < len(ds.classes) else str(label)
    print(f"{ds.name} {args.split}[{args.index}]  label {label} ({name})")
    color = sys.stdout.isatty() if args.color == "auto" else args.color == "always"
    print("\n".join(terminal_lines(images[args.index], color=color)))
    if args.png:
        path = save_png(images[args.index], args.png, scale=args.scale)
        print(f"saved {path}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="mnistkit", description="Get, check and look at MNIST-family datasets."
    )
    parser.add_argument("--version", action="version", version=f"mnistkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("--data-home", metavar="DIR", help="data folder (default: $MNISTKIT_HOME or the user cache)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    show = sub.add_parser("show", help="print an image in the terminal with its label")
    show.add_argument("name", nargs="?", default="mnist", help="dataset name (default: mnist)")
    show.add_argument("--split", default="train", help="split (default: train)")
    show.add_argument("--index", type=int, default=0, help="image number (default: 0)")
    show.add_argument("--png", metavar="FILE", help="also save the image as a PNG")
    show.add_argument("--scale", type=int, default=8, help="PNG enlargement factor (default: 8)")
    show.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    show.set_defaults(func=_cmd_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="mnistkit: %(levelname)s: %(message)s"
    )
    if args.data_home:
        import os

        os.environ["MNISTKIT_HOME"] = args.data_home
    try:
        return args.func(args)
    except MnistkitError as err:
        if args.debug:
            raise
        print(f"mnistkit: error: {err}", file=sys.stderr)
        if isinstance(err, ArgumentError):
            return EXIT_USAGE
        if isinstance(err, MissingFilesError):
            return EXIT_MISSING
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("mnistkit: interrupted", file=sys.stderr)
        return 130
