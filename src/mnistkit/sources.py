"""Where bytes come from: user folders, ``file://`` URLs and HTTP mirrors.

:class:`Downloader` obtains one registry file into a dataset folder, verified:

* sources are tried in order: ``$MNISTKIT_MIRROR`` (or ``mirrors=``) first, each a
  base holding ``<base>/<dataset>/<file name>``, then the dataset's built-in mirrors;
* each HTTP transfer has connect and read timeouts, is retried with capped
  exponential backoff and jitter on transient failures (connection errors,
  timeouts, 429, 5xx) and abandoned for the next source on anything else
  (403, 404, an HTML page, wrong bytes);
* the body goes to ``<file>.part`` in the destination folder; an interrupted
  transfer resumes from there with an HTTP Range request (``If-Range`` guards
  against a file that changed), and starts over when the server ignores it;
* the magic bytes are checked as soon as they arrive (an HTML page is refused
  at once), the size is capped by the registry, and the decoded bytes are
  verified before the file is renamed to its published name.

The caller (the store) holds the file's inter-process lock around all of this,
so the ``.part`` file has exactly one writer.  Time, randomness and the HTTP
session are injected, so retry and backoff are testable without patching.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import _winfs
from ._log import log
from .errors import ChecksumError, DownloadError, IdxFormatError, MissingFilesError, files_in_use, write_failed
from .idx import sniff
from .integrity import verify
from .registry import Dataset, FileSpec


ENV_MIRROR = "MNISTKIT_MIRROR"
ENV_OFFLINE = "MNISTKIT_OFFLINE"
ENV_TIMEOUT = "MNISTKIT_TIMEOUT"

_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
_ACCEPTED_KINDS = {"gzip", "xz", "idx", "zip"}  # zip: archives (EMNIST); verify() refuses a zip posing as IDX
_MAX_REDIRECTS = 5


class SourceFailed(Exception):
    """One source could not deliver the file; ``transient`` says whether to retry it."""

    def __init__(self, reason: str, transient: bool = False, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.retry_after = retry_after


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def env_offline() -> bool:
    """Whether ``$MNISTKIT_OFFLINE`` asks for no network."""
    return _truthy(os.environ.get(ENV_OFFLINE))


def parse_sources(mirrors: str | Sequence[str] | None) -> list[str]:
    """The user's extra sources: ``mirrors`` if given, else ``$MNISTKIT_MIRROR``.

    Parameters
    ----------
    mirrors : str or sequence of str, optional
        Comma-separated string or list of URLs (``http``, ``https``, ``file``) or folders.

    Returns
    -------
    list of str
    """
    if mirrors is None:
        mirrors = os.environ.get(ENV_MIRROR, "")
    if isinstance(mirrors, str):
        mirrors = mirrors.split(",")
    return [m.strip() for m in mirrors if m and m.strip()]


def is_http(location: str) -> bool:
    """Whether ``location`` is an http(s) URL."""
    return location.lower().startswith(("http://", "https://"))


def _local_folder(base: str) -> Path:
    if base.lower().startswith("file:"):
        return Path(file_url_path(base))
    return Path(base).expanduser()


def file_url_path(url: str, windows: bool = _winfs.IS_WINDOWS) -> str:
    """The local path of a ``file:`` URL: ``file:///C:/data`` is ``C:\\data`` and
    ``file://server/share`` the UNC path ``\\\\server\\share`` on Windows; POSIX ignores the host."""
    parsed = urllib.parse.urlparse(url)
    if not windows:
        return urllib.parse.unquote(parsed.path)
    import nturl2path  # the stdlib's Windows rules, importable (and testable) everywhere

    host = parsed.netloc if parsed.netloc.lower() not in ("", "localhost") else ""
    return nturl2path.url2pathname(f"//{host}{parsed.path}" if host else parsed.path)


