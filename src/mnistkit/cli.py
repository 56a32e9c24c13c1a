"""The ``mnistkit`` command line: a thin layer over the library.

Each subcommand calls library functions (``api``, ``store``, ``render``,
``export``, ``serve``) and prints what they return; errors become one
sentence on stderr and a non-zero exit code (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from . import __version__
from .errors import ArgumentError, MissingFilesError, MnistkitError

EXIT_OK = 0
EXIT_ERROR = 1  # a runtime failure: download failed, bad data, ...
EXIT_USAGE = 2  # bad arguments (argparse uses 2 as well)
EXIT_MISSING = 3  # files missing and not obtainable (offline)


# --- helpers ------------------------------------------------------------------------------------


def _datasets(names: Sequence[str] | None):
    """The registry entries named (all of them for None, empty or ``all``), in registry order."""
    from .registry import DATASETS, get_dataset

    if not names or "all" in names:
        return list(DATASETS.values())
    return list({ds.name: ds for ds in map(get_dataset, names)}.values())


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""  # pragma: no cover - the loop always returns




def _exit_code(err: MnistkitError) -> int:
    if isinstance(err, ArgumentError):
        return EXIT_USAGE
    if isinstance(err, MissingFilesError):
        return EXIT_MISSING
    return EXIT_ERROR


def _error(err: BaseException) -> None:
    print(f"mnistkit: error: {err}", file=sys.stderr)


def _local_store(ds):
    """The dataset's store without downloading: for commands that only look at what is here."""
    from .store import Store

    return Store(ds)


def _split_arrays(ds, split: str):
    """Images (N, H, W) uint8 and labels as published (N,) of one split, downloading if needed."""
    from .api import load

    images, labels = load(ds.name, split, normalize=False, flatten=False)
    return images.reshape(len(images), *images.shape[-2:]), labels


# --- subcommands --------------------------------------------------------------------------------


def _cmd_list(args: argparse.Namespace) -> int:
    rows = [("name", "title", "size", "classes", "here")]
    for ds in _datasets(None):
        store = _local_store(ds)
        cached = sum(store.cached(spec) is not None for spec in ds.files)
        present = sum(store.cached(spec) is not None or bool(store.candidates(spec)) for spec in ds.files)
        if cached == len(ds.files):
            here = "cached"
        elif present == len(ds.files):
            here = "downloaded"
        else:
            here = f"{present}/{len(ds.files)} files" if present else "no"
        size = sum(spec.size or spec.decoded_size for spec in ds.files)
        rows.append((ds.name, ds.title, _size(size), str(ds.num_classes), here))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return EXIT_OK


def _cmd_download(args: argparse.Namespace) -> int:
    from .api import dataset_store

    code = EXIT_OK
    for ds in _datasets(args.names):
        store = dataset_store(ds)
        try:
            for spec in ds.files:
                store.load(spec)
        except MnistkitError as err:  # one dataset failing must not stop the others
            if args.debug:
                raise
            _error(err)
            code = max(code, _exit_code(err))
            continue
        print(f"{ds.name}: {len(ds.files)} files verified and cached in {store.folder}")
    return code


def _dataset_info(ds) -> dict:
    """Everything known about a dataset and its local copy, as JSON-ready data."""
    import numpy as np

    from .idx import IDX_TYPES

    store = _local_store(ds)

    def file_info(spec):
        npy_path = store.npy_path(spec, store.read_manifest(spec))  # the manifest may name another (Windows)
        found = store.candidates(spec)
        return {
            "name": spec.name,
            "size": spec.size,
            "sha256": spec.sha256,
            "md5": spec.md5,
            "decoded_size": spec.decoded_size,
            "decoded_sha256": spec.decoded_sha256,
            "shape": list(spec.shape),
            "dtype": IDX_TYPES[spec.type_code].newbyteorder("=").name,
            "path": str(found[0]) if found else None,
            "cache": str(npy_path) if store.cached(spec) is not None else None,
        }

    splits = []
    for split in ds.splits:
        labels_spec = ds.file(split.labels)
        counts = None
        if store.cached(labels_spec) is not None or store.candidates(labels_spec):
            try:
                stored = store.load(labels_spec)
                if split.rows is not None:
                    stored = stored[split.rows[0] : split.rows[1]]
                counts = np.bincount(ds.class_index(stored), minlength=ds.num_classes).tolist()
            except MnistkitError:
                counts = None  # a damaged local copy: `verify` is the command that explains it
        splits.append(
            {
                "name": split.name,
                "count": ds.split_size(split.name),
                "images": file_info(ds.file(split.images)),
                "labels": file_info(labels_spec),
                "class_counts": counts,
            }
        )
    return {
        "name": ds.name,
        "title": ds.title,
        "description": ds.description,
        "homepage": ds.homepage,
        "license": ds.license,
        "citation": ds.citation,
        "classes": list(ds.classes),
        "data_folder": str(store.folder),
        "cache_folder": str(store.cache_folder),
        "splits": splits,
    }


