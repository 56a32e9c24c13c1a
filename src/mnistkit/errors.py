"""One exception tree for everything mnistkit raises.

::

    MnistkitError                      base of every mnistkit error
    ├── IdxFormatError (ValueError)    bytes that are not a valid IDX file
    ├── ChecksumError (ValueError)     right format, wrong content
    ├── DataFolderError (OSError)      the data folder cannot be created or written
    ├── OutputError (OSError)          a file or folder asked for (export, PNG) cannot be written
    ├── MissingFilesError (FileNotFoundError)
    │                                  files absent and not allowed or able to fetch them
    ├── DownloadError (OSError)        every source failed; lists each with its reason
    │   └── FilesUnavailableError (also MissingFilesError)
    │                                  several files: every one missing, each source once
    ├── LockTimeout (TimeoutError)     another process held a lock for too long
    ├── RegistryMismatchError (ValueError)
    │                                  a published file contradicts a number or table of the registry
    ├── ArgumentError (ValueError)     a bad argument to a public function
    └── MissingDependencyError (ImportError)
                                       an optional package is not installed

Warnings (conditions to act on that do not stop the call) are ``MnistkitWarning``,
a ``UserWarning``.

Each leaf also inherits a builtin so that callers who know nothing of mnistkit
can still catch it sensibly, and each message says what went wrong, with which
file, and what to do next.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path


class MnistkitError(Exception):
    """Base class of every error raised by mnistkit."""


class IdxFormatError(MnistkitError, ValueError):
    """The bytes are not a valid IDX file (or a compressed one).

    Parameters
    ----------
    source : str
        The file (or description of the bytes) that was read.
    reason : str
        What is wrong, in words.
    offset : int, optional
        Byte offset in the decoded stream where the problem was found.
    """

    def __init__(self, source: str, reason: str, offset: int | None = None) -> None:
        self.source = str(source)
        self.reason = reason
        self.offset = offset
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{self.source}: not a valid IDX file{where}: {reason}")

    def __reduce__(self):  # keep pickling (multiprocessing) working
        return (type(self), (self.source, self.reason, self.offset))


class ChecksumError(MnistkitError, ValueError):
    """A file decoded fine but its content is not the published one.

    Parameters
    ----------
    source : str
        The file checked.
    algorithm : str
        What was compared: ``"sha256"``, ``"md5"`` or ``"size"`` (in bytes).
    expected, actual : str
        The published value and the file's.
    hint : str, optional
        What to do next.
    of : str, default "decoded content"
        What the value describes: ``"decoded content"`` (the IDX bytes, whatever the
        container), ``"compressed file"`` (the file as stored) or ``"archive"``.
    """

    def __init__(
        self, source: str, algorithm: str, expected: str, actual: str, hint: str = "", of: str = "decoded content"
    ) -> None:
        self.source = str(source)
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual
        self.hint = hint
        self.of = of
        cut = (lambda v: v) if algorithm == "size" else (lambda v: v[:16] + "...")
        msg = (
            f"{self.source}: {algorithm} of the {of} is {cut(actual)}, "
            f"expected {cut(expected)}; the file is not the published data"
        )
        if hint:
            msg += f". {hint}"
        super().__init__(msg)

    def __reduce__(self):
        return (type(self), (self.source, self.algorithm, self.expected, self.actual, self.hint, self.of))


class DataFolderError(MnistkitError, OSError):
    """The data folder cannot be created or written."""


class ServeError(MnistkitError, OSError):
    """``serve`` cannot listen where asked although the address is valid: the port is taken or needs privileges."""


class OutputError(MnistkitError, OSError):
    """A file or folder the caller asked for (an export, a PNG) cannot be written there."""


def cannot_write(path: Path, err: OSError) -> OutputError:
    """An OSError met while writing ``path`` as one sentence naming ``path`` (never a temporary name)."""
    why = err.strerror or str(err)
    if isinstance(err, PermissionError):
        what = "choose a folder you can write to"
    elif isinstance(err, (NotADirectoryError, FileExistsError)):
        what = "a file stands where a folder is needed; choose another place"
    elif isinstance(err, IsADirectoryError):
        what = "a folder stands where the file must go; move it or choose another place"
    elif isinstance(err, FileNotFoundError):
        what = "its folder cannot be made there; choose another place"
    else:
        what = "free some space or choose another place"
    return OutputError(f"cannot write {path}: {why}; {what}")


def write_failed(folder: Path, err: OSError) -> DataFolderError:
    """A failed write (full disk, quota, file size limit) as an error that names the folder."""
    msg = (
        f"cannot write in {folder}: {err.strerror or err}. Free some space there, or pass "
        f"data_home=... (or set MNISTKIT_HOME) to a folder with room; nothing half-written was kept"
    )
    return DataFolderError(msg)


class MissingFilesError(MnistkitError, FileNotFoundError):
    """Dataset files are absent and may not (or could not) be downloaded.

    Parameters
    ----------
    dataset : str
        Dataset name.
    missing : sequence of str
        Published file names that are missing.
    folder : pathlib.Path
        The folder where they should be placed.
    urls : sequence of str
        Where each can be fetched by hand.
    reason : str
        Why nothing was downloaded.
    """

    def __init__(
        self,
        dataset: str,
        missing: Sequence[str],
        folder: Path,
        urls: Sequence[str] = (),
        reason: str = "",
    ) -> None:
        self.dataset = dataset
        self.missing = list(missing)
        self.folder = Path(folder)
        self.urls = list(urls)
        self.reason = reason
        lines = [f"{dataset}: {len(self.missing)} file(s) missing: {', '.join(self.missing)}"]
        if reason:
            lines[0] += f" ({reason})"
        lines.append(f"Put them (compressed or not) in {self.folder}")
        if self.urls:
            lines.append("They can be downloaded by hand from:")
            lines.extend(f"  {u}" for u in self.urls)
        lines.append("or set MNISTKIT_MIRROR to a folder or URL that holds <dataset>/<file name>.")
        super().__init__("\n".join(lines))

    def __reduce__(self):
        return (type(self), (self.dataset, self.missing, self.folder, self.urls, self.reason))

    def with_reason(self, reason: str) -> MissingFilesError:
        """The same error with another reason (one that also names local files found but refused)."""
        return MissingFilesError(self.dataset, self.missing, self.folder, self.urls, reason)


class DownloadError(MnistkitError, OSError):
    """Every source of a file failed.

    Parameters
    ----------
    file_name : str
        The published file name.
    attempts : iterable of (str, str)
        Each source tried, with the reason it failed.
    folder : pathlib.Path
        Where the file would have been stored.
    """

    def __init__(self, file_name: str, attempts: Iterable[tuple[str, str]], folder: Path) -> None:
        self.file_name = file_name
        self.attempts = list(attempts)
        self.folder = Path(folder)
        lines = [f"could not get {file_name} from any of {len(self.attempts)} source(s):"]
        lines.extend(f"  {src}: {why}" for src, why in self.attempts)
        lines.append(
            f"What to do: set MNISTKIT_MIRROR to a working mirror (URL or folder), or download "
            f"{file_name} by hand and put it in {self.folder}"
        )
        super().__init__("\n".join(lines))

    def __reduce__(self):
        return (type(self), (self.file_name, self.attempts, self.folder))

    def with_attempts_before(self, attempts: Iterable[tuple[str, str]]) -> DownloadError:
        """The same error with ``attempts`` listed first (local files found but refused)."""
        return DownloadError(self.file_name, [*attempts, *self.attempts], self.folder)


class FilesUnavailableError(MissingFilesError, DownloadError):
    """Several files are missing and no source could provide them.

    One error for everything one call needed: every missing file, and each
    source tried with its reason, once (a source that failed the same way for
    every file is listed once, not once per file).  It is both a
    :class:`MissingFilesError` and a :class:`DownloadError`.

    Parameters
    ----------
    dataset : str
        Dataset name.
    missing : sequence of str
        Published file names that are missing.
    folder : pathlib.Path
        The folder where they should be placed.
    attempts : iterable of (str, str)
        Each source tried (a URL or folder; for one file) with the reason it failed.
    urls : sequence of str
        Where each can be fetched by hand.
    """

    def __init__(
        self,
        dataset: str,
        missing: Sequence[str],
        folder: Path,
        attempts: Iterable[tuple[str, str]],
        urls: Sequence[str] = (),
    ) -> None:
        self.dataset = dataset
        self.missing = list(dict.fromkeys(missing))
        self.folder = Path(folder)
        self.attempts = list(dict.fromkeys((str(src), why) for src, why in attempts))
        self.urls = list(dict.fromkeys(urls))
        self.file_name = self.missing[0] if self.missing else ""
        self.reason = "no source could provide them"
        groups: dict[tuple[str, str], list[str]] = {}
        for src, why in self.attempts:
            name = next((m for m in self.missing if src.endswith("/" + m)), None)
            base = src[: -len(name)] if name else src
            groups.setdefault((base, why), []).extend([name] if name else [])
        head = f"{dataset}: {len(self.missing)} file(s) missing, and no source could provide them"
        lines = [f"{head}: {', '.join(self.missing)}"]
        for (base, why), names in groups.items():
            some = sorted(set(names))
            which = f" (for {', '.join(some)})" if some and len(some) < len(self.missing) else ""
            lines.append(f"  {base}: {why}{which}")
        lines.append(
            f"What to do: check the network, or set MNISTKIT_MIRROR to a working mirror (a URL or folder holding "
            f"<dataset>/<file name>), or download them by hand and put them (compressed or not) in {self.folder}"
        )
        OSError.__init__(self, "\n".join(lines))

    def __reduce__(self):
        return (type(self), (self.dataset, self.missing, self.folder, self.attempts, self.urls))


class RegistryMismatchError(MnistkitError, ValueError):
    """A file vouched for as the published one contradicts what mnistkit's registry declares.

    The data is right and the registry is wrong: the message names the registry's
    number (or table), the file, and what the file says, so that it can be reported.
    """


REPORT_HINT = "this is a bug in mnistkit's registry: please report it with this message"


class LockTimeout(MnistkitError, TimeoutError):
    """Another process held the lock on a dataset file for too long."""


class ArgumentError(MnistkitError, ValueError):
    """A public function got an argument it cannot use."""


class MnistkitWarning(UserWarning):
    """Something the caller should act on that did not stop the call (a Python warning, shown once)."""


class MissingDependencyError(MnistkitError, ImportError):
    """An optional dependency is needed for this feature."""

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"this feature needs {package}, which is not installed; install it with: pip install 'mnistkit[{extra}]'"
        )

    def __reduce__(self):
        return (type(self), (self.package, self.extra))


def without_pool_frames(err: BaseException) -> BaseException:
    """``err`` without the leading frames of ``concurrent.futures`` (a worker thread's machinery).

    Re-raised in the caller, an error from a worker then reads as if raised there: the caller's
    frames, then mnistkit's, never the thread pool's.
    """
    import concurrent.futures
    import os

    machinery = os.path.dirname(concurrent.futures.__file__)
    tb = err.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(machinery):
        tb = tb.tb_next
    return err.with_traceback(tb)


def check_choice(value: object, name: str, valid: Iterable[object]) -> None:
    """Raise ArgumentError unless ``value`` is one of ``valid``."""
    valid = list(valid)
    if value not in valid:
        shown = ", ".join(repr(v) for v in valid)
        msg = f"{name}={value!r} is not valid; choose one of {shown}"
        raise ArgumentError(msg)


def files_in_use(paths: list[Path], doing: str) -> DataFolderError:
    """Files that could not be deleted or replaced because a program holds them (Windows), as one line."""
    shown = ", ".join(str(p) for p in paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    msg = (
        f"cannot {doing} {shown}: in use by another program (Windows keeps open or memory-mapped files). "
        f"Close it (for example a Python session holding arrays loaded from there) and run again"
    )
    return DataFolderError(msg)
