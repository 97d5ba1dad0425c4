"""Shared set-up of the evaluation tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Run torch on one intra-op thread in these tests, then restore the setting.

    They make many tiny forward passes and score blocks; on a small, busy CPU two spinning intra-op
    threads made them up to 40 times slower than one.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
