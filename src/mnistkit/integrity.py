"""Checking that a file holds exactly the published data.

A file is accepted when its *decoded* IDX bytes have the registry's size and
SHA-256, whatever its container (raw, gzip, re-compressed gzip, xz); where no
decoded checksum is published, the file's own SHA-256 (else md5) is checked.
An archive (EMNIST's zip) is checked by its own size and checksum, and a
mismatch names the damaged members.  The
check streams: decompression runs in the calling thread while hashing (and an
optional sink, such as the cache writer) runs in a worker thread, so the two
overlap on a multi-core machine and no full decoded copy is held in memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ArgumentError, ChecksumError, IdxFormatError, without_pool_frames
from .idx import IdxHeader, Source, open_payload
from .registry import FileSpec

Sink = Callable[[bytes | memoryview], None]


@dataclass(frozen=True)
class Verified:
    """The outcome of a successful check.

    Attributes
    ----------
    header : IdxHeader or None
        The validated header (None for an archive).
    container : str
        ``"gzip"``, ``"xz"``, ``"idx"`` (uncompressed) or ``"zip"`` (an archive).
    digest : str
        What the check vouched for: ``"sha256:<hex>"`` of the decoded IDX bytes; for an
        archive, its own pinned checksum as checked (``"<algorithm>:<hex>"``, "" if none).
    """

    header: IdxHeader | None
    container: str
    digest: str


def split_digest(digest: str) -> tuple[str, str]:
    """Split ``"sha256:abc"`` into ``("sha256", "abc")``; a bare hex digest is SHA-256."""
    algo, sep, value = digest.partition(":")
    return (algo.lower(), value.lower()) if sep else ("sha256", digest.lower())


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hash a whole file as stored; returns ``"<algorithm>:<hex>"``."""
    import hashlib  # here, not at the top: keeps `import mnistkit` light

    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, algorithm) if hasattr(hashlib, "file_digest") else _hash_fh(fh, algorithm)
    return f"{algorithm}:{digest.hexdigest()}"


def _hash_fh(fh, algorithm):  # Python 3.10 has no hashlib.file_digest
    import hashlib

    h = hashlib.new(algorithm)
    for block in iter(lambda: fh.read(1 << 20), b""):
        h.update(block)
    return h


def check_header(header: IdxHeader, spec: FileSpec, source: str, vouched_by: str | None = None) -> None:
    """Refuse a header whose type or shape is not the one the registry declares.

    When only the dimensions differ, the message names the registry's number and
    the file's.  ``vouched_by`` says what showed the file to be the published one
    (its published checksum, or the verified archive holding it): the registry is
    then wrong, and :class:`~mnistkit.errors.RegistryMismatchError` says so.
    """
    if header.type_code == spec.type_code and header.shape == tuple(spec.shape):
        return
    contradiction = _contradiction(header, spec)
    if contradiction is None:
        msg = (
            f"the header declares type 0x{header.type_code:02x} shape {header.shape}, "
            f"expected type 0x{spec.type_code:02x} shape {tuple(spec.shape)} for {spec.name}"
        )
        raise IdxFormatError(source, msg, 2)
    if vouched_by:
        from .errors import REPORT_HINT, RegistryMismatchError

        msg = f"{source}: {contradiction}; the file is the published one ({vouched_by}), so {REPORT_HINT}"
        raise RegistryMismatchError(msg)
    msg = (
        f"{contradiction}; either it is not the published {spec.name} (replace it), or the registry's "
        f"number is wrong (if it is the published file, please report this message)"
    )
    raise IdxFormatError(source, msg, 2)


def _contradiction(header: IdxHeader, spec: FileSpec) -> str | None:
    """Which of the registry's numbers the header contradicts, in words (None: another kind of file)."""
    if header.type_code != spec.type_code or len(header.shape) != len(spec.shape):
        return None
    parts = []
    for axis, (declared, found) in enumerate(zip(spec.shape, header.shape, strict=True)):
        if declared != found:
            name = "examples" if axis == 0 else f"size of dimension {axis}"
            parts.append(f"{name}: the registry says {declared}, the file's IDX header says {found}")
    return (
        f"the registry's shape {tuple(spec.shape)} for {spec.name} disagrees with this file's header {header.shape} "
        f"({'; '.join(parts)})"
    )


