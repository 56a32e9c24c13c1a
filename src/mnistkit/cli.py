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
import re
import sys
from collections.abc import Sequence

from ._version import __version__
from .errors import ArgumentError, DownloadError, MissingFilesError, MnistkitError, OutputError
from .settings import Settings

EXIT_OK = 0
EXIT_ERROR = 1  # a runtime failure: download failed, bad data, ...
EXIT_USAGE = 2  # bad arguments (argparse uses 2 as well)
EXIT_MISSING = 3  # files missing and not obtainable (offline, or every source failed)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it


# --- helpers ------------------------------------------------------------------------------------


def _datasets(names: Sequence[str] | None):
    """The registry entries named (all of them for None, empty or ``all``), in registry order."""
    from .registry import DATASETS, get_dataset

    if not names or "all" in names:
        return list(DATASETS.values())
    return list({ds.name: ds for ds in map(get_dataset, names)}.values())


def _size(n: float | None) -> str:
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
    if isinstance(err, (MissingFilesError, DownloadError)):  # missing here, and not obtainable
        return EXIT_MISSING
    return EXIT_ERROR


#: Library keywords and the command-line flags that set them: errors read in the user's words.
_FLAGS = {
    "dataset": "dataset",
    "data_home": "--data-home",
    "per_class": "--per-class",
    "scale": "--scale",
    "split": "--split",
    "format": "--format",
    "index": "--index",
    "timeout": "--timeout",
    "out": "--out",
}
_KEYWORD = re.compile(r"\b(" + "|".join(_FLAGS) + r")=(\.\.\.)?")


def _cli_words(text: str) -> str:
    """``text`` with ``per_class=7`` written ``--per-class 7`` and ``data_home=...`` ``--data-home DIR``."""
    return _KEYWORD.sub(lambda m: _FLAGS[m.group(1)] + (" DIR" if m.group(2) else " "), text)


def _error(err: BaseException) -> None:
    print(f"mnistkit: error: {_cli_words(str(err))}", file=sys.stderr)


def _local_store(ds, settings: Settings):
    """The dataset's store without downloading: for commands that only look at what is here."""
    from .store import Store

    return Store(ds, settings.data_home)


def _split_arrays(ds, split: str, settings: Settings):
    """Images (N, H, W) uint8 and labels as published (N,) of one split, downloading if needed."""
    from .api import load

    images, labels = load(ds.name, split, normalize=False, flatten=False, **settings.keywords())
    return images.reshape(len(images), *images.shape[-2:]), labels


# --- subcommands --------------------------------------------------------------------------------


def _source(ds, settings: Settings) -> str:
    """Where a dataset's missing files would come from first: an installed data distribution, else mirrors."""
    from .datadist import origins

    first = next(iter(origins(ds, settings)), None)
    if first is None:  # no mirror (or offline with no local source): only hand-placed files
        return "none"
    if first["kind"] == "installed":
        return f"installed {first['distribution']} {first['version']}"
    return "MNISTKIT_MIRROR" if first["kind"] == "extra" else "download"


