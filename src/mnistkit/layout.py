"""Names inside a dataset folder: the one place that spells them.

::

    <dataset folder>/<published name>              downloaded or hand-placed file
    <dataset folder>/<published name>.part         a download in progress (resumable)
    <dataset folder>/<published name>.part.json    its resume record (see sources.ResumeRecord)
    <dataset folder>/.downloaded/<published name>  a verified download whose published name holds
                                                   a file of the user's that is not the published data
    <dataset folder>/.cache/<stem>.npy, .json      the decoded array and its manifest
    <dataset folder>/.cache/<stem>.<12 hex>.npy    an entry rebuilt beside one still mapped (Windows);
                                                   its manifest names it
    <dataset folder>/.cache/.<stem>.<random>.tmp   a cache file being written
    <dataset folder>/.locks/<stem>.lock            the inter-process lock of one file

The store, the downloader, ``serve`` and ``clean`` ask this module for these names
instead of spelling them, so a change of layout is a change here.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR = ".cache"
LOCK_DIR = ".locks"
DOWNLOADED_DIR = ".downloaded"
PART_SUFFIX = ".part"
RECORD_SUFFIX = ".part.json"
TEMP_SUFFIX = ".tmp"

#: Suffixes of files that are never data under a final name (``serve`` refuses them).
UNFINISHED_SUFFIXES = (PART_SUFFIX, RECORD_SUFFIX, TEMP_SUFFIX)


def part_path(folder: Path, name: str) -> Path:
    """Where the download of ``name`` into ``folder`` is written until it is verified."""
    return folder / (name + PART_SUFFIX)


def record_path(part: Path) -> Path:
    """The resume record that belongs to the ``.part`` file ``part``."""
    return part.with_name(part.name[: -len(PART_SUFFIX)] + RECORD_SUFFIX)


def downloaded_path(folder: Path, name: str) -> Path:
    """Where a verified download of ``name`` goes when the published name holds another file."""
    return folder / DOWNLOADED_DIR / name


def temp_prefix(stem: str) -> str:
    """The prefix of every temporary file written for ``stem`` (its cache entry, its manifest)."""
    return f".{stem}."


def beside_npy_name(stem: str) -> str:
    """A new name for ``stem``'s cache ``.npy``, for a rebuild beside an entry that is still in use."""
    import secrets

    return f"{stem}.{secrets.token_hex(6)}.npy"


def is_npy_name(stem: str, name: str) -> bool:
    """Whether ``name`` is a cache ``.npy`` of ``stem``: ``<stem>.npy`` or one from :func:`beside_npy_name`."""
    if name == f"{stem}.npy":
        return True
    token = name[len(stem) + 1 : -len(".npy")]
    return (
        name.startswith(stem + ".")
        and name.endswith(".npy")
        and len(token) == 12
        and all(c in "0123456789abcdef" for c in token)
    )


def create_temp(folder: str | os.PathLike, prefix: str, suffix: str = TEMP_SUFFIX) -> tuple[int, str]:
    """Create a new, uniquely named file for writing; returns (fd, path).

    Unlike ``tempfile.mkstemp`` (mode 0600, which would hide a shared cache from the
    other users of a data folder), the file gets 0666 less the umask, applied by the
    kernel: nothing here reads or changes the process-wide umask, so threads are safe.
    """
    import secrets

    for _ in range(100):
        path = os.path.join(folder, f"{prefix}{secrets.token_hex(6)}{suffix}")
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), path
        except FileExistsError:
            continue
    from .errors import DataFolderError

    msg = f"{folder}: could not create a temporary file"
    raise DataFolderError(msg)


def unlink(path: str | os.PathLike) -> None:
    """Delete ``path`` if it exists."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