def _cmd_info(args: argparse.Namespace) -> int:
    from .registry import get_dataset

    info = _dataset_info(get_dataset(args.name))
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"{info['name']}: {info['title']}")
    if info["description"]:
        print(f"  {info['description']}")
    for key in ("homepage", "license", "data_folder", "cache_folder"):
        print(f"  {key.replace('_', ' '):13}{info[key] or '-'}")
    print(f"  {'classes':13}{len(info['classes'])}: {', '.join(info['classes'])}")
    for split in info["splits"]:
        img, lab = split["images"], split["labels"]
        print(f"\nsplit {split['name']}: {split['count']} samples")
        print(f"  images  {tuple(img['shape'])} {img['dtype']}   labels {tuple(lab['shape'])} {lab['dtype']}")
        if split["class_counts"] is None:
            print("  per class: (not downloaded; `mnistkit download` first)")
        else:
            pairs = (f"{name}:{n}" for name, n in zip(info["classes"], split["class_counts"]))
            print(f"  per class: {' '.join(pairs)}")
        for f in (img, lab):
            print(f"  {f['name']}  {_size(f['size'])}  {f['sha256'] or '-'}")
            print(f"    decoded {_size(f['decoded_size'])}  {f['decoded_sha256'] or '-'}")
            print(f"    file  {f['path'] or '(not here)'}")
            print(f"    cache {f['cache'] or '(not built)'}")
    if info["citation"]:
        print("\ncitation\n" + info["citation"])
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    from .registry import get_dataset
    from .render import save_png, terminal_lines

    ds = get_dataset(args.name)
    images, labels = _split_arrays(ds, args.split)
    if not -len(images) <= args.index < len(images):
        msg = f"--index {args.index} is out of range: {ds.name} {args.split} has {len(images)} images"
        raise ArgumentError(msg)
    label = int(labels[args.index])
    print(f"{ds.name} {args.split}[{args.index}]  label {label} ({ds.class_name(label)})")
    color = sys.stdout.isatty() if args.color == "auto" else args.color == "always"
    print("\n".join(terminal_lines(images[args.index], color=color)))
    if args.png:
        path = save_png(images[args.index], args.png, scale=args.scale)
        print(f"saved {path}")
    return EXIT_OK


def _cmd_grid(args: argparse.Namespace) -> int:
    from .registry import get_dataset
    from .render import montage

    ds = get_dataset(args.name)
    images, labels = _split_arrays(ds, args.split)
    sheet = montage(images, ds.class_index(labels), ds.classes, per_class=args.per_class, scale=args.scale)
    sheet.save(args.png)
    print(f"saved {args.png} ({ds.num_classes} classes x {args.per_class}, {sheet.width}x{sheet.height} pixels)")
    return EXIT_OK


def _cmd_verify(args: argparse.Namespace) -> int:
    from .api import dataset_store

    checked = bad = fixed = 0
    for ds in _datasets([args.name] if args.name else None):
        store = dataset_store(ds)
        if not store.folder.is_dir():
            if args.name:
                print(f"{ds.name}: nothing downloaded in {store.folder}")
            continue
        for spec in ds.files:
            findings = store.check(spec)
            for finding in findings:
                checked += 1
                print(f"{'ok' if finding.ok else 'BAD':4} {finding.kind:5} {finding.path}")
                if not finding.ok:
                    bad += 1
                    print(f"     {finding.problem}")
            if not args.fix or all(f.ok for f in findings):
                continue
            try:
                for finding in findings:
                    if not finding.ok:
                        store.discard(finding)  # a damaged file in use (Windows): reported below
                if not any(f.ok and f.kind == "file" for f in findings) and any(f.kind == "file" for f in findings):
                    store.fetch(spec)  # the folder held a bad copy: put the published file back
                store.load(spec)  # the cache: kept if good, else rebuilt from the good copy
            except MnistkitError as err:
                print(f"     could not repair {spec.name}: {str(err).splitlines()[0]}")
                continue
            fixed += sum(not f.ok for f in findings)
            print(f"     repaired {spec.name}: bad copies deleted, verified copy cached")
    if not checked:
        print("nothing to verify")
    print(f"{checked} checked, {bad} bad, {fixed} repaired")
    if bad > fixed and not args.fix:
        print("run `mnistkit verify --fix` to delete the bad copies and fetch them again", file=sys.stderr)
    return EXIT_OK if bad == fixed else EXIT_ERROR


