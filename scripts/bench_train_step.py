"""Time CCRTrainer steps of a model shaped like the embedded default (random weights, synthetic batches).

EfficientNet-Lite0 image tower + a 12-layer, 384-wide BERT text tower with the XLM-R vocabulary, 2 fusion
layers, the full objective (1-to-K + ITM + MLM). Runs on CUDA with bf16 when a GPU is there, else on the
CPU; needs neither the shipped weights nor a data set, so it runs on a bare GPU machine.

    python scripts/bench_train_step.py [--batch-size 32] [--languages 10] [--steps 10] [--frozen-vision]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from bench_common import VOCAB, default_shaped_config
from transformers import TrainerCallback, TrainingArguments

from modeling_ccr import CCRModel
from modeling_ccr.training import CCRForPreTraining, CCRObjective, CCRTrainer, set_trainable

MASK_ID, SPECIAL_IDS = VOCAB - 1, [0, 1, 2, 3]


class StepTimer(TrainerCallback):
    def __init__(self):
        self.starts, self.durations = [], []

    def on_step_begin(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.starts.append(time.perf_counter())

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.durations.append(time.perf_counter() - self.starts[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32, help="images per step")
    parser.add_argument("--languages", type=int, default=10, help="captions per image (K)")
    parser.add_argument("--length", type=int, default=16, help="tokens per caption")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after 3 warm-up steps)")
    parser.add_argument("--frozen-vision", action="store_true", help="freeze the image tower (the CPU default)")
    args = parser.parse_args()

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
    timed = timer.durations[3:]
    device = torch.cuda.get_device_name() if cuda else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {device}; bf16: {training_args.bf16}; torch {torch.__version__}")
    print(f"batch: {args.batch_size} images x {args.languages} captions of {args.length} tokens; "
          f"{'frozen' if args.frozen_vision else 'trained'} image tower")
    print(f"step time over {len(timed)} steps: median {statistics.median(timed):.3f} s, "
          f"min {min(timed):.3f} s, max {max(timed):.3f} s")
    if cuda:
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
