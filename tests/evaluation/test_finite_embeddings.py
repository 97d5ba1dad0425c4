"""check_finite_embeddings: embeddings with NaN or infinities are refused before an index or a score uses them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modeling_ccr.evaluation.encode import check_finite_embeddings


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("kind", ["array", "tensor"])
def test_non_finite_embeddings_are_refused_naming_the_row(bad, kind):
    embeds = np.ones((6, 4), dtype=np.float32)
    embeds[4, 2] = bad
    embeds = torch.from_numpy(embeds) if kind == "tensor" else embeds
    with pytest.raises(ValueError, match=r"^the embedding of image 14 holds NaN or infinite values, so it would match "
                                         r"nothing: .*run it in float32"):
        check_finite_embeddings(embeds, "image", first_row=10)


def test_finite_embeddings_pass():
    embeds = np.full((3, 4), np.finfo(np.float32).max, dtype=np.float32)  # large, still finite
    check_finite_embeddings(embeds, "image")
    check_finite_embeddings(torch.zeros(0, 4), "image")  # nothing to check
