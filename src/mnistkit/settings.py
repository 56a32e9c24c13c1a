"""Where bytes come from: one frozen value, built once at the public entry points.

Every loader takes the same keywords (``data_home``, ``mirrors``, ``offline``,
``progress``, ``timeout``); each is resolved here, once, against the environment,
and the result travels down as one :class:`Settings` value instead of five loose
parameters re-declared at every level.  The command line builds the same value
from its flags; nothing writes ``os.environ``.

=================  ======================  ==========================================
keyword            environment             default
=================  ======================  ==========================================
``data_home``      ``MNISTKIT_HOME``       the user cache folder (``platformdirs``)
``mirrors``        ``MNISTKIT_MIRROR``     none: only the dataset's built-in mirrors
``offline``        ``MNISTKIT_OFFLINE``    False
``timeout``        ``MNISTKIT_TIMEOUT``    10 s to connect, 30 s between bytes
``progress``       (none)                  a bar only when stderr is a terminal
=================  ======================  ==========================================
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._log import log

ENV_HOME = "MNISTKIT_HOME"
ENV_MIRROR = "MNISTKIT_MIRROR"
ENV_OFFLINE = "MNISTKIT_OFFLINE"
ENV_TIMEOUT = "MNISTKIT_TIMEOUT"

#: What a ``mirrors=`` keyword may be: a comma-separated string or a sequence of bases.
MirrorsLike = str | os.PathLike | Sequence[str | os.PathLike] | None

#: The longest timeout accepted, in seconds (a week).  Far longer values ("wait forever") would overflow
#: the operating system's socket timeout (1e12 s does) and fail deep inside the HTTP stack.
MAX_TIMEOUT = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Settings:
    """Where bytes come from, and how hard to try.

    Build it with :meth:`resolve` (keywords, then the environment, then defaults);
    the fields are final values, never None-means-look-elsewhere, except ``progress``
    and ``timeout`` whose None is a documented default.

    Attributes
    ----------
    data_home : pathlib.Path
        The data folder (absolute; not created here).
    mirrors : tuple of str
        Extra sources tried before a dataset's built-in mirrors: ``http(s)://`` or
        ``file://`` URLs, folders, or fsspec URLs such as ``s3://bucket/prefix`` (see
        :mod:`mnistkit.remote`), each holding ``<base>/<dataset>/<file name>``.
    offline : bool
        Never use the network; folders and ``file://`` sources are still used.
    progress : bool or None
        Progress bars on stderr; None means only when stderr is a terminal.
    timeout : float or None
        Seconds to connect and between bytes; None means 10 s and 30 s.

    Examples
    --------
    >>> Settings.resolve(data_home="/tmp/mk", mirrors="http://a/, /srv/data", offline=True).mirrors
    ('http://a/', '/srv/data')
    """

    data_home: Path
    mirrors: tuple[str, ...] = ()
    offline: bool = False
    progress: bool | None = None
    timeout: float | None = None

    @classmethod
    def resolve(
        cls,
        data_home: str | os.PathLike | None = None,
        mirrors: MirrorsLike = None,
        offline: bool | None = None,
        progress: bool | None = None,
        timeout: float | str | None = None,
    ) -> Settings:
        """The settings the keywords ask for, each None read from the environment.

        Parameters
        ----------
        data_home : path-like, optional
            None (or "") reads ``$MNISTKIT_HOME``, else the user cache folder.
        mirrors : str or sequence of str, optional
            None reads ``$MNISTKIT_MIRROR`` (comma-separated).
        offline : bool, optional
            None reads ``$MNISTKIT_OFFLINE`` (``1``, ``true``, ``yes``, ``on``).
        progress : bool, optional
            None: a bar only when stderr is a terminal.
        timeout : float, optional
            None reads ``$MNISTKIT_TIMEOUT``; a value that is not a finite number above
            zero is refused with :class:`~mnistkit.errors.ArgumentError` (from the
            environment: ignored with a warning).

        Returns
        -------
        Settings
        """
        seconds = parse_timeout(os.environ.get(ENV_TIMEOUT)) if timeout is None else _checked_timeout(timeout)
        return cls(
            data_home=resolve_home(data_home),
            mirrors=tuple(parse_mirrors(mirrors)),
            offline=env_offline() if offline is None else _flag("offline", offline),
            progress=None if progress is None else _flag("progress", progress),
            timeout=seconds,
        )

    def keywords(self) -> dict[str, Any]:
        """These settings as the keywords of :func:`mnistkit.load` (and every public loader)."""
        return {
            "data_home": self.data_home,
            "mirrors": list(self.mirrors),
            "offline": self.offline,
            "progress": self.progress,
            "timeout": self.timeout,
        }


def resolve_home(data_home: str | os.PathLike | None = None) -> Path:
    """The data folder: ``data_home``, else ``$MNISTKIT_HOME``, else the user cache folder.

    Parameters
    ----------
    data_home : path-like, optional
        An explicit folder.

    Returns
    -------
    pathlib.Path
        An absolute path (not created here).
    """
    if data_home is not None and not isinstance(data_home, (str, os.PathLike)):
        from .errors import ArgumentError

        msg = f"data_home={data_home!r} is not valid: give a folder (a str or path), or None for the default"
        raise ArgumentError(msg)
    if data_home is not None and str(data_home) != "":
        return Path(data_home).expanduser().absolute()
    env = os.environ.get(ENV_HOME, "").strip()
    if env:
        return Path(env).expanduser().absolute()
    import platformdirs  # imported late: keeps `import mnistkit` cheap

    return Path(platformdirs.user_cache_dir("mnistkit", appauthor=False)).absolute()


def parse_mirrors(mirrors: MirrorsLike) -> list[str]:
    """The user's extra sources: ``mirrors`` if given, else ``$MNISTKIT_MIRROR``.

    Parameters
    ----------
    mirrors : str or sequence of str, optional
        Comma-separated string or list of URLs (``http``, ``https``, ``file``, or fsspec
        ones such as ``s3://``) or folders.

    Returns
    -------
    list of str
    """
    from_env = mirrors is None
    if mirrors is None:
        mirrors = os.environ.get(ENV_MIRROR, "")
    if isinstance(mirrors, os.PathLike):  # one folder given as a Path
        mirrors = [mirrors]
    if isinstance(mirrors, str):
        mirrors = mirrors.split(",")
    if isinstance(mirrors, (bytes, bytearray)) or not isinstance(mirrors, Iterable):
        _bad_mirrors(mirrors)
    found = []
    for item in mirrors:
        if isinstance(item, os.PathLike):
            item = os.fspath(item)
        if not isinstance(item, str):
            _bad_mirrors(mirrors)
        item = item.strip()
        if not item:
            continue
        problem = _mirror_problem(item)
        if problem is None:
            found.append(item)
        elif from_env:
            log.warning("ignoring %r in %s: %s", _shown(item), ENV_MIRROR, problem)
        else:
            from .errors import ArgumentError

            msg = f"mirrors: {_shown(item)!r} {problem}"
            raise ArgumentError(msg)
    return found


def _shown(item: str) -> str:
    from .transfer import redact  # never show a mirror's password, not even in this message

    return redact(item)


def _mirror_problem(item: str) -> str | None:
    """Why ``item`` cannot be a mirror base, or None.

    Without this, ``ftp://host/``, ``htp://host/`` or ``http:/host/`` were taken for folder
    names and reported only as "not found", and a base with ``?query`` or ``#fragment`` had the
    file's path glued after it.
    """
    import re
    import urllib.parse

    match = re.match(r"([A-Za-z][A-Za-z0-9+.\-]+):", item)  # two letters at least: C:\data is a folder
    if match is None:
        return None
    scheme = match.group(1).lower()
    if scheme in ("http", "https"):
        if not item[len(scheme) + 1 :].startswith("//"):
            return f"is not a valid URL: write {scheme}://host/path"
        parts = urllib.parse.urlsplit(item)
        if not parts.hostname:
            return "is not a valid URL: it names no host"
        if parts.query or parts.fragment or item.endswith(("?", "#")):
            return "has a ?query or #fragment: give the base URL holding <dataset>/<file name>"
        return None
    if scheme == "file":
        host = urllib.parse.urlsplit(item).netloc
        if host.lower() not in ("", "localhost"):  # file://data/m would silently read /m
            return f"names a host ({host!r}): write file:///absolute/path (three slashes)"
        return None
    from .remote import is_known_protocol  # light: fsspec itself is imported only when used

    if is_known_protocol(scheme) and ("::" in item or item[len(scheme) + 1 :].startswith("//")):
        return None  # an fsspec URL (s3://, gs://, ...): remote.py names a missing package in one line
    return (
        f"is not a supported source ({scheme}:): give an http://, https:// or file:// URL, an fsspec URL "
        "such as s3://bucket/prefix, or a folder"
    )


def _bad_mirrors(mirrors: object) -> None:
    from .errors import ArgumentError

    msg = f"mirrors={mirrors!r} is not valid: give a comma-separated string or a list of URLs and folders (str or path)"
    raise ArgumentError(msg)


def env_offline() -> bool:
    """Whether ``$MNISTKIT_OFFLINE`` asks for no network."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes", "on"}


