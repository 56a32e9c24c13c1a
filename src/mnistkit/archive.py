"""Files inside a zip archive, read in place: member streams, mapping files, finding damage.

EMNIST publishes one 562 MB zip holding every split.  Members are read as
streams straight from the archive (nothing is unpacked to disk), and any
damage found while reading (a bad CRC-32, corrupt deflate data, a truncated
member) is reported as an :class:`~mnistkit.errors.IdxFormatError` naming the
member, so the caller knows exactly which file of the archive is bad.
"""

from __future__ import annotations

import lzma
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from .errors import IdxFormatError, MnistkitError

# What zipfile raises for damage found while reading: bad CRC or header, corrupt deflate data, truncation,
# and (found by fuzzing) lying offsets and sizes (ValueError, OverflowError, struct.error), a flipped
# method field (NotImplementedError, or an lzma error), a flipped "encrypted" flag (RuntimeError).
_DAMAGE = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    ValueError,
    OverflowError,
    NotImplementedError,
    RuntimeError,
    struct.error,
    lzma.LZMAError,
)


def _is_damage(err: BaseException) -> bool:
    """Whether ``err`` means the archive's bytes are bad (bz2 says so with an errno-less OSError)."""
    return isinstance(err, _DAMAGE) or (isinstance(err, OSError) and err.errno is None)


class _MemberStream:
    """A member's bytes as a binary stream whose read errors name the member."""

    def __init__(self, fh, source: str, vouched_by: str | None = None) -> None:
        self._fh = fh
        self.name = source
        #: What showed the archive to be the published one (its checksum), if it was verified.
        self.vouched_by = vouched_by

    def read(self, n: int = -1) -> bytes:
        try:
            return self._fh.read(n)
        except Exception as err:
            if not _is_damage(err):
                raise  # a real I/O error of the disk, not bad bytes
            raise IdxFormatError(self.name, f"damaged in the archive ({err})") from None


def member_source(path: str | os.PathLike | BinaryIO, member: str) -> str:
    """How a member is named in messages: ``<archive path>:<member>``."""
    name = getattr(path, "name", "<archive>") if hasattr(path, "read") else os.fspath(path)
    return f"{name}:{member}"


@contextmanager
def open_member(
    path: str | os.PathLike | BinaryIO, member: str, vouched_by: str | None = None
) -> Iterator[_MemberStream]:
    """Open ``member`` of the zip archive at ``path`` as a binary stream, read in place.

    ``vouched_by`` says what verified the archive (e.g. ``"gzip.zip has its published sha256"``):
    a member that then contradicts the registry shows the registry, not the data, to be wrong.

    Raises
    ------
    IdxFormatError
        The archive cannot be read, has no such member, or the member is
        damaged (raised while reading); the message names the member.
    """
    source = member_source(path, member)
    try:
        with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
            yield _MemberStream(fh, source, vouched_by)
    except KeyError:
        raise IdxFormatError(source, "the archive has no such member (not the published archive?)") from None
    except MnistkitError:
        raise  # raised by the reader of the stream, already naming the member: not the archive's damage
    except Exception as err:
        if not _is_damage(err):
            raise
        raise IdxFormatError(source, f"cannot read the archive ({err})") from None


def read_member(path: str | os.PathLike, member: str) -> bytes:
    """The whole content of a (small) member; see :func:`open_member`."""
    with open_member(path, member) as fh:
        return fh.read()


def damaged_members(path: str | os.PathLike) -> list[str]:
    """Read every member of the archive and name those that fail their CRC-32 or cannot be decompressed.

    Returns
    -------
    list of str
        ``"<member> (<reason>)"`` for each damaged member; one entry naming the
        archive itself when it cannot be opened at all.
    """
    try:
        zf = zipfile.ZipFile(path)
    except (*_DAMAGE, OSError) as err:
        return [f"the archive itself ({err})"]
    damaged = []
    with zf:
        for info in zf.infolist():
            try:
                with zf.open(info) as fh:
                    while fh.read(1 << 20):
                        pass
            except Exception as err:
                if not _is_damage(err):
                    raise
                damaged.append(f"{info.filename} ({err})")
    return damaged


def parse_mapping(text: str, source: str = "<mapping>") -> dict[int, str]:
    """Parse an EMNIST mapping file: one ``label code [code ...]`` line per class.

    Returns
    -------
    dict
        label -> its characters (``{1: "Aa"}`` for ``"1 65 97"``).

    Examples
    --------
    >>> parse_mapping("0 48\\n1 65 97\\n")
    {0: '0', 1: 'Aa'}
    """
    mapping = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            label, *codes = (int(field) for field in line.split())
            if not codes:
                raise ValueError
            mapping[label] = "".join(chr(code) for code in codes)
        except ValueError:
            msg = f"{source}: line {number} is not 'label code [code ...]': {line!r}"
            raise IdxFormatError(source, msg) from None
    return mapping
