"""Helpers for the evaluation tests: a tiny benchmark in the common schema (seeded random 32 px images,
one random-word caption per image and language, letters only, which the tiny test tokenizer covers) and
a torchrun launcher."""

from __future__ import annotations

import os
import random
import string
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

from modeling_ccr.data.schema import common_features

LANGUAGES = ("en", "de", "fr")


def tiny_benchmark(
    num_images: int = 8, languages: tuple[str, ...] = LANGUAGES, seed: int = 0
) -> datasets.Dataset:
    """``num_images`` rows with ``id``, ``image`` (PIL) and ``captions`` in ``languages``."""
    rng = np.random.default_rng(seed)
    words = random.Random(seed)
    rows = {"id": [], "image": [], "captions": []}
    for index in range(num_images):
        pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
        rows["id"].append(f"img{index}")
        rows["image"].append(Image.fromarray(pixels))
        rows["captions"].append(
            {
                language: " ".join(
                    "".join(words.choices(string.ascii_lowercase, k=words.randint(3, 7)))
                    for _ in range(words.randint(2, 5))
                )
                for language in languages
            }
        )
    return datasets.Dataset.from_dict(rows, features=common_features(languages))


def write_parquet_benchmark(folder: Path, split: str = "test", **options) -> datasets.Dataset:
    """Write :func:`tiny_benchmark` as ``<folder>/<split>.parquet`` (a common-schema parquet folder)."""
    dataset = tiny_benchmark(**options)
    folder.mkdir(parents=True, exist_ok=True)
    dataset.to_parquet(str(folder / f"{split}.parquet"))
    return dataset


LAUNCHERS = {
    "torchrun": ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"],
    # accelerate's multi-process launcher (torchrun underneath, with accelerate's environment); no GPU here,
    # so PartialState joins over gloo.
    "accelerate": ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                   "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"],
}


def torchrun(args: list[str], cwd: Path, timeout: int = 240, launcher: str = "torchrun") -> subprocess.CompletedProcess:
    """Launch ``args`` on 2 CPU processes with torchrun (standalone rendezvous on localhost, gloo), or with
    ``accelerate launch`` (``launcher="accelerate"``)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, *LAUNCHERS[launcher], *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
