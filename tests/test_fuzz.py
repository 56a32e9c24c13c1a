"""Property-based fuzzing of the IDX codec against an independent reference (fuzz/targets.py).

Every input, valid or mangled, must decode to exactly the reference's array or raise
IdxFormatError: never another exception, never a wrong array, and never a peak memory far
beyond what the input can rightfully hold.  The coverage-guided counterpart runs on demand:
``python fuzz/fuzz_idx.py -max_total_time=60``.
"""

from __future__ import annotations

import gzip
import lzma
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import long_mode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
from targets import TARGETS, check_one, reference_idx

from mnistkit.idx import encode_idx

IDX = TARGETS["idx"]
EXAMPLES = 2000 if long_mode() else 150
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
CONTAINERS = {"raw": lambda b: b, "gzip": lambda b: gzip.compress(b, mtime=0), "xz": lzma.compress}
# Dimensions a lying header likes: zero, powers of two whose product wraps around 2**64, the maximum.
LIES = st.sampled_from([0, 1, 255, 1 << 16, 1 << 24, (1 << 31) - 1, 1 << 31, (1 << 32) - 1]) | st.integers(0, 2**32 - 1)

arrays = st.sampled_from(DTYPES).flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5))
)


@st.composite
def mangled(draw) -> bytes:
    """A valid IDX file, its header perhaps rewritten, compressed, then perhaps damaged."""
    raw = bytearray(encode_idx(draw(arrays)))
    header_lie = draw(st.sampled_from(["none", "dim", "rank", "type", "bytes"]))
    if header_lie == "dim":
        k = draw(st.integers(0, raw[3] - 1))
        raw[4 + 4 * k : 8 + 4 * k] = struct.pack(">I", draw(LIES))
    elif header_lie == "rank":
        raw[3] = draw(st.integers(0, 255))
    elif header_lie == "type":
        raw[2] = draw(st.integers(0, 255))
    elif header_lie == "bytes":  # a header claiming 4 dims of 65536: 2**64 bytes, 0 in int64
        raw[3:] = bytes([4]) + struct.pack(">4I", *[1 << 16] * 4) + raw[4:]
    data = bytearray(CONTAINERS[draw(st.sampled_from(sorted(CONTAINERS)))](bytes(raw)))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "append-zeros", "append-bytes", "append-copy"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and data:
            data[min(at, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "append-zeros":
            data += bytes(draw(st.integers(1, 64)))
        elif op == "append-bytes":
            data += draw(st.binary(min_size=1, max_size=32))
        else:  # another stream of the same kind: multi-member gzip, multi-stream xz
            data += data[: draw(st.integers(1, max(1, len(data))))]
    return bytes(data)


magic_prefixed = st.tuples(
    st.sampled_from([b"", b"\x00\x00", b"\x00\x00\x08", b"\x1f\x8b\x08", b"\xfd7zXZ\x00", b"<html>", b"PK\x03\x04"]),
    st.binary(max_size=200),
).map(b"".join)


@FUZZ
@given(data=mangled())
def test_mangled_files_decode_right_or_raise_idx_format_error(data, tally):
    tally.add(check_one(IDX, data, measure_memory=True))


@FUZZ
@given(data=magic_prefixed)
def test_arbitrary_bytes_decode_right_or_raise_idx_format_error(data, tally):
    tally.add(check_one(IDX, data, measure_memory=True))


@pytest.mark.parametrize("seed", range(len(IDX.seeds())))
def test_seeds_are_valid_and_decode_to_the_reference(seed):
    assert check_one(IDX, IDX.seeds()[seed]) == "decoded"


def test_header_whose_size_wraps_around_int64_is_refused():
    """Found by this fuzzing: 4 x 65536 items multiply to 0 in int64, which passed every size check."""
    lie = bytes([0, 0, 8, 4]) + struct.pack(">4I", *[1 << 16] * 4)
    for container in CONTAINERS.values():
        assert check_one(IDX, container(lie), measure_memory=True) == "refused"
    assert reference_idx(lie) is None


def test_empty_array_with_unrepresentable_shape_is_refused():
    """Found by atheris: shape (0, 2**32-1, 2**32-1, 2**32-1) is 0 bytes, but NumPy cannot make it."""
    lie = bytes([0, 0, 0x0E, 4]) + struct.pack(">4I", 0, *[(1 << 32) - 1] * 3)
    for data in (lie, lie + b"\xff" * 8):
        assert check_one(IDX, data, measure_memory=True) == "refused"


ZIP = TARGETS["zip-member"]


@st.composite
def mangled_archives(draw) -> bytes:
    """One of the seed archives with a few bytes flipped, cut, inserted or overwritten."""
    data = bytearray(draw(st.sampled_from(ZIP.seeds())))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "cut", "insert", "overwrite"]))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[at:]
            if not data:
                break
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:  # a lying size, offset or method field: any 4 bytes anywhere
            data[at : at + 4] = draw(st.binary(min_size=4, max_size=4))
    return bytes(data)


@FUZZ
@given(data=mangled_archives())
def test_mangled_archives_read_right_or_raise_idx_format_error(data, tally):
    tally.add(check_one(ZIP, data, measure_memory=True))


@pytest.mark.parametrize("seed", range(len(ZIP.seeds())))
def test_archive_seeds_are_valid_and_decode_to_the_reference(seed):
    assert check_one(ZIP, ZIP.seeds()[seed]) == "decoded"


def test_archive_with_flipped_encryption_flag_is_refused_naming_the_member():
    """Found by this fuzzing: zipfile raised NotImplementedError (and, for lying offsets, ValueError)."""
    from targets import MEMBER

    from mnistkit.archive import open_member
    from mnistkit.errors import IdxFormatError

    data = bytearray(ZIP.seeds()[0])
    entry = data.rfind(b"PK\x01\x02")  # the central directory entry of the last member, ours
    data[entry + 8] |= 0x40  # "strong encryption" flag
    import io

    with pytest.raises(IdxFormatError, match=MEMBER), open_member(io.BytesIO(bytes(data)), MEMBER) as stream:
        stream.read()
    assert check_one(ZIP, bytes(data)) == "refused"
