"""The charsmap builder, checked through the `tokenizers` reader on every Unicode codepoint."""

from __future__ import annotations

import random
import unicodedata

import pytest
from tokenizers import normalizers

from modeling_ccr.backbones.charsmap import build_precompiled_charsmap

ALL_CHARACTERS = [chr(cp) for cp in range(1, 0x110000) if not 0xD800 <= cp < 0xE000]


def rewrite(table: dict[str, str], text: str) -> str:
    return "".join(table.get(ch, ch) for ch in text)


def test_every_codepoint_maps_as_the_table_says():
    rng = random.Random(0)
    # NFKC of single characters (thousands of keys, 1-4 byte sources, 0-18 character outputs),
    # a deletion and keys whose UTF-8 forms share prefixes
    table = {
        ch: unicodedata.normalize("NFKC", ch)
        for ch in ALL_CHARACTERS
        if unicodedata.normalize("NFKC", ch) != ch
    }
    table.update({"\x01": "", "a": "", "\u00e9": "E", "\U0001f600": "smile"})
    table.update({ch: "x" for ch in rng.sample(ALL_CHARACTERS, 500)})
    normalizer = normalizers.Precompiled(build_precompiled_charsmap(table))
    # characters of one grapheme cluster each: joined by U+0001 (a Control character), which the table deletes
    text = "\x01".join(ALL_CHARACTERS)
    assert normalizer.normalize_str(text) == rewrite(table, text)


def test_deletion_only_table():
    normalizer = normalizers.Precompiled(build_precompiled_charsmap({"\x01": ""}))
    assert normalizer.normalize_str("abc\x01d") == "abcd"


def test_rejects_multi_character_keys():
    with pytest.raises(ValueError, match="single characters"):
        build_precompiled_charsmap({"ab": "c"})


def test_charsmap_binary_layout():
    charsmap = build_precompiled_charsmap({"a": "xyz"})
    trie_bytes = int.from_bytes(charsmap[:4], "little")
    assert trie_bytes % 4 == 0 and trie_bytes >= 4 * 256
    assert charsmap[4 + trie_bytes :] == b"xyz\0"
