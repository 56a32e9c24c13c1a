"""Fuzz targets for mnistkit's decoders, each judged by an independent reference.

A target is one decoder under attack plus a small, separately written reference
that says what the right answer for any byte string is: an array (the decoder
must return exactly it) or a refusal (the decoder must raise one of the
documented error types).  Anything else (another exception, a wrong array, a
peak memory far beyond what the input can hold) is a failure.

The same targets drive two harnesses:

* ``tests/test_fuzz.py``: hypothesis properties in the normal test suite (seconds);
* ``fuzz/fuzz_idx.py``: a coverage-guided atheris run for a fixed time, on demand.

Adding a decoder is adding one :class:`Target` to :data:`TARGETS`: its decode
function, its reference and its seeds.  Targets: ``idx`` (the IDX codec in every
container) and ``zip-member`` (a gzip'd IDX file read in place from a zip archive,
as EMNIST publishes it).
"""

from __future__ import annotations

import gzip
import lzma
import math
import struct
import tracemalloc
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mnistkit.errors import IdxFormatError

#: Above this many decoded bytes the reference gives up (``UNKNOWN``): the decoder
#: must then still return or refuse cleanly, but the array is not compared.
REFERENCE_CAP = 64 << 20

#: Allowed peak of traced memory: this multiple of (input + rightful decoded size), plus slack
#: for the decoders' fixed-size buffers.  A decoder that trusts a lying header blows far past it.
MEMORY_FACTOR = 3
MEMORY_SLACK = 16 << 20

UNKNOWN = object()  # the reference cannot tell (the input decodes to more than REFERENCE_CAP)


class FuzzFailure(AssertionError):
    """The decoder under test broke its contract on one input."""


@dataclass(frozen=True)
class Target:
    """One decoder under attack.

    Attributes
    ----------
    name : str
        Short name, used on the command line of ``fuzz/fuzz_idx.py``.
    decode : callable
        The code under test: bytes -> result.
    reference : callable
        bytes -> ``(result or None, decoded size)``: the right result (None: must be refused,
        or ``UNKNOWN``) and how many decoded bytes the input rightfully holds.
    errors : tuple of exception types
        What ``decode`` may raise for a bad input.
    same : callable
        Whether two results are identical.
    seeds : callable
        Valid (and some invalid) inputs to start mutating from.
    """

    name: str
    decode: Callable[[bytes], object]
    reference: Callable[[bytes], tuple[object, int]]
    errors: tuple[type[BaseException], ...]
    same: Callable[[object, object], bool]
    seeds: Callable[[], list[bytes]]


# --- the IDX codec: raw, gzip and xz containers -----------------------------------------------

_REF_TYPES = {8: "u1", 9: "i1", 11: ">i2", 12: ">i4", 13: ">f4", 14: ">f8"}
_GZIP, _XZ = b"\x1f\x8b", b"\xfd7zXZ\x00"
#: Zero bytes the formats' readers tolerate after the last stream (a documented bound, stated again here).
PADDING_LIMIT = 4096


def _unpack_streams(data: bytes, magic: bytes, new: Callable[[], object], error: type[Exception]):
    """Decode concatenated streams (up to PADDING_LIMIT zero bytes of padding allowed); None if invalid."""
    out = bytearray()
    while True:
        dec = new()
        try:
            out += dec.decompress(data, REFERENCE_CAP + 1 - len(out))
        except error:
            return None
        if len(out) > REFERENCE_CAP:
            return UNKNOWN
        if not dec.eof:
            return None  # the stream ends before its end marker
        rest = dec.unused_data
        if not rest.strip(b"\x00"):
            return bytes(out) if len(rest) <= PADDING_LIMIT else None
        if not rest.startswith(magic):
            return None  # trailing garbage
        data = rest


def reference_container(data: bytes):
    """The decoded bytes of ``data`` as the formats define them (stdlib zlib/lzma), None if invalid."""
    if data.startswith(_GZIP):
        return _unpack_streams(data, _GZIP, lambda: zlib.decompressobj(31), zlib.error)
    if data.startswith(_XZ):
        return _unpack_streams(data, _XZ, lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ), lzma.LZMAError)
    return data


def reference_idx(decoded: bytes) -> np.ndarray | None:
    """The array held by decoded IDX bytes, or None unless they are exactly one valid IDX file."""
    if len(decoded) < 4 or decoded[0] or decoded[1] or decoded[2] not in _REF_TYPES or decoded[3] == 0:
        return None
    dtype = np.dtype(_REF_TYPES[decoded[2]])
    need = 4 + 4 * decoded[3]
    if len(decoded) < need:
        return None
    shape = struct.unpack(f">{decoded[3]}I", decoded[4:need])
    if math.prod(d for d in shape if d) * dtype.itemsize >= 2**63:
        return None  # no NumPy array can have this shape, even an empty one
    count = math.prod(shape)  # Python integers: no wrap-around, whatever the header claims
    if len(decoded) != need + count * dtype.itemsize:
        return None
    return np.frombuffer(decoded, dtype, count=count, offset=need).reshape(shape)


def _reference_read_idx(data: bytes) -> tuple[object, int]:
    decoded = reference_container(data)
    if decoded is None:
        return None, 0
    if decoded is UNKNOWN:
        return UNKNOWN, REFERENCE_CAP
    return reference_idx(decoded), len(decoded)