def _cmd_list(args: argparse.Namespace) -> int:
    from . import maintenance

    rows: list[tuple[str, ...]] = [("name", "title", "download", "on disk", "classes", "source", "here")]
    shared = unknown = False
    for ds in _datasets(None):
        store = _local_store(ds, args.settings)
        arrays = [spec for spec in ds.files if spec.kind != "archive"]  # an archive has no cache of its own
        cached = sum(store.cached(spec) is not None for spec in arrays)
        present = sum(store.cached(spec) is not None or bool(store.candidates(spec)) for spec in ds.files)
        if cached == len(arrays):
            here = "cached"
        elif present == len(ds.files):
            here = "downloaded"
        else:
            here = f"{present}/{len(ds.files)} files" if present else "no"
        # What is fetched: the published files (for EMNIST the one archive, not its members).
        fetched = [spec for spec in ds.files if spec.archive is None]
        mark = "*" if any(len(_sharers(ds, spec)) > 1 for spec in fetched) else ""
        shared |= bool(mark)
        if any(spec.size is None for spec in fetched):
            download, unknown = "?", True
        else:
            download = _size(sum(spec.size for spec in fetched)) + mark
        used = sum(size for spec in ds.files for _, _, size in maintenance.local_files(store, spec))
        on_disk = (_size(used) + (mark if any(store.candidates(spec) for spec in fetched) else "")) if used else "-"
        rows.append((ds.name, ds.title, download, on_disk, str(ds.num_classes), _source(ds, args.settings), here))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    if sys.stdout.isatty():  # a narrow terminal: shorten the titles (else drop them), never wrap the columns
        import shutil

        room = shutil.get_terminal_size().columns - (sum(widths) - widths[1] + 2 * (len(widths) - 1))
        if room < widths[1]:
            keep = room if room >= 8 else 0
            rows = [(r[0], r[1] if len(r[1]) <= keep else r[1][: keep - 1] + "\u2026", *r[2:]) for r in rows]
            if not keep:
                rows = [(r[0], *r[2:]) for r in rows]
            widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    numeric = {i for i, head in enumerate(rows[0]) if head in ("download", "on disk")}
    for row in rows:
        cells = [
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
    print(
        "\ndownload: bytes fetched; on disk: what the dataset takes here now (files and cache); "
        "source: where missing files come from first"
    )
    if shared:
        print("* one archive, downloaded once and read by every dataset that shares it (EMNIST: 6)")
    if unknown:
        print("? the publisher gives no size")
    return EXIT_OK


def _cmd_download(args: argparse.Namespace) -> int:
    from .api import _load_files, dataset_store

    code = EXIT_OK
    said: dict[str, str] = {}  # an error already printed -> the dataset it was printed for
    for ds in _datasets(args.names):
        store = dataset_store(ds, settings=args.settings)
        try:
            # Every array of the dataset (an archive is fetched for its members): one error lists all missing.
            _load_files(store, [spec for spec in ds.files if spec.kind != "archive"])
        except MnistkitError as err:  # one dataset failing must not stop the others
            if args.debug:
                raise
            code = max(code, _exit_code(err))
            # Datasets that share an archive (EMNIST) fail the same way: say it once.
            text = str(err).split(": ", 1)[1] if str(err).startswith(ds.name + ": ") else str(err)
            if text in said:
                print(
                    f"mnistkit: error: {ds.name}: missing the same file(s) as {said[text]}, listed above",
                    file=sys.stderr,
                )
            else:
                said[text] = ds.name
                _error(err)
            continue
        print(f"{ds.name}: {len(ds.files)} files verified and cached in {store.folder}")
    return code


def _dataset_info(ds, settings: Settings) -> dict:
    """Everything known about a dataset and its local copy, as JSON-ready data."""
    import numpy as np

    from .datadist import origins
    from .idx import IDX_TYPES

    store = _local_store(ds, settings)

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
        "sources": origins(ds, settings),  # where missing files come from, in order: installed data first
        "splits": splits,
    }


