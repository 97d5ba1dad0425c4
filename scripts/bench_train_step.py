"""Time training steps, and say where their CPU time goes (user, kernel, page faults per step).

Two set-ups:
- ``--recipe default``: ``ccr train`` exactly as the main job runs it (the embedded default model and
  benchmark, the default recipe with its frozen-feature cache filled before the first step), for
  ``--steps`` steps; prints the cache fill, then the steps.
- ``--recipe synthetic`` (the default): a model shaped like the embedded default with random weights on
  synthetic batches (EfficientNet-Lite0 + a 12-layer, 384-wide BERT with the XLM-R vocabulary, 2 fusion
  layers, the full objective); needs neither the shipped weights nor a data set, so it runs on a bare GPU
  machine (CUDA with bf16 when there).

For the steps after the warm-up: the median, min and max step time, the CPU time split into user and
kernel time, and the minor page faults per step. A kernel share of more than a few percent with many faults
per step means the allocator returns memory to the kernel between steps (``modeling_ccr.allocator``);
``CCR_MALLOC_TUNING=0`` in the environment runs with glibc's defaults for a comparison.

    python scripts/bench_train_step.py --recipe default [--steps 40]
    python scripts/bench_train_step.py [--batch-size 32] [--languages 10] [--steps 10] [--frozen-vision]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from bench_common import (
    VOCAB,
    CpuCounters,
    allocator_line,
    default_shaped_config,
    describe_machine,
    peak_memory,
)
from transformers import TrainerCallback, TrainingArguments

from modeling_ccr import CCRModel
from modeling_ccr.allocator import tune_allocator
from modeling_ccr.training import CCRForPreTraining, CCRObjective, CCRTrainer, set_trainable

MASK_ID, SPECIAL_IDS = VOCAB - 1, [0, 1, 2, 3]


class StepTimer(TrainerCallback):
    """Wall time and CPU counters of each optimiser step, and the wall time between one step's end and the
    next one's start (the next batch's loading and collation, logging, checkpoints)."""

    def __init__(self):
        self.started: tuple[float, CpuCounters] | None = None
        self.ended: float | None = None
        self.durations, self.counters, self.gaps = [], [], []

    def on_step_begin(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.started = (time.perf_counter(), CpuCounters.now())
        if self.ended is not None:
            self.gaps.append(self.started[0] - self.ended)

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start, counters = self.started
        self.ended = time.perf_counter()
        self.durations.append(self.ended - start)
        self.counters.append(CpuCounters.now() - counters)

    def report(self, warmup: int) -> str:
        timed, counters, gaps = self.durations[warmup:], self.counters[warmup:], self.gaps[warmup:]
        total = sum(counters[1:], counters[0])
        lines = [f"step time over {len(timed)} steps (after {warmup} warm-up): "
                 f"median {statistics.median(timed):.3f} s, "
                 f"mean {statistics.mean(timed):.3f} s, min {min(timed):.3f} s, max {max(timed):.3f} s",
                 f"  {total.describe(len(timed), 'step')}"]
        if gaps:
            lines.append(f"between steps (next batch, logging, checkpoints): median {statistics.median(gaps):.3f} s, "
                         f"mean {statistics.mean(gaps):.3f} s, max {max(gaps):.3f} s, {sum(gaps):.1f} s in all")
        return "\n".join(lines)


def run_default_recipe(steps: int) -> None:
    """``ccr train``'s default recipe on the embedded default for ``steps`` steps, in a throw-away folder."""
    from modeling_ccr.training import CCRTrainingArguments, train

    print(describe_machine())
    print(allocator_line())
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as output:
        # ccr train's logging and checkpoint intervals, as in the main job
        args = CCRTrainingArguments(output_dir=output, max_steps=steps, disable_tqdm=True, report_to=[])
        before, start = CpuCounters.now(), time.perf_counter()
        result = train(args, callbacks=[timer], stage=stage_clock)
        wall, counters = time.perf_counter() - start, CpuCounters.now() - before
        record = json.loads((Path(result["model_dir"]) / "training_run.json").read_text(encoding="utf-8"))
    for name, seconds in STAGE_SECONDS.items():
        print(f"{name}: {seconds:.1f} s")
    print(f"frozen-feature cache: {record['frozen_feature_cache_fill']}")
    print(timer.report(warmup=3))
    print(f"whole run: {wall:.1f} s wall, {counters.describe(steps, 'step')}")
    print(peak_memory("cpu"))


STAGE_SECONDS: dict[str, float] = {}


@contextmanager
def stage_clock(name: str) -> Iterator[None]:
    """The ``stage`` of :func:`train`: keeps each stage's wall seconds in ``STAGE_SECONDS``."""
    start = time.perf_counter()
    yield
    STAGE_SECONDS[name] = time.perf_counter() - start


def main() -> None:
    tune_allocator()  # before the first large allocation (modeling_ccr.allocator says why)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=["synthetic", "default"], default="synthetic",
                        help="default: ccr train's recipe on the embedded default (real weights and data)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per step")
    parser.add_argument("--languages", type=int, default=10, help="captions per image (K)")
    parser.add_argument("--length", type=int, default=16, help="tokens per caption")
    parser.add_argument("--steps", type=int, default=10,
                        help="synthetic: timed steps, after 3 warm-up steps; default: all steps, the first 3 not timed")
    parser.add_argument("--frozen-vision", action="store_true", help="freeze the image tower (the CPU default)")
    args = parser.parse_args()
    if args.recipe == "default":
        run_default_recipe(args.steps)
        return

    model = CCRModel(default_shaped_config())
    set_trainable(model, train_text_layers=4 if args.frozen_vision else -1,
                  train_vision_layers=0 if args.frozen_vision else -1)
    generator = torch.Generator().manual_seed(0)
    n_batches = 3 + args.steps
    batches = [{
        "pixel_values": torch.randn(args.batch_size, 3, 224, 224, generator=generator),
        "input_ids": torch.randint(5, VOCAB - 1, (args.batch_size * args.languages, args.length), generator=generator),
        "attention_mask": torch.ones(args.batch_size * args.languages, args.length, dtype=torch.long),
    } for _ in range(n_batches)]
    objective = CCRObjective(mask_token_id=MASK_ID, special_token_ids=SPECIAL_IDS, vocab_size=VOCAB)
    timer = StepTimer()
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as output:
        training_args = TrainingArguments(
            output_dir=output, max_steps=n_batches, per_device_train_batch_size=1, learning_rate=1e-4,
            bf16=cuda and torch.cuda.is_bf16_supported(), report_to=[], save_strategy="no", logging_steps=n_batches,
            remove_unused_columns=False, disable_tqdm=True, dataloader_pin_memory=cuda,
        )
        trainer = CCRTrainer(model=CCRForPreTraining.from_ccr_model(model, objective), args=training_args,
                             train_dataset=batches, data_collator=lambda rows: rows[0], callbacks=[timer])
        trainer.train()
    device = torch.cuda.get_device_name() if cuda else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {device}; bf16: {training_args.bf16}; torch {torch.__version__}")
    print(allocator_line())
    print(f"batch: {args.batch_size} images x {args.languages} captions of {args.length} tokens; "
          f"{'frozen' if args.frozen_vision else 'trained'} image tower")
    print(timer.report(warmup=3))
    if cuda:
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
