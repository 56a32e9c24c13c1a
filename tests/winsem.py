"""Windows file semantics, emulated on Linux for the tests.

On Windows a file that a process has open or memory-mapped cannot be replaced, renamed or
deleted: ``os.replace``, ``os.rename``, ``os.unlink`` and ``os.remove`` raise ``PermissionError``.
POSIX allows all of it, so code that breaks this rule passes every Linux test and fails for a
Windows user holding a loaded array (a memory map of the cache) while ``verify --fix`` or ``clean``
runs.  :func:`activate` patches those four functions (and pathlib's copies of them on Python 3.10)
to raise the same ``PermissionError`` when the file is held, as the kernel reports it:

* by this process: its open descriptors (``/proc/self/fd``) and mappings (``/proc/self/maps``,
  which still lists a map whose descriptor was closed);
* by the processes listed in ``$MNISTKIT_WINSEM_PIDS``: a test process that holds a map and runs
  the command line in a child sets it, so the child sees what Windows would show it.

Operations relative to a directory descriptor (``dir_fd=``, as ``shutil.rmtree`` uses) are not
checked.  ``MNISTKIT_EMULATE_WINDOWS=1`` makes ``conftest.py`` activate this for every test, and
children started through ``helpers.run_cli`` activate it too (CI runs the store, download and CLI
tests that way); ``tests/test_windows.py`` uses it directly.
"""

from __future__ import annotations

import errno
import os
import pathlib
import stat
from collections.abc import Callable, Iterable

#: "1": every test (and every CLI child) runs under the emulation.
ENV = "MNISTKIT_EMULATE_WINDOWS"
#: Comma-separated pids whose open and mapped files also count as held.
PIDS_ENV = "MNISTKIT_WINSEM_PIDS"

_REAL = {name: getattr(os, name) for name in ("replace", "rename", "unlink", "remove")}


def supported() -> bool:
    """Whether this system shows open and mapped files under /proc (Linux)."""
    return os.path.isfile("/proc/self/maps") and os.path.isdir("/proc/self/fd")


def held_files(pids: Iterable[str] = ()) -> set[tuple[int, int]]:
    """(st_dev, st_ino) of every regular file this process and ``pids`` have open or mapped."""
    held: set[tuple[int, int]] = set()
    for pid in ("self", *pids):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # that process has gone: it holds nothing any more
            continue
        for fd in fds:
            try:
                st = os.stat(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                held.add((st.st_dev, st.st_ino))
        try:
            with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as fh:
                lines = fh.readlines()
        except OSError:
            continue
        for line in lines:
            # address perms offset dev inode [path]; anonymous mappings have inode 0
            parts = line.split(maxsplit=5)
            if len(parts) < 6 or parts[4] == "0":
                continue
            major, minor = (int(x, 16) for x in parts[3].split(":"))
            held.add((os.makedev(major, minor), int(parts[4])))
    return held


def _pids() -> list[str]:
    own = str(os.getpid())
    return [p for p in os.environ.get(PIDS_ENV, "").split(",") if p.strip() and p.strip() != own]


def check(path, doing: str) -> None:
    """Raise Windows' ``PermissionError`` if the regular file at ``path`` is held by a watched process."""
    try:
        if os.fspath(path).startswith("/dev/shm/"):
            # POSIX shared memory (torch's and multiprocessing's): a Linux mechanism, which unlinks
            # open segments by design and has no Windows file behind it; not mnistkit's files
            return
        st = os.lstat(path)
    except (OSError, TypeError, ValueError):
        return  # missing (the real call reports it) or not a path
    if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) in held_files(_pids()):
        raise PermissionError(
            errno.EACCES,
            f"[emulated Windows] cannot {doing}: the file is open or memory-mapped by a process",
            os.fspath(path),
        )


def _guard_two(name: str) -> Callable:
    real = _REAL[name]

    def guarded(src, dst, *args, **kwargs):
        if not kwargs.get("src_dir_fd") and not kwargs.get("dst_dir_fd"):
            check(src, f"{name} it")
            check(dst, f"{name} another file over it")
        return real(src, dst, *args, **kwargs)

    guarded.__name__ = name
    return guarded


def _guard_one(name: str) -> Callable:
    real = _REAL[name]

    def guarded(path, *args, **kwargs):
        if kwargs.get("dir_fd") is None:
            check(path, "delete it")
        return real(path, *args, **kwargs)

    guarded.__name__ = name
    return guarded


def activate() -> Callable[[], None]:
    """Patch ``os`` (and pathlib's accessor on 3.10); returns a function that undoes it."""
    patched = {
        "replace": _guard_two("replace"),
        "rename": _guard_two("rename"),
        "unlink": _guard_one("unlink"),
        "remove": _guard_one("remove"),
    }
    undo: list[Callable[[], None]] = []
    for name, fn in patched.items():
        setattr(os, name, fn)
        undo.append(lambda name=name: setattr(os, name, _REAL[name]))
    accessor = getattr(pathlib, "_NormalAccessor", None)  # Python 3.10 binds os functions at import
    if accessor is not None:
        for name, fn in patched.items():
            if hasattr(accessor, name):
                old = accessor.__dict__[name]
                setattr(accessor, name, staticmethod(fn))
                undo.append(lambda name=name, old=old: setattr(accessor, name, old))

    def deactivate() -> None:
        for step in reversed(undo):
            step()

    return deactivate


def activate_from_env() -> None:
    """In a child process: activate when ``$MNISTKIT_EMULATE_WINDOWS`` is "1" (kept for its lifetime)."""
    if os.environ.get(ENV) == "1" and supported():
        activate()