def _cmd_clean(args: argparse.Namespace) -> int:
    total = 0
    in_use: list = []  # files a program still holds (Windows): reported after the rest is freed
    for ds in _datasets([args.name] if args.name else None):
        store = _local_store(ds)
        freed = sum(store.clean(spec, in_use) for spec in ds.files)
        if freed or args.name:
            print(f"{ds.name}: freed {_size(freed)} in {store.folder}")
        total += freed
    print(f"freed {_size(total)} in total")
    if in_use:
        from .errors import files_in_use

        _error(files_in_use(in_use, "delete"))
        return EXIT_ERROR
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export

    written = export(args.name, args.format, args.out, splits=args.split)
    print(f"wrote {len(written)} file(s) to {args.out}")
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    from .errors import DataFolderError
    from .serve import serve
    from .store import resolve_home

    root = resolve_home()
    if not root.is_dir():
        msg = f"the data folder {root} does not exist; run `mnistkit download` first or pass --data-home"
        raise DataFolderError(msg)

    def ready(server) -> None:
        print(f"serving on {server.url} (folder {root}); on other machines: MNISTKIT_MIRROR={server.url}", flush=True)

    serve(root, args.host, args.port, ready=ready)
    print("mnistkit: server stopped", file=sys.stderr)
    return EXIT_OK


# --- the parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="mnistkit",
        description="Get, check, look at, export and serve MNIST-family datasets.",
        epilog="Exit codes: 0 ok, 1 failure, 2 bad arguments, 3 files missing. "
        "Environment: MNISTKIT_HOME (data folder), MNISTKIT_MIRROR, MNISTKIT_OFFLINE.",
    )
    parser.add_argument("--version", action="version", version=f"mnistkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("--data-home", metavar="DIR", help="data folder (default: $MNISTKIT_HOME or the user cache)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def command(name: str, func, help: str, example: str) -> argparse.ArgumentParser:  # noqa: A002
        p = sub.add_parser(
            name, help=help, description=help[0].upper() + help[1:] + ".", epilog=f"example: {example}"
        )
        p.set_defaults(func=func)
        return p

    command("list", _cmd_list, "list every dataset with its size, classes and whether it is here", "mnistkit list")

    p = command("download", _cmd_download, "download, verify and cache datasets ahead of time",
                "mnistkit download mnist")
    p.add_argument("names", nargs="+", metavar="NAME", help="dataset names, or 'all'")

    p = command("info", _cmd_info, "splits, shapes, classes, checksums, paths, license and citation",
                "mnistkit info mnist --json")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")

    p = command("show", _cmd_show, "print an image in the terminal with its label",
                "mnistkit show mnist --split test --index 3 --png seven.png")
    p.add_argument("name", nargs="?", default="mnist", help="dataset name (default: mnist)")
    p.add_argument("--split", default="train", help="split (default: train)")
    p.add_argument("--index", type=int, default=0, help="image number (default: 0)")
    p.add_argument("--png", metavar="FILE", help="also save the image as a PNG")
    p.add_argument("--scale", type=int, default=8, help="PNG enlargement factor (default: 8)")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="grey half blocks (always), a character ramp (never), or by terminal (auto)")

    p = command("grid", _cmd_grid, "save a montage: a labelled row of samples per class",
                "mnistkit grid mnist --per-class 10 --png digits.png")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--split", default="train", help="split (default: train)")
    p.add_argument("--per-class", type=int, default=8, metavar="K", help="samples per class (default: 8)")
    p.add_argument("--scale", type=int, default=2, help="enlargement factor (default: 2)")
    p.add_argument("--png", metavar="FILE", required=True, help="the PNG to write")

    p = command("verify", _cmd_verify, "re-hash every downloaded file and cache entry against the registry",
                "mnistkit verify mnist --fix")
    p.add_argument("name", nargs="?", metavar="NAME", help="one dataset (default: all that are here)")
    p.add_argument("--fix", action="store_true", help="delete bad copies and fetch or rebuild them")

    p = command("clean", _cmd_clean, "delete downloaded files and cache entries, saying how much was freed",
                "mnistkit clean mnist")
    p.add_argument("name", nargs="?", metavar="NAME", help="one dataset (default: all)")

    from .export import FORMATS

    p = command("export", _cmd_export, "write a dataset as PNG folders per class, CSV or .npz",
                "mnistkit export mnist --format png --out mnist-png")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    p.add_argument("--split", action="append", metavar="S", help="only this split (repeatable; default: all)")

    p = command("serve", _cmd_serve, "serve the data folder read-only over HTTP as a mirror",
                "mnistkit serve --host 0.0.0.0 --port 8000, then MNISTKIT_MIRROR=http://HOST:8000 elsewhere")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="mnistkit: %(levelname)s: %(message)s"
    )
    if args.data_home:
        os.environ["MNISTKIT_HOME"] = args.data_home
    try:
        return args.func(args)
    except MnistkitError as err:
        if args.debug:
            raise
        _error(err)
        return _exit_code(err)
    except BrokenPipeError:  # `mnistkit info mnist | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except OSError as err:  # the disk or the network outside mnistkit's own checks: still one line
        if args.debug:
            raise
        _error(err)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("mnistkit: interrupted", file=sys.stderr)
        return 130