def _cmd_info(args: argparse.Namespace) -> int:
    from .registry import get_dataset

    info = _dataset_info(get_dataset(args.name), args.settings)
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"{info['name']}: {info['title']}")
    if info["description"]:
        print(f"  {info['description']}")
    for key in ("homepage", "license", "data_folder", "cache_folder"):
        print(f"  {key.replace('_', ' '):13}{info[key] or '-'}")
    print(f"  {'classes':13}{len(info['classes'])}: {', '.join(info['classes'])}")
    nowhere = {"kind": "none", "location": "none: only files put in the data folder"}
    for i, origin in enumerate(info["sources"] or [nowhere]):
        what = f"{origin['distribution']} {origin['version']} (installed): " if origin["kind"] == "installed" else ""
        print(f"  {'sources' if i == 0 else '':13}{i + 1}. {what}{origin['location']}")
    for split in info["splits"]:
        img, lab = split["images"], split["labels"]
        print(f"\nsplit {split['name']}: {split['count']} samples")
        print(f"  images  {tuple(img['shape'])} {img['dtype']}   labels {tuple(lab['shape'])} {lab['dtype']}")
        if split["class_counts"] is None:
            print("  per class: (not downloaded; `mnistkit download` first)")
        else:
            pairs = (f"{name}:{n}" for name, n in zip(info["classes"], split["class_counts"], strict=False))
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
    from .render import check_png_path, save_png, terminal_lines

    ds = get_dataset(args.name)
    ds.split(args.split)
    if args.png is not None:  # before anything is loaded or printed
        check_png_path(args.png, "--png")
    elif args.scale is not None:  # the terminal picture has one size: a --scale alone would do nothing
        msg = f"--scale {args.scale} enlarges the PNG only; add --png FILE, or leave --scale out"
        raise ArgumentError(msg)
    images, labels = _split_arrays(ds, args.split, args.settings)
    if not -len(images) <= args.index < len(images):
        msg = (
            f"--index {args.index} is out of range: {ds.name} {args.split} has {len(images)} images "
            f"(0 to {len(images) - 1})"
        )
        raise ArgumentError(msg)
    label = int(labels[args.index])
    name = ds.class_name(label)
    print(f"{ds.name} {args.split}[{args.index}]  label {label}" + (f" ({name})" if name != str(label) else ""))
    # auto: colour on a terminal, unless NO_COLOR is set and not empty (https://no-color.org)
    auto = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    color = auto if args.color == "auto" else args.color == "always"
    print("\n".join(terminal_lines(images[args.index], color=color)))
    if args.png is not None:
        path = save_png(images[args.index], args.png, scale=8 if args.scale is None else args.scale)
        print(f"saved {path}")
    return EXIT_OK


def _cmd_grid(args: argparse.Namespace) -> int:
    from .registry import get_dataset
    from .render import check_png_path, grid

    ds = get_dataset(args.name)
    ds.split(args.split)
    check_png_path(args.png, "--png")  # before the data is loaded
    images, labels = _split_arrays(ds, args.split, args.settings)
    sheet = grid(images, labels, dataset=ds, per_class=args.per_class, scale=args.scale)  # = mnistkit.grid
    sheet.save(args.png)
    print(f"saved {args.png} ({ds.num_classes} classes x {args.per_class}, {sheet.width}x{sheet.height} pixels)")
    return EXIT_OK


def _cmd_verify(args: argparse.Namespace) -> int:
    if args.mirror_src:
        return _cmd_verify_mirror(args)
    from . import maintenance
    from .api import dataset_store

    checked = bad = fixed = 0
    for ds in _datasets([args.name] if args.name else None):
        store = dataset_store(ds, settings=args.settings)
        if not store.folder.is_dir():
            if args.name:
                print(f"{ds.name}: nothing downloaded in {store.folder}")
            continue
        for spec in ds.files:
            findings = maintenance.check(store, spec)
            for finding in findings:
                checked += 1
                print(f"{'ok' if finding.ok else 'BAD':4} {finding.copy:5} {finding.path}")
                if not finding.ok:
                    bad += 1
                    print(f"     {finding.problem}")
            if not args.fix or all(f.ok for f in findings):
                continue
            try:
                for finding in findings:
                    if not finding.ok:
                        maintenance.discard(store, finding)  # a damaged file in use (Windows): reported below
                if not any(f.ok and f.copy == "file" for f in findings) and any(f.copy == "file" for f in findings):
                    store.fetch(spec)  # the folder held a bad copy: put the published file back
                if spec.kind == "archive":
                    store.archive_path(spec)  # verified again, its record rewritten
                else:
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


