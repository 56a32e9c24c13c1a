"""The IDX codec: sniff, validate, stream, read and write IDX files.

An IDX file is two zero bytes, a type byte, a rank byte, one big-endian
uint32 per dimension, then the items, big-endian and row-major.  What a file
holds (raw IDX, gzip, xz, an HTML error page, ...) is decided from its bytes,
never from its name: browsers leave decompressed data under a ``.gz`` name.

Everything here is pure: it reads bytes and returns arrays or raises
:class:`~mnistkit.errors.IdxFormatError`; it knows nothing of datasets,
folders or the network.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

from .errors import ArgumentError, IdxFormatError


def _zlib_module():
    """zlib-ng (about 1.8x faster than the stdlib's zlib at gzip), imported when first needed."""
    try:
        from zlib_ng import zlib_ng
    except ImportError:  # pragma: no cover - exercised only where zlib-ng has no wheel
        import zlib

        return zlib
    return zlib_ng


__all__ = [
    "IDX_TYPES",
    "IdxHeader",
    "encode_idx",
    "open_payload",
    "parse_header",
    "read_idx",
    "sniff",
    "write_idx",
]

#: IDX type code -> big-endian NumPy dtype.
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF_KIND = {(dt.kind, dt.itemsize): code for code, dt in IDX_TYPES.items()}

GZIP_MAGIC = b"\x1f\x8b"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZIP_MAGIC = b"PK\x03\x04"
BZ2_MAGIC = b"BZh"

#: Decoded chunks are handed out in pieces of this size: large enough that
#: per-call overhead vanishes, small enough to stay in cache and to overlap
#: hashing with decompression.
CHUNK = 4 << 20
_IN_CHUNK = 1 << 20
#: Zero bytes tolerated after a compressed stream (copies padded to a block size); more is refused.
MAX_PADDING = 4096

# Upper bounds on decoded/compressed size, used to refuse a header that claims
# more data than the compressed stream can possibly hold before anything is
# allocated (deflate cannot exceed 1032:1; xz of constant data reaches ~7000:1).
_MAX_RATIO = {"gzip": 1032, "xz": 10_000}


class Readable(Protocol):
    """Any object with a binary ``read(n)``: a file, a zip archive member, a hashing wrapper."""

    def read(self, n: int = -1, /) -> bytes: ...


Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | Readable


@dataclass(frozen=True)
class IdxHeader:
    """What an IDX header declares.

    Attributes
    ----------
    type_code : int
        The IDX type byte (0x08, 0x09, 0x0B, 0x0C, 0x0D or 0x0E).
    shape : tuple of int
        The dimensions.
    """

    type_code: int
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype:
        """Big-endian NumPy dtype of the items."""
        return IDX_TYPES[self.type_code]

    @property
    def header_size(self) -> int:
        """Bytes taken by the magic and the dimensions."""
        return 4 + 4 * len(self.shape)

    @property
    def payload_size(self) -> int:
        """Bytes of item data the header promises."""
        # Python integers: np.prod in int64 wraps around (4 dimensions of 65536 give 0), and a
        # lying header would then pass every size check and fail later with a non-IDX error.
        return math.prod(self.shape) * self.dtype.itemsize if self.shape else 0

    @property
    def total_size(self) -> int:
        """Size of the whole decoded file."""
        return self.header_size + self.payload_size

    def to_bytes(self) -> bytes:
        """The header exactly as it is stored."""
        return bytes((0, 0, self.type_code, len(self.shape))) + struct.pack(f">{len(self.shape)}I", *self.shape)


def sniff(head: bytes) -> str:
    """Tell what a file holds from its first bytes.

    Parameters
    ----------
    head : bytes
        The first few hundred bytes of the file (more is fine).

    Returns
    -------
    str
        One of ``"empty"``, ``"gzip"``, ``"xz"``, ``"zip"``, ``"bz2"``,
        ``"idx"``, ``"html"`` or ``"unknown"``.

    Examples
    --------
    >>> sniff(b"\\x1f\\x8b\\x08\\x00")
    'gzip'
    >>> sniff(b"\\x00\\x00\\x08\\x01\\x00\\x00\\x00\\x02")
    'idx'
    >>> sniff(b"<!DOCTYPE html><html>")
    'html'
    """
    if not head:
        return "empty"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head.startswith(BZ2_MAGIC):
        return "bz2"
    if len(head) >= 4 and head[0] == 0 and head[1] == 0 and head[2] in IDX_TYPES:
        return "idx"
    text = head[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<") or b"<html" in text or b"<!doctype" in text:
        return "html"
    return "unknown"


def parse_header(head: bytes, source: str = "<bytes>") -> IdxHeader:
    """Parse and validate an IDX header.

    Parameters
    ----------
    head : bytes
        At least the header bytes of a decoded IDX file.
    source : str
        Name used in error messages.

    Returns
    -------
    IdxHeader

    Raises
    ------
    IdxFormatError
        If the magic, type or rank is invalid, or ``head`` is too short.
    """
    if len(head) == 0:
        raise IdxFormatError(source, "the file is empty")
    if len(head) < 4:
        raise IdxFormatError(source, f"truncated: {len(head)} bytes, too short for the 4-byte magic", 0)
    if head[0] != 0 or head[1] != 0:
        kind = sniff(head)
        if kind == "html":
            raise IdxFormatError(
                source, "this is an HTML page (an error page served instead of data?), not IDX data", 0
            )
        raise IdxFormatError(source, f"bad magic {bytes(head[:4]).hex()}: IDX data starts with two zero bytes", 0)
    code, rank = head[2], head[3]
    if code not in IDX_TYPES:
        raise IdxFormatError(source, f"unknown item type 0x{code:02x} (known: 08 09 0b 0c 0d 0e)", 2)
    if rank == 0:
        raise IdxFormatError(source, "rank 0: an IDX file needs at least one dimension", 3)
    need = 4 + 4 * rank
    if len(head) < need:
        raise IdxFormatError(source, f"truncated inside the header: {len(head)} of {need} bytes", len(head))
    shape = tuple(int(d) for d in struct.unpack(f">{rank}I", bytes(head[4:need])))
    # NumPy refuses (with a bare ValueError) any shape whose non-zero dimensions span more
    # than sys.maxsize bytes, even when a zero dimension makes the array empty.
    if math.prod(d for d in shape if d) * IDX_TYPES[code].itemsize > sys.maxsize:
        raise IdxFormatError(source, f"the header declares shape {shape}, too large for any array", 4)
    return IdxHeader(code, shape)


# --- decoded byte streams -------------------------------------------------------------------


def _input(src: Source) -> tuple[Iterator[bytes | memoryview], str, int | None, object]:
    """The input of ``src`` in blocks: returns (blocks, name, size or None for a stream, keepalive).

    A path is memory-mapped and bytes are wrapped (both cut into blocks without
    copying); a binary stream, such as a zip archive member, is read block by block.
    """
    if hasattr(src, "read"):
        name = str(getattr(src, "name", "<stream>"))
        return iter(lambda: src.read(_IN_CHUNK), b""), name, None, None
    if isinstance(src, (bytes, bytearray, memoryview)):
        buf, name, keep = memoryview(src).cast("B"), "<bytes>", None
    else:
        path = Path(src)
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                return iter(()), str(path), 0, None
            keep = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        buf, name = memoryview(keep), str(path)
    # Raw IDX goes out in CHUNK slices; compressed input in smaller ones, see _gzip_chunks.
    step = CHUNK if sniff(bytes(buf[:512])) == "idx" else _IN_CHUNK
    return _blocks(buf, step), name, len(buf), keep


def _gzip_chunks(blocks: Iterator[bytes | memoryview], source: str) -> Iterator[bytes]:
    """Decompress every gzip member in the input ``blocks``, in chunks of at most CHUNK bytes."""
    zlib = _zlib_module()
    data: bytes | memoryview = b""
    while True:
        dec = zlib.decompressobj(31)
        # Input goes in bounded blocks: the decompressor copies its unconsumed input,
        # so handing it a whole file would copy (and hold) most of it on every call.
        while not dec.eof:
            if not data:
                data = next(blocks, b"")
                if not data:
                    raise IdxFormatError(source, "truncated: the gzip stream ends before its end marker")
            try:
                piece = dec.decompress(data, CHUNK)
            except zlib.error as err:
                raise IdxFormatError(source, f"corrupt gzip data ({err})") from None
            if piece:
                yield piece
            data = dec.unconsumed_tail
        rest = _rest_after_stream(dec.unused_data, blocks, GZIP_MAGIC, "gzip", source)
        if rest is None:
            return
        data = rest  # another member (pigz, concatenated files)


def _rest_after_stream(tail: bytes, blocks: Iterator, magic: bytes, kind: str, source: str) -> bytes | None:
    """What follows a compressed stream: None at the end (zero padding allowed), or the next stream's bytes."""
    while len(tail) < len(magic):
        block = next(blocks, b"")
        if not block:
            break
        tail += bytes(block)
    if tail.startswith(magic):
        return tail
    extra = len(tail.strip(b"\x00"))
    padding = len(tail)
    for block in blocks:  # count what is left, so the error says how much
        extra += len(bytes(block).strip(b"\x00"))
        padding += len(block)
    if extra:
        raise IdxFormatError(source, f"{extra} trailing bytes after the {kind} stream")
    if padding > MAX_PADDING:  # zeros are tolerated (block-padded copies), but not without bound
        raise IdxFormatError(source, f"{padding} zero bytes after the {kind} stream (at most {MAX_PADDING} allowed)")
    return None


def _xz_chunks(blocks: Iterator[bytes | memoryview], source: str) -> Iterator[bytes]:
    import lzma  # xz is rare: imported when met, keeping `import mnistkit` light

    data: bytes | memoryview = b""
    while True:
        dec = lzma.LZMADecompressor()
        while not dec.eof:
            if dec.needs_input and not data:
                data = next(blocks, b"")
                if not data:
                    raise IdxFormatError(source, "truncated: the xz stream ends before its end marker")
            try:
                piece = dec.decompress(data, CHUNK)
            except lzma.LZMAError as err:
                raise IdxFormatError(source, f"corrupt xz data ({err})") from None
            data = b""
            if piece:
                yield piece
        rest = _rest_after_stream(dec.unused_data, blocks, XZ_MAGIC, "xz", source)
        if rest is None:
            return
        data = rest


def _blocks(buf: memoryview, size: int) -> Iterator[memoryview]:
    for start in range(0, len(buf), size):
        yield buf[start : start + size]


def decoded_chunks(blocks: Iterator[bytes | memoryview], source: str) -> tuple[str, Iterator[bytes | memoryview]]:
    """Return the container kind of the input ``blocks`` and an iterator over its decoded bytes."""
    first = next(blocks, b"")
    while 0 < len(first) < 512:  # a stream may hand out short reads: sniff at least 512 bytes
        more = next(blocks, b"")
        if not more:
            break
        first = bytes(first) + bytes(more)
    kind = sniff(bytes(first[:512]))
    blocks = _chain([first], blocks)
    if kind == "gzip":
        return kind, _gzip_chunks(blocks, source)
    if kind == "xz":
        return kind, _xz_chunks(blocks, source)
    if kind == "idx":
        return kind, blocks
    if kind == "empty":
        raise IdxFormatError(source, "the file is empty (an interrupted download?)")
    if kind == "html":
        raise IdxFormatError(source, "this is an HTML page (an error page served instead of data?), not IDX data", 0)
    if kind == "zip":
        raise IdxFormatError(source, "this is a zip archive, not an IDX file; extract it first", 0)
    if kind == "bz2":
        raise IdxFormatError(source, "bzip2 compression is not supported; decompress the file first", 0)
    return kind, iter([bytes(first[:4])])  # parse_header reports the bad magic


class Payload:
    """The validated payload of one IDX file, streamed in chunks.

    Obtained from :func:`open_payload`.  Iterating yields the item bytes after
    the header; when the iteration ends the payload has been checked to be
    exactly ``header.payload_size`` bytes, with nothing after it.
    """

    def __init__(self, header: IdxHeader, first: bytes | memoryview, rest: Iterator, source: str, keep: object):
        self.header = header
        self.source = source
        self.container = ""
        self._first = first
        self._rest = rest
        self._keep = keep  # the mmap must outlive the memoryviews handed out

    def __iter__(self) -> Iterator[bytes | memoryview]:
        want = self.header.payload_size
        got = 0
        pieces = [self._first] if len(self._first) else []
        pieces_iter = iter(pieces)
        for piece in _chain(pieces_iter, self._rest):
            n = len(piece)
            if got + n > want:
                extra = got + n - want
                if want - got:
                    yield piece[: want - got]
                # keep counting, so the error says how many bytes are too many
                extra += sum(len(p) for p in self._rest)
                raise IdxFormatError(
                    self.source,
                    f"{extra} trailing bytes after the {want} bytes of data the header declares",
                    self.header.header_size + want,
                )
            got += n
            yield piece
        if got < want:
            raise IdxFormatError(
                self.source,
                f"truncated: {got} of {want} data bytes "
                f"({self.header.header_size + got} of {self.header.total_size} bytes in all)",
                self.header.header_size + got,
            )


def _chain(*its):
    for it in its:
        yield from it


def open_payload(src: Source, *, source: str | None = None, expected_size: int | None = None) -> Payload:
    """Open an IDX file (raw, gzip or xz) and validate its header.

    Parameters
    ----------
    src : path-like, bytes-like or binary file object
        The file to read.  A path is memory-mapped, never read whole; a
        stream (such as a member opened in a zip archive) is read in blocks.
    source : str, optional
        Name for error messages; defaults to the path.
    expected_size : int, optional
        The decoded size the caller knows the file must have; a header that
        declares another size is refused before any payload is decoded.

    Returns
    -------
    Payload
        ``.header`` is the parsed header; iterate it for the item bytes.

    Raises
    ------
    IdxFormatError
        For an empty, HTML, unknown, or corrupt file, or a header that
        promises more data than the file can hold.
    """
    blocks, name, size, keep = _input(src)
    name = source or name
    kind, chunks = decoded_chunks(blocks, name)
    head = b""
    for piece in chunks:
        head += bytes(piece)
        if len(head) >= 4 and (head[0] or head[1] or len(head) >= 4 + 4 * head[3]):
            break
        if len(head) > 4 + 4 * 255:
            break
    header = parse_header(head, name)
    # Refuse impossible sizes before anyone allocates room for them.
    if expected_size is not None and header.total_size != expected_size:
        raise IdxFormatError(
            name,
            f"the header declares shape {header.shape} ({header.total_size} bytes), "
            f"expected {expected_size} bytes for this file",
            4,
        )
    # (a stream's size is unknown: there the payload's own length check is what guards)
    limit = None if size is None else size if kind == "idx" else size * _MAX_RATIO.get(kind, 1) + 1024
    if limit is not None and header.total_size > limit:
        if kind == "idx":
            why = f"truncated: {size} bytes, but the header declares shape {header.shape} ({header.total_size} bytes)"
        else:
            why = (
                f"the header declares shape {header.shape} ({header.total_size} bytes), more than a "
                f"{size}-byte {kind} stream can hold"
            )
        raise IdxFormatError(name, why, 4)
    payload = Payload(header, head[header.header_size :], chunks, name, keep)
    payload.container = kind
    return payload


def read_idx(src: Source, *, source: str | None = None) -> np.ndarray:
    """Read an IDX file (raw, gzip or xz) into a NumPy array.

    Parameters
    ----------
    src : path-like, bytes-like or binary file object
        The file, or its bytes.
    source : str, optional
        Name used in error messages.

    Returns
    -------
    numpy.ndarray
        A new, writable array in native byte order with the declared shape.

    Raises
    ------
    IdxFormatError
        If the bytes are not a complete, valid IDX file.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.arange(6, dtype=np.int16).reshape(2, 3)
    >>> read_idx(encode_idx(a)).tolist()
    [[0, 1, 2], [3, 4, 5]]
    """
    payload = open_payload(src, source=source)
    header = payload.header
    out = np.empty(header.shape, dtype=header.dtype)
    flat = out.reshape(-1).view(np.uint8)
    pos = 0
    for piece in payload:  # one decoded copy only: chunks land straight in the result
        n = len(piece)
        flat[pos : pos + n] = np.frombuffer(piece, np.uint8)
        pos += n
    if out.dtype.byteorder == ">":  # swap in place rather than hold a second, native copy
        out = out.byteswap(inplace=True).view(out.dtype.newbyteorder("="))
    return out


def encode_idx(array: np.ndarray) -> bytes:
    """Encode an array as IDX bytes (uncompressed).

    Parameters
    ----------
    array : numpy.ndarray
        uint8, int8, int16, int32, float32 or float64, rank 1 to 255.

    Returns
    -------
    bytes
    """
    array = np.asarray(array)
    code = _CODE_OF_KIND.get((array.dtype.kind, array.dtype.itemsize))
    if code is None or array.dtype.kind == "b":
        msg = f"IDX cannot store dtype {array.dtype}; use uint8, int8, int16, int32, float32 or float64"
        raise ArgumentError(msg)
    if not 1 <= array.ndim <= 255:
        msg = f"IDX stores ranks 1 to 255, not {array.ndim}"
        raise ArgumentError(msg)
    header = IdxHeader(code, tuple(int(d) for d in array.shape))
    return header.to_bytes() + np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()


def write_idx(dest: str | os.PathLike | BinaryIO, array: np.ndarray, *, compression: str | None = None) -> None:
    """Write an array as an IDX file.

    Parameters
    ----------
    dest : path-like or binary file
        Where to write.
    array : numpy.ndarray
        See :func:`encode_idx`.
    compression : {None, "gzip", "xz"}
        Compress the file as published datasets do.

    Raises
    ------
    ArgumentError
        For a type or rank IDX cannot store, or an unknown ``compression`` (also a ``ValueError``).
    """
    data = encode_idx(array)
    if compression == "gzip":
        import gzip

        data = gzip.compress(data, mtime=0)
    elif compression == "xz":
        import lzma

        data = lzma.compress(data)
    elif compression is not None:
        msg = f"compression={compression!r}: choose None, 'gzip' or 'xz'"
        raise ArgumentError(msg)
    if hasattr(dest, "write"):
        dest.write(data)
    else:
        Path(dest).write_bytes(data)
