"""An evaluation checks the dataset it is handed once, before anything is encoded."""

from __future__ import annotations

import pytest
from eval_fixtures import tiny_benchmark

from modeling_ccr.evaluation import evaluate_retrieval
from modeling_ccr.testing import tiny_ccr_model, tiny_ccr_processor


def _with_caption(dataset, row: int, language: str, text: str):
    """``dataset`` with the caption of image ``row`` in ``language`` replaced by ``text``."""
    def edit(example, index):
        if index == row:
            example["captions"] = {**example["captions"], language: text}
        return example

    return dataset.map(edit, with_indices=True)


@pytest.mark.parametrize("text", ["", "  ", "\u200b"])
def test_a_blank_caption_is_refused_before_encoding(text):
    model, processor = tiny_ccr_model(seed=1), tiny_ccr_processor()
    dataset = _with_caption(tiny_benchmark(num_images=6, seed=3), 5, "de", text)
    forward_calls = []
    model.vision_model.register_forward_pre_hook(lambda module, args: forward_calls.append(1))
    with pytest.raises(ValueError, match=r"image 5 has no caption in 'de' .*choose the languages with --languages"):
        evaluate_retrieval(model, processor, dataset, k_test=None, batch_size=2)
    assert forward_calls == []  # refused up front: not after encoding images 0-3
    # the blank caption is in a language left out: nothing to refuse, every image is encoded
    result = evaluate_retrieval(model, processor, dataset, languages=["en", "fr"], k_test=None, batch_size=2)
    assert result.languages == ["en", "fr"] and tuple(result.ranks.tr.shape) == (6, 2)
    assert len(forward_calls) == 3


def test_a_language_the_dataset_lacks_is_refused():
    model, processor = tiny_ccr_model(seed=1), tiny_ccr_processor()
    with pytest.raises(ValueError, match=r"image 0 has no caption in 'ja' \(got None\)"):
        evaluate_retrieval(model, processor, tiny_benchmark(num_images=4), languages=["en", "ja"], k_test=None)
