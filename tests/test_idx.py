"""The IDX codec: round trips for every type and rank, and a typed error for every bad input."""

from __future__ import annotations

import gzip
import lzma
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mnistkit.errors import IdxFormatError
from mnistkit.idx import IDX_TYPES, encode_idx, open_payload, parse_header, read_idx, sniff, write_idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
COMPRESS = {"raw": lambda b: b, "gzip": lambda b: gzip.compress(b, mtime=0), "xz": lzma.compress}


@settings(max_examples=60, deadline=None)
@given(
    array=st.sampled_from(DTYPES).flatmap(
        lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6))
    ),
    container=st.sampled_from(sorted(COMPRESS)),
)
def test_round_trip_every_type_and_rank(array, container):
    data = COMPRESS[container](encode_idx(array))
    back = read_idx(data)
    assert back.shape == array.shape
    assert back.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(back, array)  # NaNs compare equal here
    assert back.flags.writeable


@pytest.mark.parametrize(
    "dtype,code", [(np.uint8, 8), (np.int8, 9), (np.int16, 11), (np.int32, 12), (np.float32, 13), (np.float64, 14)]
)
def test_header_bytes_are_the_published_layout(dtype, code):
    arr = np.arange(6, dtype=dtype).reshape(2, 3)
    data = encode_idx(arr)
    assert data[:4] == bytes([0, 0, code, 2])
    assert struct.unpack(">II", data[4:12]) == (2, 3)
    # items are big-endian, independent of this machine
    assert data[12:] == arr.astype(np.dtype(dtype).newbyteorder(">")).tobytes()


def test_write_idx_to_path_and_file(tmp_path):
    arr = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    write_idx(tmp_path / "a.idx", arr, compression="gzip")
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), arr)
    with open(tmp_path / "b.idx", "wb") as fh:
        write_idx(fh, arr, compression="xz")
    np.testing.assert_array_equal(read_idx(tmp_path / "b.idx"), arr)
    with pytest.raises(ValueError):
        write_idx(tmp_path / "c", arr, compression="zip")


def test_container_is_decided_by_bytes_not_name(tmp_path):
    arr = np.arange(10, dtype=np.uint8)
    (tmp_path / "x.gz").write_bytes(encode_idx(arr))  # decompressed but still named .gz
    (tmp_path / "y").write_bytes(gzip.compress(encode_idx(arr)))  # compressed, no suffix
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz"), arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "y"), arr)


def test_multi_member_gzip_is_read_whole():
    raw = encode_idx(np.arange(100, dtype=np.uint8))
    data = gzip.compress(raw[:50]) + gzip.compress(raw[50:])
    np.testing.assert_array_equal(read_idx(data), np.arange(100, dtype=np.uint8))


def test_encode_refuses_what_idx_cannot_store():
    with pytest.raises(ValueError):
        encode_idx(np.zeros(3, dtype=np.uint16))
    with pytest.raises(ValueError):
        encode_idx(np.float64(1.0))


GOOD = encode_idx(np.arange(12, dtype=np.uint8).reshape(3, 4))


