"""A SentencePiece "precompiled charsmap" built from a per-character replacement table.

`tokenizers.normalizers.Precompiled` reads SentencePiece's binary normaliser: a little-endian u32
giving the byte size of a Darts-clone double-array trie, the trie's u32 units, then the replacement
strings, each UTF-8 and NUL-terminated. The trie maps the UTF-8 bytes of a source character to the
byte offset of its replacement. Building one ourselves gives an exact, compiled (fast) form of a
codepoint-to-string table, where a chain of `Replace` normalisers would take one pass per distinct
replacement (thousands).

Double-array layout (what the reader in `tokenizers` expects): the unit at position `p` of a node
holds its label byte (bits 0-7), a has-leaf flag (bit 8) and `offset` (bits 10-30); its children
sit at `p ^ offset ^ label` and carry their own label, its value unit at `p ^ offset` carries the
value with bit 31 set (so it never matches a label). Each node gets a base (`p ^ offset`) no other
node uses, so a label check alone identifies a child.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

_LEAF_FLAG = 1 << 8
_VALUE_FLAG = 1 << 31
_MAX_OFFSET = 1 << 21  # offsets beyond this need the extended encoding, never reached here


def build_precompiled_charsmap(replacements: Mapping[str, str]) -> bytes:
    """Serialises `{character: replacement}` (single-character keys, replacements possibly empty)
    into the binary that `tokenizers.normalizers.Precompiled` loads."""
    bad_keys = [key for key in replacements if len(key) != 1]
    if bad_keys:
        raise ValueError(f"charsmap keys must be single characters, got {bad_keys[:5]}; split longer keys.")
    blob = bytearray()
    trie: dict = {}
    for key in sorted(replacements):
        node = trie
        for byte in key.encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = len(blob)  # UTF-8 is prefix-free: a key's node has no children
        blob += replacements[key].encode("utf-8") + b"\0"
    units = _double_array(trie)
    return struct.pack("<I", 4 * len(units)) + struct.pack(f"<{len(units)}I", *units) + bytes(blob)


def _double_array(root: dict) -> list[int]:
    """Places the byte trie `root` (children keyed by byte, a value under key None) in a double array."""
    units: dict[int, int] = {0: 0}
    used_bases: set[int] = set()
    first_free = 1
    queue: list[tuple[int, dict, int]] = [(0, root, 0)]  # (position, node, label)
    for position, node, label in queue:
        labels = sorted(0 if key is None else key for key in node)
        candidate = first_free
        while True:
            base = candidate ^ labels[0]
            if base not in used_bases and all(
                (base ^ child) not in units and (base ^ child) != 0 for child in labels
            ):
                break
            candidate += 1
            while candidate in units:
                candidate += 1
        used_bases.add(base)
        offset = position ^ base
        if offset >= _MAX_OFFSET:
            raise ValueError("charsmap too large for the compact double-array encoding")
        units[position] = (offset << 10) | (_LEAF_FLAG if None in node else 0) | label
        for child in labels:
            if child == 0:
                units[base] = _VALUE_FLAG | node[None]
            else:
                units[base ^ child] = child  # completed when the child itself is placed
                queue.append((base ^ child, node[child], child))
        while first_free in units:
            first_free += 1
    # every lookup reads base ^ byte for any byte, so each used base's 256-unit block must exist
    size = max(max(units), *(base | 0xFF for base in used_bases)) + 1
    return [units.get(index, 0) for index in range(size)]