def _same_array(got: np.ndarray, want: np.ndarray) -> bool:
    # Compare bytes, not values: NaN payloads and -0.0 must survive too.
    return (
        got.shape == want.shape
        and got.dtype == want.dtype.newbyteorder("=")
        and got.tobytes() == want.astype(want.dtype.newbyteorder("=")).tobytes()
    )


def _idx_seeds() -> list[bytes]:
    from mnistkit.idx import encode_idx

    arrays = [
        np.arange(12, dtype=np.uint8).reshape(3, 4),
        np.array([-1, 0, 1], dtype=np.int8),
        np.arange(6, dtype=np.int16).reshape(1, 2, 3),
        np.array([1 << 30, -5], dtype=np.int32),
        np.array([[np.nan, -0.0], [1.5, np.inf]], dtype=np.float32),
        np.zeros((2, 0, 3), dtype=np.float64),
    ]
    seeds = []
    for array in arrays:
        raw = encode_idx(array)
        seeds += [raw, gzip.compress(raw, mtime=0), lzma.compress(raw)]
    seeds.append(gzip.compress(seeds[0][:7], mtime=0) + gzip.compress(seeds[0][7:], mtime=0))
    return seeds


def _read_idx(data: bytes) -> np.ndarray:
    from mnistkit.idx import read_idx

    return read_idx(data)


# --- a member of a zip archive (EMNIST's gzip.zip): archive, then gzip, then IDX ------------------

MEMBER = "gzip/emnist-digits-test-labels-idx1-ubyte.gz"


def _zip_member(data: bytes) -> np.ndarray:
    import io

    from mnistkit.archive import open_member
    from mnistkit.idx import read_idx

    with open_member(io.BytesIO(data), MEMBER) as stream:
        return read_idx(stream)


def _reference_zip_member(data: bytes) -> tuple[object, int]:
    """The member's bytes as the stdlib's zipfile reads them whole (any failure: invalid), then as IDX."""
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            info = zf.getinfo(MEMBER)
            if info.file_size > REFERENCE_CAP:
                return UNKNOWN, REFERENCE_CAP
            member = zf.read(MEMBER)
    except Exception:  # the reference may fail any way it likes: it only has to say "invalid"
        return None, 0
    return _reference_read_idx(member)[0], len(member) + len(data)


def _zip_seeds() -> list[bytes]:
    import io
    import zipfile

    from mnistkit.idx import encode_idx

    gz = gzip.compress(encode_idx(np.arange(10, dtype=np.uint8)), mtime=0)
    seeds = []
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=method) as zf:
            zf.writestr("gzip/emnist-digits-mapping.txt", "0 48\n1 49\n")
            zf.writestr(MEMBER, gz)
        seeds.append(buf.getvalue())
    return seeds


TARGETS: dict[str, Target] = {
    "idx": Target(
        name="idx",
        decode=_read_idx,
        reference=_reference_read_idx,
        errors=(IdxFormatError,),
        same=_same_array,
        seeds=_idx_seeds,
    ),
    "zip-member": Target(
        name="zip-member",
        decode=_zip_member,
        reference=_reference_zip_member,
        errors=(IdxFormatError,),
        same=_same_array,
        seeds=_zip_seeds,
    ),
}


def check_one(target: Target, data: bytes, *, measure_memory: bool = False) -> str:
    """Run ``target`` on ``data`` and judge the outcome against its reference.

    Parameters
    ----------
    target : Target
    data : bytes
        Any byte string.
    measure_memory : bool
        Also trace allocations and fail when the peak exceeds
        ``MEMORY_FACTOR * (len(data) + rightful decoded size) + MEMORY_SLACK``.

    Returns
    -------
    str
        ``"decoded"`` or ``"refused"``.

    Raises
    ------
    FuzzFailure
        When the decoder returned a wrong result, refused a valid input, accepted an
        invalid one, raised an undocumented exception or used too much memory.
    """
    want, decoded_size = target.reference(data)
    if measure_memory:
        tracemalloc.start()
    try:
        got = target.decode(data)
    except target.errors as err:
        if want is not None and want is not UNKNOWN:
            msg = f"{target.name}: refused a valid input ({err}); input {data[:64]!r}..."
            raise FuzzFailure(msg) from err
        outcome = "refused"
    except Exception as err:
        msg = f"{target.name}: undocumented {type(err).__name__}: {err}; input {data[:64]!r}"
        raise FuzzFailure(msg) from err
    else:
        if want is None:
            msg = f"{target.name}: accepted an invalid input; input {data[:64]!r}"
            raise FuzzFailure(msg)
        if want is not UNKNOWN and not target.same(got, want):
            msg = f"{target.name}: decoded to the wrong result; input {data[:64]!r}"
            raise FuzzFailure(msg)
        outcome = "decoded"
    finally:
        if measure_memory:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    if measure_memory:
        limit = MEMORY_FACTOR * (len(data) + decoded_size) + MEMORY_SLACK
        if peak > limit:
            msg = f"{target.name}: peak memory {peak} bytes, over the {limit} allowed; input {data[:64]!r}"
            raise FuzzFailure(msg)
    return outcome