@dataclass
class RetryPolicy:
    """How hard to try one HTTP source.

    Attributes
    ----------
    attempts : int
        Tries per source on transient failures (the first included).
    base_delay, max_delay : float
        Backoff: ``min(max_delay, base_delay * 2**k)`` scaled by a random factor in [0.5, 1].
    connect_timeout, read_timeout : float
        Seconds to connect, and to wait for each piece of the body.
    min_rate : float
        Bytes per second a transfer must average once twice ``read_timeout`` has passed: a
        server that trickles a byte now and then never trips the read timeout, but is dropped
        (what arrived is kept and resumed; then the next source).
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 10.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    min_rate: float = 1024.0

    def delay(self, attempt: int, rng: Callable[[], float]) -> float:
        """Seconds to wait before try number ``attempt + 1``."""
        return min(self.max_delay, self.base_delay * 2**attempt) * (0.5 + 0.5 * rng())


def _user_agent() -> str:
    from . import __version__

    import requests

    return f"mnistkit/{__version__} (+https://pypi.org/project/mnistkit/) python-requests/{requests.__version__}"


class Downloader:
    """Fetch registry files into a folder, trying every source until one is right.

    Parameters
    ----------
    extra_sources : sequence of str
        Bases tried before the built-in mirrors (see :func:`parse_sources`).
    offline : bool
        Skip every http(s) source; folders and ``file://`` URLs are still used.
    progress : bool or None
        Progress bar on stderr; None means only when stderr is a terminal.
    retry : RetryPolicy, optional
    session : requests.Session, optional
        A session to use (its proxies, certificates, adapters); one is made if None.
    sleep, rng, clock : callable, optional
        Injected for tests: ``time.sleep``, ``random.random`` and ``time.monotonic`` by default.
    """

    def __init__(
        self,
        extra_sources: Sequence[str] = (),
        *,
        offline: bool = False,
        progress: bool | None = None,
        retry: RetryPolicy | None = None,
        session=None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.extra_sources = list(extra_sources)
        self.offline = offline
        self.progress = progress
        self.retry = retry or RetryPolicy()
        self._session = session
        self.sleep = sleep
        self.rng = rng
        self.clock = clock

    # --- which sources ----------------------------------------------------------------------

    def locations(self, dataset: Dataset, spec: FileSpec) -> list[str]:
        """Every place ``spec`` is looked for, in order (offline: local ones only)."""
        found = []
        for base in self.extra_sources:
            if is_http(base):
                found.append(base.rstrip("/") + f"/{dataset.folder}/{spec.name}")
            else:
                found.append(str(_local_folder(base) / dataset.folder))
        found.extend(dataset.urls(spec))
        if self.offline:
            found = [loc for loc in found if not is_http(loc)]
        return found

    def __call__(self, dataset: Dataset, spec: FileSpec, folder: Path) -> Path:
        """Obtain ``spec`` as ``folder/<published name>``, verified.  See :class:`Downloader`."""
        locations = self.locations(dataset, spec)
        if not locations:
            raise MissingFilesError(
                dataset.name, [spec.name], folder, dataset.urls(spec), "offline mode: the network is not used"
            )
        final = folder / spec.name
        part = folder / (spec.name + ".part")
        attempts: list[tuple[str, str]] = []
        for location in locations:
            try:
                if is_http(location):
                    self._http(location, spec, part)
                else:
                    self._copy_local(Path(location), spec, part)
                self._verify(part, spec, location)
            except SourceFailed as err:
                log.warning("%s: %s", location, err.reason)
                attempts.append((location, err.reason))
                continue
            # The resume record goes first: a process killed between these two steps leaves a
            # .part without it (downloaded again), never a record that nothing would clean up.
            _unlink(_meta_path(part))
            try:
                _winfs.replace(part, final)  # Windows: retried while a reader holds ``final`` for a moment
            except OSError as err:
                if not _winfs.in_use(err):
                    raise
                # The verified .part stays: the next call resumes on it (HTTP 416) or copies it again.
                raise files_in_use([final], f"replace with the verified download {part.name}") from None
            log.info("got %s from %s", spec.name, location)
            return final
        if self.offline and not any(is_http(loc) for loc in locations):
            raise MissingFilesError(
                dataset.name,
                [spec.name],
                folder,
                dataset.urls(spec),
                "offline mode; not in " + ", ".join(locations),
            )
        raise DownloadError(spec.name, attempts, folder)

    # --- checking ---------------------------------------------------------------------------

    @staticmethod
    def _verify(part: Path, spec: FileSpec, location: str) -> None:
        try:
            verify(part, spec, source=f"{spec.name} from {location}")
            return
        except (IdxFormatError, ChecksumError) as err:
            reason = _reason(err)
        # Deleted after the except block: until then the exception's traceback keeps the verifier's
        # frames, which map the file, and Windows cannot delete a mapped file.
        _unlink(part)  # never keep wrong bytes, not even as a resume point
        _unlink(_meta_path(part))
        raise SourceFailed(f"rejected after download: {reason}")

    @staticmethod
    def _cap(spec: FileSpec) -> int:
        """The most bytes a correct copy can take: the decoded size plus container overhead."""
        return spec.decoded_size + spec.decoded_size // 500 + 4096

    @staticmethod
    def _check_head(head: bytes) -> None:
        kind = sniff(head)
        if kind not in _ACCEPTED_KINDS:
            what = {"html": "an HTML page", "empty": "an empty body"}.get(kind, f"{kind} data")
            raise SourceFailed(f"served {what}, not the dataset file")

    # --- local sources ----------------------------------------------------------------------

    def _copy_local(self, folder: Path, spec: FileSpec, part: Path) -> None:
        for name in spec.spellings:
            src = folder / name
            if src.is_file():
                break
        else:
            raise SourceFailed("not found")
        try:
            with open(src, "rb") as fin:
                self._check_head(fin.read(512))
                fin.seek(0)
                with open(part, "wb") as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
        except OSError as err:
            _unlink(part)
            raise SourceFailed(f"cannot read {src}: {err.strerror or err}") from None

    # --- HTTP -------------------------------------------------------------------------------

    @property
    def session(self):
        if self._session is None:
            import requests

            self._session = requests.Session()  # honours HTTP(S)_PROXY/NO_PROXY; TLS roots from certifi
            self._session.headers["User-Agent"] = _user_agent()
        return self._session

    def _http(self, url: str, spec: FileSpec, part: Path) -> None:
        attempt = 0
        while True:
            try:
                self._transfer(url, spec, part)
                return
            except SourceFailed as err:
                attempt += 1
                if not err.transient or attempt >= self.retry.attempts:
                    if err.transient:
                        raise SourceFailed(f"{err.reason} (gave up after {attempt} tries)") from None
                    raise
                wait = self.retry.delay(attempt - 1, self.rng)
                if err.retry_after is not None:
                    wait = min(max(wait, err.retry_after), self.retry.max_delay)
                log.info("%s: %s; retrying in %.1f s", url, err.reason, wait)
                self.sleep(wait)

    def _request(self, url: str, headers: dict):
        """GET with redirects followed by hand: at most a few, never from https to http."""
        import requests

        timeout = (self.retry.connect_timeout, self.retry.read_timeout)
        for _ in range(_MAX_REDIRECTS + 1):
            try:
                resp = self.session.get(url, headers=headers, stream=True, timeout=timeout, allow_redirects=False)
            except requests.exceptions.SSLError as err:
                raise SourceFailed(f"TLS error: {err}") from None
            except requests.exceptions.Timeout:
                raise SourceFailed("timed out waiting for the server", transient=True) from None
            except requests.exceptions.ConnectionError as err:
                if _unresolvable(err):
                    # No DNS answer: an offline node or a mistyped host; retrying only wastes the backoff.
                    host = urllib.parse.urlsplit(url).hostname
                    raise SourceFailed(f"cannot resolve host {host} (no network, or a wrong name?)") from None
                raise SourceFailed(f"connection failed ({_short(err)})", transient=True) from None
            except requests.exceptions.RequestException as err:
                raise SourceFailed(f"request failed ({_short(err)})") from None
            if resp.status_code in (301, 302, 303, 307, 308) and "location" in resp.headers:
                target = urllib.parse.urljoin(url, resp.headers["location"])
                resp.close()
                if url.lower().startswith("https:") and not target.lower().startswith("https:"):
                    raise SourceFailed(f"refused a redirect from https to {target}")
                url = target
                continue
            return resp
        raise SourceFailed(f"more than {_MAX_REDIRECTS} redirects")

    def _transfer(self, url: str, spec: FileSpec, part: Path) -> None:
        meta_path = _meta_path(part)
        have = part.stat().st_size if part.exists() else 0
        meta = _read_meta(meta_path) if have else {}
        headers = {"Accept-Encoding": "identity"}  # the bytes as stored: never let a server re-encode them
        if have and meta.get("url") == url:
            headers["Range"] = f"bytes={have}-"
            validator = meta.get("etag") or meta.get("last_modified")
            if validator:
                headers["If-Range"] = validator
        else:
            have = 0
        resp = self._request(url, headers)
        with resp:
            status = resp.status_code
            if status in _TRANSIENT_STATUS:
                retry_after = _retry_after(resp.headers.get("retry-after"))
                raise SourceFailed(f"HTTP {status} {resp.reason}", transient=True, retry_after=retry_after)
            if status == 416 and have:
                # Nothing left to send: the .part may be complete (a process killed while verifying it).
                try:
                    verify(part, spec, source=str(part))
                    return
                except (IdxFormatError, ChecksumError):
                    pass
                _unlink(part)  # not a prefix of their file after all (deleted once the verifier let go of it)
                raise SourceFailed("server refused to resume (HTTP 416)", transient=True)
            if status not in (200, 206):
                raise SourceFailed(f"HTTP {status} {resp.reason}")
            ctype = resp.headers.get("content-type", "").lower()
            if "text/html" in ctype:
                raise SourceFailed(f"served an HTML page (Content-Type {ctype}), not the dataset file")
            start = 0
            if status == 206:
                start = _content_range_start(resp.headers.get("content-range"))
                if start != have:
                    _unlink(part)
                    raise SourceFailed("server resumed at the wrong offset", transient=True)
            elif have:
                log.info("%s ignored the Range request: starting %s over", url, spec.name)
            length = resp.headers.get("content-length")
            total = start + int(length) if length and length.isdigit() else None
            cap = self._cap(spec)
            if total is not None and total > cap:
                raise SourceFailed(f"announced {total} bytes, more than any copy of {spec.name} can be ({cap})")
            _write_meta(meta_path, url, resp.headers)
            mode = "ab" if status == 206 else "wb"
            received = start
            began, grace = self.clock(), 2 * self.retry.read_timeout
            bar = self._bar(spec.name, total, start)
            try:
                with open(part, mode) as fh:
                    head = None if start else b""
                    if start:  # check the magic of what we kept before resuming on it
                        with open(part, "rb") as kept:
                            self._check_head(kept.read(512))
                    while True:
                        # read1: whatever has arrived, so a broken-off body keeps every byte it got;
                        # raw bytes as sent, never decoded, so a Range resume lines up with them
                        chunk = resp.raw.read1(1 << 16, decode_content=False)
                        if not chunk:
                            break
                        if head is not None:
                            head += chunk
                            if len(head) >= 512:
                                self._check_head(head)
                                head = None
                        fh.write(chunk)
                        received += len(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
                        if received > cap:
                            raise SourceFailed(f"sent more than {cap} bytes, more than any copy of {spec.name}")
                        elapsed = self.clock() - began
                        if elapsed > grace and received - start < self.retry.min_rate * elapsed:
                            rate = (received - start) / elapsed
                            raise SourceFailed(
                                f"too slow: {rate:.0f} bytes/s over {elapsed:.1f} s "
                                f"(at least {self.retry.min_rate:.0f} needed)", transient=True
                            )
                    if head is not None:
                        self._check_head(head)
            except SourceFailed as err:
                if not err.transient:
                    _unlink(part)  # wrong content: not worth resuming
                    _unlink(meta_path)
                raise
            except _network_errors() as err:
                # The body broke off: what arrived stays in the .part file for the retry to resume.
                # (A local disk error is an OSError of another kind and propagates as it is.)
                raise SourceFailed(
                    f"transfer interrupted after {received} bytes ({_short(err)})", transient=True
                ) from None
            except OSError as err:
                # The disk, not the network (full, quota, file size limit): no other mirror can help,
                # and a half-written .part would only keep the space taken.
                _unlink(part)
                _unlink(meta_path)
                raise write_failed(part.parent, err) from err
            finally:
                if bar is not None:
                    bar.close()
            if total is not None and received != total:
                raise SourceFailed(f"transfer ended after {received} of {total} bytes", transient=True)

    def _bar(self, name: str, total: int | None, initial: int):
        show = self.progress if self.progress is not None else sys.stderr.isatty()
        if not show:
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name, file=sys.stderr,
            leave=True,
        )


def _unresolvable(err: BaseException) -> bool:
    """Whether a connection error is a failed name lookup (urllib3 wraps it in MaxRetryError)."""
    import urllib3

    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, urllib3.exceptions.NameResolutionError):
            return True
        nested = [a for a in getattr(err, "args", ()) if isinstance(a, BaseException)]
        err = getattr(err, "reason", None) or (nested[0] if nested else None) or err.__cause__ or err.__context__
    return False


def _network_errors() -> tuple[type[BaseException], ...]:
    import requests
    import urllib3

    return (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


def _meta_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _read_meta(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_meta(path: Path, url: str, headers) -> None:
    meta = {"url": url, "etag": headers.get("etag"), "last_modified": headers.get("last-modified")}
    path.write_text(json.dumps(meta), encoding="utf-8")


def _content_range_start(value: str | None) -> int:
    # "bytes 100-199/200"
    try:
        return int(value.split()[1].split("-")[0])  # type: ignore[union-attr]
    except (AttributeError, IndexError, ValueError):
        return -1


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _short(err: BaseException) -> str:
    text = str(err)
    return text if len(text) < 160 else text[:157] + "..."


def _reason(err: Exception) -> str:
    if isinstance(err, ChecksumError):
        return f"checksum mismatch ({err.algorithm} {err.actual[:12]}..., expected {err.expected[:12]}...)"
    if isinstance(err, IdxFormatError):
        return err.reason
    return str(err)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def make_fetcher(
    mirrors: str | Sequence[str] | None = None,
    offline: bool | None = None,
    progress: bool | None = None,
) -> Downloader:
    """A :class:`Downloader` configured from arguments, falling back to the environment.

    Parameters
    ----------
    mirrors : str or sequence of str, optional
        Extra sources; None reads ``$MNISTKIT_MIRROR``.
    offline : bool, optional
        None reads ``$MNISTKIT_OFFLINE``.
    progress : bool, optional
        None: a bar only when stderr is a terminal.
    """
    retry = RetryPolicy()
    timeout = os.environ.get(ENV_TIMEOUT, "").strip()
    if timeout:
        try:
            retry.read_timeout = retry.connect_timeout = float(timeout)
        except ValueError:
            log.warning("ignoring %s=%r: not a number of seconds", ENV_TIMEOUT, timeout)
    return Downloader(
        parse_sources(mirrors),
        offline=env_offline() if offline is None else bool(offline),
        progress=progress,
        retry=retry,
    )