def parse_timeout(value: str | None) -> float | None:
    """Seconds from ``$MNISTKIT_TIMEOUT``: a finite number above zero, else None (with a warning)."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        log.warning("ignoring %s=%r: not a positive number of seconds", ENV_TIMEOUT, text)
        return None
    if seconds > MAX_TIMEOUT:
        log.warning("ignoring %s=%r: more than %g seconds (a week)", ENV_TIMEOUT, text, MAX_TIMEOUT)
        return None
    return seconds


def _flag(name: str, value: object) -> bool:
    """A yes/no keyword; a string is refused: ``offline="false"`` would otherwise mean True."""
    if isinstance(value, (str, bytes)):
        from .errors import ArgumentError

        msg = f"{name}={value!r} is not valid: give True or False"
        raise ArgumentError(msg)
    return bool(value)


def _checked_timeout(value: float | str) -> float:
    from .errors import ArgumentError

    if isinstance(value, bool):  # timeout=True is a mistake, not one second
        msg = f"timeout={value!r}: give a number of seconds above 0"
        raise ArgumentError(msg)

    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_TIMEOUT:
        msg = f"timeout={value!r}: give a number of seconds above 0 and at most {MAX_TIMEOUT:g} (a week)"
        raise ArgumentError(msg)
    return seconds
