"""Two real processes (gloo on 127.0.0.1) against one process holding the whole batch.

Each process wraps two linear projections and a learnable temperature in DDP, feeds half of a
fixed random batch, and computes a gathered contrastive loss. DDP averages the gradients over
ranks; they must equal the gradients of the same loss on the full batch in one process.
"""

from __future__ import annotations

import datetime
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from modeling_ccr.losses import (
    CrossLingualContrastiveLoss,
    CrossModalContrastiveLoss,
    OneToKContrastiveLoss,
    distributed_rank_and_world_size,
    gather_rows,
)
from modeling_ccr.process_group import end_process_group
from modeling_ccr.testing_processes import run_workers

WORLD_SIZE = 2
WORKER_TIMEOUT_S = 180  # both workers together; they take 5-30 s
N_IMAGES, K, FEATURE_DIM, EMBED_DIM = 8, 3, 12, 6

# name -> (loss factory, needs the per-image languages)
CONFIGS = {
    "one_to_k_released": (lambda: OneToKContrastiveLoss("released"), False),
    "one_to_k_released_local": (lambda: OneToKContrastiveLoss("released", local_loss=True), False),
    "one_to_k_symmetric": (lambda: OneToKContrastiveLoss("symmetric"), False),
    "one_to_k_symmetric_local": (lambda: OneToKContrastiveLoss("symmetric", local_loss=True), False),
    "one_to_k_exact_gather": (lambda: OneToKContrastiveLoss(gather_with_grad="exact"), False),
    "one_to_k_released_gather": (lambda: OneToKContrastiveLoss(gather_with_grad="released"), False),
    "one_to_k_no_grad_gather": (lambda: OneToKContrastiveLoss(gather_with_grad=False), False),
    "cross_modal_released_gather": (lambda: CrossModalContrastiveLoss(gather_with_grad="released"), True),
    "cross_modal": (lambda: CrossModalContrastiveLoss(), True),
    "cross_modal_local": (lambda: CrossModalContrastiveLoss(local_loss=True), True),
    "cross_lingual": (lambda: CrossLingualContrastiveLoss(english_index=1), False),
    "cross_lingual_local": (lambda: CrossLingualContrastiveLoss(english_index=1, local_loss=True), False),
}


