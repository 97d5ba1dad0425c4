"""Helpers for the evaluation tests: a tiny benchmark in the common schema (seeded random 32 px images,
one random-word caption per image and language, letters only, which the tiny test tokenizer covers) and
a torchrun launcher."""

from __future__ import annotations

import os
import random
import string
import subprocess
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

from modeling_ccr.data.schema import common_features
from modeling_ccr.testing_processes import launcher_command, run_command

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


def torchrun(args: list[str], cwd: Path, timeout: int = 240, launcher: str = "torchrun") -> subprocess.CompletedProcess:
    """Launch ``args`` on 2 CPU processes with torchrun (standalone rendezvous on localhost, gloo), or with
    ``accelerate launch`` (``launcher="accelerate"``). At ``timeout`` seconds the launcher and its workers print
    their stacks and are killed (:func:`~modeling_ccr.testing_processes.run_command`)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return run_command(launcher_command(launcher, args), timeout_s=timeout, cwd=cwd, env=env)