def _cmd_verify_mirror(args: argparse.Namespace) -> int:
    from .mirror import verify_mirror

    if args.fix:
        msg = "--fix repairs the data folder, not a mirror: run `mnistkit publish` to the mirror instead"
        raise ArgumentError(msg)
    findings = verify_mirror(args.mirror_src, [args.name] if args.name else None)
    for finding in findings:
        if finding.note:
            print(f"--   {finding.url}: {finding.note}")
            continue
        size = f" ({_size(finding.size)})" if finding.size is not None and finding.ok else ""
        print(f"{'ok' if finding.ok else 'BAD':4} {finding.url}{size}")
        if not finding.ok:
            print(f"     {finding.problem}")
    bad = sum(not f.ok for f in findings)
    findings = [f for f in findings if not f.note]
    if not findings:
        print(f"nothing to verify: no <dataset>/index.json under {args.mirror_src} (name a dataset to check its files)")
        return EXIT_ERROR
    print(f"{len(findings)} checked, {bad} bad")
    return EXIT_OK if not bad else EXIT_ERROR


def _cmd_publish(args: argparse.Namespace) -> int:
    import time

    from .mirror import publish

    began = time.monotonic()

    def report(item) -> None:
        print(f"{item.action:8} {item.url} ({_size(item.size)})", flush=True)

    done = publish(args.dest, args.names or None, report=report, settings=args.settings)
    moved = sum(p.size for p in done if p.action == "uploaded")
    uploaded = sum(p.action == "uploaded" for p in done)
    skipped = sum(p.action == "skipped" for p in done)
    print(
        f"{uploaded} uploaded ({_size(moved)}), {skipped} already there, "
        f"{sum(p.action == 'index' for p in done)} index(es) written in {time.monotonic() - began:.1f} s"
    )
    return EXIT_OK


def _sharers(ds, spec) -> list[str]:
    """The datasets that read ``spec`` from the same folder as ``ds`` (EMNIST's one archive: six)."""
    from .registry import DATASETS

    return [d.name for d in DATASETS.values() if d.folder == ds.folder and any(f.name == spec.name for f in d.files)]