class Projections(nn.Module):
    """Linear image and text heads, L2-normalised outputs, and a learnable temperature."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)  # the same initial weights in every process
        self.image_proj = nn.Linear(FEATURE_DIM, EMBED_DIM).double()
        self.text_proj = nn.Linear(FEATURE_DIM, EMBED_DIM).double()
        self.temperature = nn.Parameter(torch.tensor(0.2, dtype=torch.float64))

    def forward(self, image_features, text_features):
        image = nn.functional.normalize(self.image_proj(image_features), dim=-1)
        text = nn.functional.normalize(self.text_proj(text_features), dim=-1)
        return image, text


def fixed_batch():
    g = torch.Generator().manual_seed(123)
    image_features = torch.randn(N_IMAGES, FEATURE_DIM, generator=g, dtype=torch.float64)
    text_features = torch.randn(N_IMAGES * K, FEATURE_DIM, generator=g, dtype=torch.float64)
    languages = torch.randint(K, (N_IMAGES,), generator=g)
    return image_features, text_features, languages


def loss_and_gradients(model, loss_fn, needs_languages, rows):
    """Loss on the images in ``rows`` (and their K captions each), then backward."""
    image_features, text_features, languages = fixed_batch()
    text_rows = slice(rows.start * K, rows.stop * K)
    image, text = model(image_features[rows], text_features[text_rows])
    module = model.module if isinstance(model, DistributedDataParallel) else model
    extra = {"languages": languages[rows]} if needs_languages else {}
    loss = loss_fn(image, text, module.temperature, **extra)
    loss.backward()
    return loss.detach(), {name: p.grad.detach().clone() for name, p in module.named_parameters()}


def worker(rank: int, port: int, results: dict) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=datetime.timedelta(seconds=60),
    )
    assert distributed_rank_and_world_size() == (rank, WORLD_SIZE)
    share = N_IMAGES // WORLD_SIZE
    rows = slice(rank * share, (rank + 1) * share)
    for name, (make_loss, needs_languages) in CONFIGS.items():
        model = DistributedDataParallel(Projections())
        results[(name, rank)] = loss_and_gradients(model, make_loss(), needs_languages, rows)
    del model  # the last DDP model must go before its process group (end_process_group says why)

    # Rank-major gathering keeps rows in rank order.
    gathered = gather_rows(torch.full((2, 1), float(rank)))
    results[("gathered", rank)] = gathered.flatten().tolist()

    # Unequal per-process batches are refused on every process with a clear message.
    uneven = torch.zeros(share - rank, EMBED_DIM, dtype=torch.float64)
    try:
        OneToKContrastiveLoss()(uneven, torch.zeros(len(uneven) * K, EMBED_DIM, dtype=torch.float64), 0.1)
    except ValueError as error:
        results[("uneven", rank)] = str(error)
    end_process_group(barrier_timeout_s=60)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_results():
    context = mp.get_context("spawn")
    with context.Manager() as manager:
        results = manager.dict()
        run_workers(worker, args=(free_port(), results), nprocs=WORLD_SIZE, timeout_s=WORKER_TIMEOUT_S)
        return dict(results)


PARTIAL_GRADIENT = ("one_to_k_released_gather", "one_to_k_no_grad_gather", "cross_modal_released_gather")


@pytest.mark.parametrize("name", [n for n in CONFIGS if n not in PARTIAL_GRADIENT])
def test_two_processes_match_one_process_full_batch(two_process_results, name):
    make_loss, needs_languages = CONFIGS[name]
    full_loss, full_grads = loss_and_gradients(
        Projections(), make_loss(), needs_languages, slice(0, N_IMAGES)
    )

    losses = [two_process_results[(name, rank)][0] for rank in range(WORLD_SIZE)]
    if name.endswith("_local"):
        # Each process holds the loss of its own rows; their mean is the global loss.
        torch.testing.assert_close(torch.stack(losses).mean(), full_loss, rtol=0, atol=1e-10)
    else:
        for loss in losses:
            torch.testing.assert_close(loss, full_loss, rtol=0, atol=1e-10)
    for rank in range(WORLD_SIZE):
        grads = two_process_results[(name, rank)][1]
        assert grads.keys() == full_grads.keys()
        for param, full in full_grads.items():
            torch.testing.assert_close(
                grads[param], full, rtol=0, atol=1e-10, msg=f"{name} rank {rank} {param}"
            )


@pytest.mark.parametrize("name", PARTIAL_GRADIENT)
def test_released_gathering_gives_the_exact_gradient_divided_by_the_world_size(two_process_results, name):
    # "released" (= False): other ranks' rows are constants, as in the authors' all-gather, whose
    # backward returns the local slice. Rank r back-propagates only dL/dx_r, so after DDP's mean the
    # projection gradients are the exact two-process ones divided by the world size; the temperature,
    # used directly by every rank, keeps its full gradient. The loss value is unchanged.
    exact = "cross_modal" if name.startswith("cross_modal") else "one_to_k_exact_gather"
    for rank in range(WORLD_SIZE):
        loss, grads = two_process_results[(name, rank)]
        exact_loss, exact_grads = two_process_results[(exact, rank)]
        torch.testing.assert_close(loss, exact_loss, rtol=0, atol=1e-10)
        for param, full in exact_grads.items():
            expected = full if param == "temperature" else full / WORLD_SIZE
            torch.testing.assert_close(grads[param], expected, rtol=0, atol=1e-10, msg=f"{name} {param}")
            assert not torch.equal(grads[param], full) or param == "temperature"


def test_gathered_rows_are_rank_major(two_process_results):
    for rank in range(WORLD_SIZE):
        assert two_process_results[("gathered", rank)] == [0.0, 0.0, 1.0, 1.0]


def test_unequal_batches_are_refused_on_every_process(two_process_results):
    for rank in range(WORLD_SIZE):
        message = two_process_results[("uneven", rank)]
        assert "[[4, 12], [3, 9]]" in message and "drop_last=True" in message


def test_one_process_without_torch_distributed_is_a_no_op():
    assert not dist.is_initialized()
    x = torch.randn(3, 2)
    assert gather_rows(x) is x
    assert distributed_rank_and_world_size() == (0, 1)