@pytest.mark.parametrize(
    "data,needle",
    [
        (b"", "empty"),
        (GOOD[:2], "truncated"),
        (GOOD[:7], "truncated inside the header"),
        (GOOD[:-3], "truncated: 21 bytes"),
        (gzip.compress(GOOD[:-3]), "truncated: 9 of 12 data bytes"),
        (GOOD + b"xyz", "3 trailing bytes"),
        (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]), "unknown item type 0x07"),
        (bytes([0, 0, 0x08, 0]), "rank 0"),
        (b"<!DOCTYPE html><html><body>403 Forbidden</body></html>", "HTML page"),
        (b"\n  <html><head><title>Error</title>", "HTML page"),
        (b"PK\x03\x04rest-of-zip", "zip archive"),
        (b"BZh91AY&SY", "bzip2"),
        (b"\x01\x02\x03\x04\x05\x06\x07\x08", "bad magic"),
        (gzip.compress(GOOD)[:-12], "truncated"),
        (gzip.compress(GOOD) + b"garbage!", "trailing bytes after the gzip stream"),
        (lzma.compress(GOOD)[:-10], "xz"),
        (gzip.compress(b"<html>error page</html>"), "HTML page"),
        (b"\x1f\x8b\x08\x00" + b"\xff" * 40, "corrupt gzip"),
    ],
    ids=[
        "empty",
        "tiny",
        "header-cut",
        "payload-cut",
        "gz-payload-cut",
        "trailing",
        "bad-type",
        "rank0",
        "html",
        "html-ws",
        "zip",
        "bz2",
        "bad-magic",
        "gzip-cut",
        "gzip-trailing",
        "xz-cut",
        "html-in-gzip",
        "gzip-corrupt",
    ],
)
def test_malformed_input_raises_typed_error_naming_file(tmp_path, data, needle):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(data)
    with pytest.raises(IdxFormatError) as info:
        read_idx(path)
    assert needle in str(info.value)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_header_claiming_huge_size_is_refused_before_allocating():
    # 10^12 items declared in a 30-byte gzip stream: impossible, refused from the header alone
    huge = bytes([0, 0, 8, 3]) + struct.pack(">III", 1_000_000, 1_000, 1_000)
    with pytest.raises(IdxFormatError, match="more than a"):
        read_idx(gzip.compress(huge))
    with pytest.raises(IdxFormatError, match="truncated"):
        read_idx(huge)


def test_expected_size_mismatch_is_refused():
    with pytest.raises(IdxFormatError, match="expected 99 bytes"):
        open_payload(GOOD, expected_size=99)


def test_sniff_and_parse_header():
    assert sniff(b"") == "empty"
    assert sniff(b"\xfd7zXZ\x00rest") == "xz"
    header = parse_header(GOOD)
    assert header.shape == (3, 4) and header.dtype == IDX_TYPES[8]
    assert header.total_size == len(GOOD) and header.to_bytes() == GOOD[:12]


def test_large_file_is_streamed_not_copied(tmp_path):
    """A 20 MB file decodes in chunks straight into the result: peak extra memory stays small."""
    import tracemalloc

    arr = np.random.default_rng(0).integers(0, 256, (25_000, 28, 28), dtype=np.uint8)
    path = tmp_path / "big.gz"
    path.write_bytes(gzip.compress(encode_idx(arr), compresslevel=1))
    tracemalloc.start()
    out = read_idx(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    np.testing.assert_array_equal(out, arr)
    assert peak < arr.nbytes * 1.5, f"peak {peak} for {arr.nbytes} decoded bytes"


def test_zero_padding_after_a_stream_is_bounded():
    """A few kB of zeros after the stream are tolerated (block-padded copies); more is refused."""
    limit = 4096  # idx.MAX_PADDING, stated here so a change of the documented bound is seen

    data = gzip.compress(encode_idx(np.arange(10, dtype=np.uint8)))
    np.testing.assert_array_equal(read_idx(data + bytes(limit)), np.arange(10, dtype=np.uint8))
    with pytest.raises(IdxFormatError, match=f"{limit + 1} zero bytes after the gzip stream"):
        read_idx(data + bytes(limit + 1))
    with pytest.raises(IdxFormatError, match="zero bytes after the xz stream"):
        read_idx(lzma.compress(encode_idx(np.arange(10, dtype=np.uint8))) + bytes(300 << 10))


def test_write_idx_errors_are_mnistkit_errors(tmp_path):
    from mnistkit import ArgumentError, MnistkitError

    for array, kw in [
        (np.zeros(2, dtype=np.int64), {}),
        (np.zeros(2, dtype=bool), {}),
        (np.float32(1.0), {}),
        (np.zeros(2, np.uint8), {"compression": "bz2"}),
    ]:
        with pytest.raises(ArgumentError) as info:
            write_idx(tmp_path / "x.idx", array, **kw)
        assert isinstance(info.value, MnistkitError) and isinstance(info.value, ValueError)