def _cmd_clean(args: argparse.Namespace) -> int:
    from . import maintenance
    from .errors import DataFolderError

    chosen = _datasets(args.names)
    names = {ds.name for ds in chosen}
    kinds = ("partial", "cache") if args.cache_only else ("data", "partial", "cache")
    plan = []  # (dataset, store, spec, [(path, kind, size)]) to delete
    planned: set = set()
    for ds in chosen:
        store = _local_store(ds, args.settings)
        for spec in ds.files:
            files = [f for f in maintenance.local_files(store, spec) if f[1] in kinds and f[0] not in planned]
            if not files:
                continue
            others = [n for n in _sharers(ds, spec) if n not in names]
            if others:  # one archive read by datasets not being cleaned: it stays
                shown = _size(sum(f[2] for f in files))
                print(
                    f"{ds.name}: kept {spec.name} ({shown}), which {', '.join(others)} also read; "
                    f"name them too (or `all`) to delete it"
                )
                continue
            planned.update(f[0] for f in files)
            plan.append((ds, store, spec, files))
    data = [f for *_, files in plan for f in files if f[1] == "data"]
    # All or nothing, and said before asking: a folder that cannot be cleaned fails before any deletion.
    for store in {id(store): store for _, store, _, _ in plan}.values():
        store.check_folder(store.cache_folder)  # a file (say a user's ".cache") where a folder of ours belongs
        if not os.access(store.folder, os.W_OK | os.X_OK):
            msg = (
                f"cannot delete files in {store.folder}: it is read-only for you; "
                "nothing was deleted there or elsewhere"
            )
            raise DataFolderError(msg)
    if args.dry_run:
        for _, _, _, files in plan:
            for path, kind, size in files:
                print(f"would delete  {kind:7}  {_size(size):>9}  {path}")
        total = sum(f[2] for *_, files in plan for f in files)
        print(f"would free {_size(total)} in total ({len(data)} downloaded or hand-placed file(s)); nothing deleted")
        return EXIT_OK
    if data and not args.yes:
        folders = ", ".join(sorted({str(path.parent) for path, _, _ in data}))
        what = f"{len(data)} downloaded or hand-placed file(s), {_size(sum(f[2] for f in data))}, in {folders}"
        if not sys.stdin.isatty():
            msg = (
                f"clean would delete {what}; pass --yes to confirm (there is no terminal to ask on), "
                f"--cache-only to delete only what is rebuilt from them, or --dry-run to list it all"
            )
            raise ArgumentError(msg)
        # The question goes to stderr, as `rm -i` asks: with stdout sent to a file or a pipe
        # (`mnistkit clean > log`) it would land there and the command would seem to hang.
        try:
            print(
                f"Delete {what}? Getting them back means downloading them again. [y/N] ",
                end="",
                file=sys.stderr,
                flush=True,
            )
            answer = sys.stdin.readline()  # "" at end of input (Ctrl-D): no
        except KeyboardInterrupt:  # Ctrl-C at the question: a no, said as such (exit 130)
            print("\nmnistkit: interrupted; nothing deleted", file=sys.stderr)
            return EXIT_INTERRUPTED
        if not answer:
            print(file=sys.stderr)  # end the question's line, which Ctrl-D left open
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted (`mnistkit clean --cache-only` deletes only the caches)")
            return EXIT_OK
    freed: dict[str, int] = {ds.name: 0 for ds in chosen}
    in_use: list = []  # files a program still holds (Windows): reported after the rest is freed
    for ds, store, spec, _ in plan:
        try:
            freed[ds.name] += maintenance.clean(store, spec, kinds, in_use)
        except OSError as err:
            msg = f"cannot delete {spec.name}'s files in {store.folder}: {err.strerror or err}"
            raise DataFolderError(msg) from err
    for ds in chosen:
        if freed[ds.name] or args.names:
            print(f"{ds.name}: freed {_size(freed[ds.name])} in {_local_store(ds, args.settings).folder}")
    print(f"freed {_size(sum(freed.values()))} in total")
    if in_use:
        from .errors import files_in_use

        _error(files_in_use(in_use, "delete"))
        return EXIT_ERROR
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .export import PARTIAL_SUFFIX, export

    try:
        written = export(args.name, args.format, args.out, splits=args.split, **args.settings.keywords())
    except KeyboardInterrupt:
        partial = sorted(Path(args.out).glob(f"*{PARTIAL_SUFFIX}"))
        where = f" ({', '.join(p.name for p in partial)} holds what was written)" if partial else ""
        print(
            f"mnistkit: interrupted: the export to {args.out} is unfinished{where}; "
            "run the same command again to finish it",
            file=sys.stderr,
        )
        return _interrupted()
    print(f"wrote {len(written)} file(s) to {args.out}")
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    from .errors import DataFolderError
    from .serve import serve

    root = args.settings.data_home
    if not root.is_dir():
        msg = f"the data folder {root} does not exist; run `mnistkit download` first or pass --data-home"
        raise DataFolderError(msg)

    def ready(server) -> None:
        print(f"serving on {server.url} (folder {root}); on other machines: MNISTKIT_MIRROR={server.url}", flush=True)

    try:
        serve(
            root,
            args.host,
            args.port,
            ready=ready,
            header_timeout=args.header_timeout,
            stall_timeout=args.stall_timeout,
            max_connections=args.max_connections,
        )
    except MnistkitError:  # already one sentence, with its own exit code (a taken port: 1)
        raise
    except OSError as err:  # the address: a host name that does not resolve, a port in use or not ours
        why = err.strerror or str(err)
        msg = (
            f"cannot serve on {args.host} port {args.port}: {why}; "
            "choose another --host or --port (0 picks a free port)"
        )
        raise ArgumentError(msg) from err
    print("mnistkit: server stopped", file=sys.stderr)
    return EXIT_OK


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning as one line on stderr, in the command line's words."""
    print(f"mnistkit: warning: {_cli_words(str(message))}", file=sys.stderr)