def verify(src: Source, spec: FileSpec, *, sink: Sink | None = None, source: str | None = None) -> Verified:
    """Decode ``src`` and check it against ``spec``, streaming.

    Parameters
    ----------
    src : path-like, bytes-like or binary stream
        The candidate file, in any container; an archive must be a path.
    spec : FileSpec
        What it must hold.
    sink : callable, optional
        Called with every payload chunk (bytes after the header), in order, as
        the data is verified: lets the caller write the cache in the same pass.
        It is called before the verdict is known, so it must write somewhere
        temporary.
    source : str, optional
        Name for error messages.

    Returns
    -------
    Verified

    Raises
    ------
    IdxFormatError
        The bytes are not a complete IDX file of the declared type and shape.
    ChecksumError
        The decoded bytes are not the published ones.
    """
    name = source or str(src)
    if spec.kind == "archive":
        if not isinstance(src, (str, os.PathLike)):
            msg = f"{name}: an archive is checked from its file; pass its path"
            raise ArgumentError(msg)
        return _verify_archive(src, spec, name)
    # No expected_size here: check_header's type-and-shape test implies the size, and says which
    # of the registry's numbers a file contradicts rather than only that the sizes differ.
    payload = open_payload(src, source=name)
    check_header(payload.header, spec, name, _vouched_by(src, spec, payload.header))
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    hasher = hashlib.sha256(payload.header.to_bytes())

    def consume(piece):
        hasher.update(piece)
        if sink is not None:
            sink(piece)

    # One worker: hashing and writing (both release the GIL) overlap the next decompression.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mnistkit-hash") as pool:
        pending = None
        for piece in payload:
            if pending is not None and (exc := pending.exception()) is not None:
                raise without_pool_frames(exc)
            pending = pool.submit(consume, piece)
        if pending is not None and (exc := pending.exception()) is not None:
            raise without_pool_frames(exc)
    actual = "sha256:" + hasher.hexdigest()
    if spec.decoded_sha256 is not None:
        _, want = split_digest(spec.decoded_sha256)
        if actual != "sha256:" + want:
            raise ChecksumError(name, "sha256", want, actual.split(":", 1)[1], _hint(spec))
    elif (
        (compressed := spec.sha256 or spec.md5)
        and not isinstance(src, (bytes, bytearray, memoryview))
        and not hasattr(src, "read")
    ):
        # No decoded checksum is published for this file: fall back to the compressed one's.
        # (A stream is an archive member: the archive's own checksum vouched for it.)
        algo, want = split_digest(compressed)
        got = file_digest(src, algo).split(":", 1)[1]
        if got != want:
            raise ChecksumError(name, algo, want, got, _hint(spec), of="compressed file")
    return Verified(payload.header, payload.container, actual)


def _vouched_by(src: Source, spec: FileSpec, header: IdxHeader) -> str | None:
    """What shows ``src`` to be the published file, computed only when its header contradicts the registry.

    An archive member carries ``vouched_by`` (set by whoever verified the archive); a file on
    disk is the published one when its own bytes have the published SHA-256 (else md5), or when
    its decoded bytes have the pinned decoded SHA-256 (an uncompressed or re-compressed copy).
    """
    if header.type_code == spec.type_code and header.shape == tuple(spec.shape):
        return None  # nothing to explain: skip the extra hash
    if _contradiction(header, spec) is None:
        return None
    vouched = getattr(src, "vouched_by", None)
    if vouched or hasattr(src, "read") or isinstance(src, (bytes, bytearray, memoryview)):
        return vouched
    pinned = spec.sha256 or spec.md5
    if pinned:
        algo, want = split_digest(pinned)
        try:
            got = file_digest(src, algo).split(":", 1)[1]
        except OSError:
            got = None
        if got == want:
            return f"it has the published {algo}"
    if spec.decoded_sha256:
        # An uncompressed or re-compressed copy is accepted by its decoded bytes: the same proof here.
        import hashlib

        from .errors import MnistkitError

        _, want = split_digest(spec.decoded_sha256)
        try:
            payload = open_payload(src, source=str(src))
            hasher = hashlib.sha256(payload.header.to_bytes())
            for piece in payload:
                hasher.update(piece)
        except (OSError, MnistkitError):
            return None
        if hasher.hexdigest() == want:
            return "its decoded bytes have the published sha256"
    return None


def _verify_archive(path: str | os.PathLike, spec: FileSpec, name: str) -> Verified:
    """Check an archive by its size, then its pinned checksum; a mismatch names the damaged members."""
    size = os.path.getsize(path)
    if spec.size is not None and size != spec.size:
        raise ChecksumError(name, "size", str(spec.size), str(size), _hint(spec), of="archive")
    digest = spec.sha256 or spec.md5
    if digest is None:  # nothing pinned (never so in the built-in registry): the members' CRCs will tell
        return Verified(None, "zip", "")
    algo, want = split_digest(digest)
    got = file_digest(path, algo).split(":", 1)[1]
    if got != want:
        from .archive import damaged_members

        damaged = damaged_members(path)
        hint = _hint(spec)
        if damaged:
            hint = f"Damaged: {'; '.join(damaged)}. {hint}"
        raise ChecksumError(name, algo, want, got, hint, of="archive")
    return Verified(None, "zip", f"{algo}:{got}")


def _hint(spec: FileSpec) -> str:
    return f"Delete it, or replace it with the published {spec.name}"
