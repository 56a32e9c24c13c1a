"""File operations that keep their promises under Windows file semantics too.

On Windows a file that any process has open or memory-mapped cannot be replaced, renamed or
deleted (``PermissionError``, WinError 5 or 32), paths longer than 260 characters fail unless the
machine enabled long paths, and there is no ``fork`` and no ``SIGKILL``.  POSIX lets all of that
happen, so code written there fails on Windows only when a file is in use: a user holding a
loaded array (a memory map of the cache) while ``mnistkit verify --fix`` or ``clean`` runs, a second
process reading a file at the moment another renames over it.

What the store and the downloader do about it:

* a rename over a file that another process reads for a moment (a manifest, a downloaded file) is
  retried briefly on Windows, then reported as one line naming the file;
* a cache entry that cannot be replaced because something maps it is rebuilt *beside* it under a
  new name that its manifest records; the old file is deleted once nothing maps it any more;
* deleting files that are in use is reported, never half-done silently.

``tests/winsem.py`` emulates these rules on Linux so that the tests exercise these paths.
"""

from __future__ import annotations

import os
import sys
import time

#: Whether this is Windows (tests set it to emulate the path-length rule).
IS_WINDOWS = sys.platform == "win32"

#: The classic Windows limit on a full path, in characters, when long paths are not enabled.
MAX_PATH = 260

# Windows: a reader that has the file open for a moment makes a rename fail; it usually lets go
# within milliseconds (antivirus scanners and search indexers do the same). About 1 s in total.
_RETRY_DELAYS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.3)


def in_use(err: OSError) -> bool:
    """Whether ``err`` is what Windows raises for a file another handle or mapping holds.

    WinError 32 is a sharing violation, 5 access denied (also raised for a mapped file),
    1224 "a user-mapped section is open".  Emulated on POSIX as a bare ``PermissionError``.
    """
    return isinstance(err, PermissionError) or getattr(err, "winerror", None) in (5, 32, 1224)


def replace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """``os.replace``, retried for about a second on Windows while ``dst`` (or ``src``) is in use.

    Raises
    ------
    PermissionError
        Still in use after the retries (on POSIX: at once, as ``os.replace`` does).
    """
    delays = _RETRY_DELAYS if IS_WINDOWS else ()
    for delay in (*delays, None):
        try:
            os.replace(src, dst)
            return
        except OSError as err:
            if delay is None or not in_use(err):
                raise
            time.sleep(delay)


def unlink_unless_in_use(path: str | os.PathLike) -> bool:
    """Delete ``path`` (if it exists) unless a program holds it (Windows: open or mapped); whether it is gone.

    Raises
    ------
    OSError
        Any other failure to delete it.
    """
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        if not in_use(err):
            raise
        return False
    return True


def long_paths_enabled() -> bool:
    """Whether Windows accepts paths over 260 characters here (always True elsewhere)."""
    if not IS_WINDOWS:
        return True
    if sys.platform != "win32":  # Windows emulated elsewhere (tests): no registry, so no long paths
        return False
    try:
        import winreg

        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SYSTEM\CurrentControlSet\Control\FileSystem") as key:
            return bool(winreg.QueryValueEx(key, "LongPathsEnabled")[0])
    except (ImportError, OSError):
        return False


def too_long(folder: str | os.PathLike, longest_name: int) -> bool:
    """Whether a file of ``longest_name`` characters in ``folder`` would pass Windows' 260-character limit."""
    if not IS_WINDOWS:
        return False
    return len(os.path.abspath(folder)) + 1 + longest_name >= MAX_PATH and not long_paths_enabled()