def _check_data_home(args: argparse.Namespace) -> None:
    """A data folder given as an empty string: a usage error before anything runs."""
    if args.data_home is not None and not args.data_home.strip():
        msg = "--data-home '' is empty; give a folder (it is created if missing)"
        raise ArgumentError(msg)


def _check_home_folder(args: argparse.Namespace) -> None:
    """A data folder naming a file: a usage error before anything runs."""
    from .settings import ENV_HOME

    given = f"--data-home {args.data_home!r}" if args.data_home is not None else f"{ENV_HOME}"
    home = args.settings.data_home
    for above in (home, *home.parents):
        if above.exists():
            if not above.is_dir():
                where = "is a file" if above == home else f"cannot be made: {above} is a file"
                msg = f"the data folder {home} ({given}) {where}, not a folder; give a folder"
                raise ArgumentError(msg)
            return


def _tolerant_output() -> None:
    """Outputs that cannot encode every character (an ASCII or cp1252 console) write ``\\xe4``, not a traceback.

    A data folder or dataset title outside that encoding would otherwise end the command half-way
    with UnicodeEncodeError.  UTF-8 outputs are left alone (they keep undecodable path bytes).
    """
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").replace("-", "").replace("_", "").lower()
        if encoding != "utf8" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def _interrupted() -> int:
    """Ctrl-C: end now, even while worker threads are in the middle of a download.

    Python would wait for them at exit (a stalled download: a minute or more after Ctrl-C).  Ending
    the process at once is safe: every file is written under a temporary name and renamed, a
    partial download is kept to resume, and the OS releases the locks, as when a process is killed.
    """
    import threading

    if threading.active_count() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
    return EXIT_INTERRUPTED


def _reader_left() -> int:
    """End quietly, as Unix tools do when the reader of their output has gone: by SIGPIPE.

    Python ignores SIGPIPE (so the write raised BrokenPipeError instead); restoring the default
    and raising it ends the process the way ``cat`` or ``yes`` ends in ``... | head``.  Nothing
    more can reach stdout: it is pointed at /dev/null so that the exit-time flush stays quiet.
    """
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    import signal

    if hasattr(signal, "SIGPIPE"):  # not on Windows
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGPIPE)
    return EXIT_ERROR  # pragma: no cover - only where there is no SIGPIPE


class _LowerLevelFormatter(logging.Formatter):
    """Log lines as ``mnistkit: warning: ...``: the level in lower case, as in every other CLI line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return self._style.format(logging.makeLogRecord({**record.__dict__, "levelname": record.levelname.lower()}))


# --- the parser ---------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, pointing at the command's --help."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        msg = f"{text!r} is not a whole number"
        raise argparse.ArgumentTypeError(msg) from None


def _in_range(lo: int, hi: int):
    """An argparse type: a whole number from ``lo`` to ``hi``."""

    def parse(text: str) -> int:
        value = _whole(text)
        if not lo <= value <= hi:
            msg = f"{value} is out of range: give a whole number from {lo} to {hi}"
            raise argparse.ArgumentTypeError(msg)
        return value

    return parse


def _serve_seconds(text: str) -> float:
    """An argparse type: seconds above 0 and at most an hour."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 3600:
        msg = f"{text!r} is not a number of seconds above 0 and at most 3600"
        raise argparse.ArgumentTypeError(msg)
    return value


