"""Helpers shared by the ``scripts/bench_*.py`` benchmarks: the machine they ran on and a model shaped like
the embedded default with random weights (needs neither the shipped weights nor a data set)."""

from __future__ import annotations

import datetime
import os
import platform
import resource
from dataclasses import dataclass

import torch
import transformers

from modeling_ccr import CCRConfig, CCRModel
from modeling_ccr.allocator import allocator_state

VOCAB = 250_037  # XLM-R's vocabulary as used by multilingual-e5-small


def default_shaped_config() -> CCRConfig:
    """EfficientNet-Lite0 image tower, a 12-layer 384-wide BERT text tower with the XLM-R vocabulary, 2 fusion
    layers, mean pooling: the embedded default's shapes."""
    return CCRConfig(
        vision_config={"model_type": "efficientnet_lite"},
        text_config={"model_type": "bert", "vocab_size": VOCAB, "hidden_size": 384, "num_hidden_layers": 12,
                     "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512,
                     "pad_token_id": 1},
        num_fusion_layers=2, text_pooling="mean", vision_pooling="mean",
    )


def default_shaped_model() -> CCRModel:
    """A CCR model of the embedded default's shapes with seeded random weights, in eval mode."""
    torch.manual_seed(0)
    return CCRModel(default_shaped_config()).eval()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or "unknown CPU"


def describe_machine() -> str:
    """Date, CPU model, nproc, RAM, GPU (if any), Python / torch / transformers versions (two lines)."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return (
        f"date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; CPU {cpu_model()}, "
        f"nproc {os.cpu_count()}, RAM {ram:.0f} GiB; GPU {gpu}\n"
        f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
        f"torch threads {torch.get_num_threads()}"
    )


@dataclass(frozen=True)
class CpuCounters:
    """This process's CPU accounting (all threads): user and kernel seconds, minor page faults; subtract two
    snapshots for what happened between them."""

    user: float
    kernel: float
    minor_faults: int

    @classmethod
    def now(cls) -> CpuCounters:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return cls(usage.ru_utime, usage.ru_stime, usage.ru_minflt)

    def __sub__(self, earlier: CpuCounters) -> CpuCounters:
        return CpuCounters(self.user - earlier.user, self.kernel - earlier.kernel,
                           self.minor_faults - earlier.minor_faults)

    def __add__(self, other: CpuCounters) -> CpuCounters:
        return CpuCounters(self.user + other.user, self.kernel + other.kernel,
                           self.minor_faults + other.minor_faults)

    def describe(self, units: int, unit: str) -> str:
        """``"CPU 12.3 s (kernel 4.5%), 1,234 minor page faults per step"`` for ``units`` steps (images, ...)."""
        total = self.user + self.kernel
        share = 100 * self.kernel / total if total else 0.0
        return (f"CPU {total:.1f} s (user {self.user:.1f} s, kernel {self.kernel:.1f} s = {share:.1f}%), "
                f"{self.minor_faults / max(units, 1):,.0f} minor page faults per {unit}")


def allocator_line() -> str:
    """The allocator setting this process runs with (:func:`modeling_ccr.allocator.allocator_state`)."""
    state = allocator_state()
    return f"allocator: {state['allocator']}, {'tuned' if state['tuned'] else 'not tuned'} ({state['reason']})"


def peak_memory(device: str) -> str:
    """This process's peak resident memory (and the peak GPU memory on CUDA) so far."""
    peak = f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"
    if device.startswith("cuda"):
        peak += f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
    return peak