def _serve_count(text: str) -> int:
    """An argparse type: a whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"{text!r} is not a whole number of 1 or more"
        raise argparse.ArgumentTypeError(msg)
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from .render import MAX_SCALE

    parser = _Parser(
        prog="mnistkit",
        description="Get, check, look at, export and serve MNIST-family datasets.",
        epilog="Exit codes: 0 ok, 1 failure, 2 bad arguments, 3 files missing and not obtainable, 130 interrupted. "
        "Environment: MNISTKIT_HOME (data folder), MNISTKIT_MIRROR, MNISTKIT_OFFLINE, MNISTKIT_TIMEOUT.",
    )
    parser.add_argument("--version", action="version", version=f"mnistkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("--data-home", metavar="DIR", help="data folder (default: $MNISTKIT_HOME or the user cache)")
    parser.add_argument(
        "--mirror",
        action="append",
        metavar="URL",
        help="extra source tried before the built-in mirrors: an http(s):// or file:// URL, an fsspec "
        "URL such as s3://bucket/prefix (pip install 'mnistkit[cloud]'), or a folder holding "
        "<dataset>/<file>; repeatable (default: $MNISTKIT_MIRROR)",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        default=None,
        help="never use the network (http(s), s3://, gs://, ...); folders and file:// sources still are "
        "(default: $MNISTKIT_OFFLINE)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="seconds to connect and between bytes of a download (default: $MNISTKIT_TIMEOUT, else 10 and 30)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def command(name: str, func, help: str, example: str) -> argparse.ArgumentParser:  # noqa: A002
        p = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".", epilog=f"example: {example}")
        p.set_defaults(func=func)
        return p

    command("list", _cmd_list, "list every dataset with its size, classes and whether it is here", "mnistkit list")

    p = command(
        "download", _cmd_download, "download, verify and cache datasets ahead of time", "mnistkit download mnist"
    )
    p.add_argument("names", nargs="+", metavar="NAME", help="dataset names, or 'all'")

    p = command(
        "info",
        _cmd_info,
        "splits, shapes, classes, checksums, paths, license and citation",
        "mnistkit info mnist --json",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")

    p = command(
        "show",
        _cmd_show,
        "print an image in the terminal with its label",
        "mnistkit show mnist --split test --index 0 --png seven.png",
    )
    p.add_argument("name", nargs="?", default="mnist", help="dataset name (default: mnist)")
    p.add_argument("--split", default="train", help="split (default: train)")
    p.add_argument("--index", type=_whole, default=0, help="image number; negative counts from the end (default: 0)")
    p.add_argument("--png", metavar="FILE", help="also save the image as a PNG (a name ending in .png)")
    p.add_argument(
        "--scale",
        type=_in_range(1, MAX_SCALE),
        default=None,
        metavar=f"1..{MAX_SCALE}",
        help="PNG enlargement factor, with --png (default: 8)",
    )
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="grey half blocks (always), a character ramp (never), or by terminal (auto)",
    )

    p = command(
        "grid",
        _cmd_grid,
        "save a montage: a labelled row of samples per class",
        "mnistkit grid mnist --per-class 10 --png digits.png",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--split", default="train", help="split (default: train)")
    p.add_argument(
        "--per-class",
        type=_in_range(1, 1000),
        default=8,
        metavar="K",
        help="samples per class, 1 or more (default: 8; the picture may be at most 16384 pixels wide)",
    )
    p.add_argument("--scale", type=_in_range(1, 16), default=2, metavar="1..16", help="enlargement factor (default: 2)")
    p.add_argument("--png", metavar="FILE", required=True, help="the PNG to write (a name ending in .png)")

    p = command(
        "verify",
        _cmd_verify,
        "re-hash every downloaded file and cache entry against the registry",
        "mnistkit verify mnist --fix",
    )
    p.add_argument("name", nargs="?", metavar="NAME", help="one dataset (default: all that are here)")
    p.add_argument("--fix", action="store_true", help="delete bad copies and fetch or rebuild them")
    # Its own dest: the global --mirror (sources to download from) must not be overwritten by this one.
    p.add_argument(
        "--mirror",
        dest="mirror_src",
        metavar="SRC",
        help="check a mirror where it is instead (folder, http(s):// or fsspec URL such as "
        "s3://bucket/prefix): every file read and verified, sizes and checksums compared "
        "with its index.json",
    )

    p = command(
        "publish",
        _cmd_publish,
        "copy verified files to a folder or object store as a mirror, with an index of sizes and checksums",
        "mnistkit publish s3://bucket/mnistkit mnist fashion-mnist",
    )
    p.add_argument("dest", metavar="DEST", help="folder, file:// or fsspec URL (s3://, gs://, az://, sftp://, ...)")
    p.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="datasets to publish, downloaded first if need be (default: those in the data folder)",
    )

    p = command(
        "clean",
        _cmd_clean,
        "delete downloaded files and cache entries, saying how much was freed",
        "mnistkit clean mnist --dry-run",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="datasets, or 'all' (default: all)")
    p.add_argument(
        "--cache-only",
        action="store_true",
        help="delete only caches and unfinished downloads (rebuilt as needed; never asks)",
    )
    p.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help="delete downloaded and hand-placed files without asking (asked on a terminal, else required)",
    )
    p.add_argument("--dry-run", "-n", action="store_true", help="list what would be deleted; delete nothing")

    from .export import FORMATS

    p = command(
        "export",
        _cmd_export,
        "write a dataset as PNG folders per class, CSV or .npz",
        "mnistkit export mnist --format png --out mnist-png",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    p.add_argument("--split", action="append", metavar="S", help="only this split (repeatable; default: all)")

    p = command(
        "serve",
        _cmd_serve,
        "serve the data folder read-only over HTTP as a mirror",
        "mnistkit serve --host 0.0.0.0 --port 8000, then MNISTKIT_MIRROR=http://HOST:8000 elsewhere",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 exposes it to the network)",
    )
    p.add_argument(
        "--port",
        type=_in_range(0, 65535),
        default=8000,
        metavar="PORT",
        help="port (default: 8000; 0 picks a free one)",
    )
    # Defaults as literals (equal to mnistkit.serve's, a test checks): importing the server here would
    # slow every command.
    p.add_argument(
        "--header-timeout",
        type=_serve_seconds,
        default=10.0,
        metavar="S",
        help="drop a client whose request head is not complete within S seconds (default: %(default)g)",
    )
    p.add_argument(
        "--stall-timeout",
        type=_serve_seconds,
        default=30.0,
        metavar="S",
        help="drop a client whose request body, or any 256 KiB of whose download, takes longer than "
        "S seconds (default: %(default)g)",
    )
    p.add_argument(
        "--max-connections",
        type=_serve_count,
        default=2000,
        metavar="N",
        help="connections at once; more are answered 503, retry later (default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING)
    for handler in logging.getLogger().handlers:  # `mnistkit: warning: ...`, as Python warnings print
        handler.setFormatter(_LowerLevelFormatter("mnistkit: %(levelname)s: %(message)s"))
    import warnings

    warnings.showwarning = _show_warning
    try:
        _check_data_home(args)
        # One value for where bytes come from, built once from the flags (each unset flag reads its variable).
        try:
            args.settings = Settings.resolve(args.data_home, args.mirror, args.offline, None, args.timeout)
        except ArgumentError as err:
            if not str(err).startswith("mirrors: "):
                raise
            raise ArgumentError("--mirror " + str(err).removeprefix("mirrors: ")) from None  # the flag's words
        _check_home_folder(args)
        if sys.stdout is None:  # `mnistkit list >&-`: Python gives no stdout object at all
            msg = (
                "standard output is closed; give the command somewhere to write "
                "(a terminal, a file, a pipe, or >/dev/null to discard it)"
            )
            raise OutputError(msg)
        _tolerant_output()
        code = args.func(args)
        sys.stdout.flush()  # here, not at exit: a reader that left is handled below
        return code
    except MnistkitError as err:
        if args.debug:
            raise
        _error(err)
        return _exit_code(err)
    except BrokenPipeError:  # `mnistkit info mnist | head`: the reader left, nothing to report
        return _reader_left()
    except OSError as err:  # the disk or the network outside mnistkit's own checks: still one line
        if args.debug:
            raise
        where = f"{err.filename}: " if err.filename else ""
        print(f"mnistkit: error: {where}{err.strerror or err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(
            "mnistkit: interrupted; nothing half-written is kept under a final name: "
            "run the same command again to go on",
            file=sys.stderr,
        )
        return _interrupted()
