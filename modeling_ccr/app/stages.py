"""Wall time and peak memory of a program's stages (``ccr main-job``, ``scripts/bench_main_job.py``).

Per stage, :class:`StageRecorder` measures
- the wall time (``time.perf_counter``; on CUDA after a synchronize at both ends);
- the process's peak resident memory (RSS) during the stage: on Linux the peak is reset at the stage's
  start by writing ``5`` to ``/proc/self/clear_refs`` and read as ``VmHWM`` from ``/proc/self/status`` at
  its end. Where that is not possible (another OS, no permission) the figure is the lifetime peak of
  ``resource.getrusage`` and is marked "since start" (``peak_rss_scope``), never passed off as the stage's;
- with CUDA in use, the peak memory allocated by torch on the current device during the stage
  (``torch.cuda.reset_peak_memory_stats`` at its start, ``torch.cuda.max_memory_allocated`` at its end).

Caveat: resetting the peak is process-wide. After a stage starts, ``VmHWM`` and
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (so ``scripts/bench_common.py``'s ``peak_memory``) tell the
peak since that stage began, not since the process started, for every reader in the process, and so does the
maximum RSS a parent reads when the process ends (``/usr/bin/time -v``);
:meth:`StageRecorder.overall_peak_rss_gib` keeps the process's peak across the resets. Memory of child
processes (none in the main job) is not counted. Stages do not nest.
"""

from __future__ import annotations

import re
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")
RESET_PEAK = "5"  # clear_refs: reset the peak RSS (VmHWM) to the current RSS
GIB = 2**30
STAGE = "stage"  # the peak_rss_scope of a peak reset at the stage's start
SINCE_START = "since start"  # the peak_rss_scope of the process's lifetime peak


@dataclass
class StageRecord:
    """One stage's figures: wall seconds, peak RSS in GiB over ``peak_rss_scope`` (``"stage"`` or
    ``"since start"``) and, with CUDA, the peak memory torch allocated in GiB (else None)."""

    stage: str
    wall_s: float
    peak_rss_gib: float
    peak_rss_scope: str
    peak_cuda_gib: float | None = None

    def as_json(self) -> dict:
        """``{"stage", "wall_s", "peak_rss_gib", "peak_rss_scope"[, "peak_cuda_gib"]}``, figures rounded."""
        record = asdict(self)
        record["wall_s"], record["peak_rss_gib"] = round(self.wall_s, 2), round(self.peak_rss_gib, 3)
        if self.peak_cuda_gib is None:
            del record["peak_cuda_gib"]
        else:
            record["peak_cuda_gib"] = round(self.peak_cuda_gib, 3)
        return record


class StageRecorder:
    """Records :class:`StageRecord` s in order; its clock starts when it is created (the total of
    :meth:`table`).

        recorder = StageRecorder()
        with recorder.stage("train"):
            ...
        print(recorder.table())
    """

    def __init__(self):
        self.records: list[StageRecord] = []
        self.started = time.perf_counter()
        self.cuda = torch.cuda.is_available()
        self._overall_peak_gib = 0.0  # the largest peak read before a reset
        self._open: str | None = None  # the stage under way

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Measures the code inside the ``with`` block as the stage ``name`` (appended on success and on error).

        Raises ValueError inside another stage: its peak would be reset midway.
        """
        if self._open is not None:
            raise ValueError(f"stage {name!r} started inside stage {self._open!r}: stages do not nest, "
                             "end the first before starting the next")
        scope = self._reset_peak()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self._open = name
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.cuda:
                torch.cuda.synchronize()
            wall = time.perf_counter() - start
            peak = _peak_rss_gib()
            self._overall_peak_gib = max(self._overall_peak_gib, peak)
            if scope == SINCE_START:  # an earlier stage's reset may have lowered what getrusage tells
                peak = self._overall_peak_gib
            cuda_peak = torch.cuda.max_memory_allocated() / GIB if self.cuda else None
            self.records.append(StageRecord(name, wall, peak, scope, cuda_peak))
            self._open = None

    def wall_s(self, prefix: str) -> float:
        """The wall seconds of the recorded stages whose names start with ``prefix``: one stage's name, or the
        common start of a group's names (``"train: "``)."""
        return sum(record.wall_s for record in self.records if record.stage.startswith(prefix))

    def overall_peak_rss_gib(self) -> float:
        """The process's peak RSS in GiB since it started, across the resets of the stages."""
        return max(self._overall_peak_gib, _peak_rss_gib())

    def as_json(self) -> list[dict]:
        """The stages in order, as :meth:`StageRecord.as_json` dicts (summary.json's ``"stages"``)."""
        return [record.as_json() for record in self.records]

    def table(self) -> str:
        """A Markdown table: stage | wall s | share of total | peak RSS GiB (| peak CUDA GiB), one row per
        stage, a row for the time outside the stages, a total row (wall time since the recorder was
        created, the process's overall peak RSS), and a note on any peak that is "since start"."""
        total = time.perf_counter() - self.started
        cuda = any(record.peak_cuda_gib is not None for record in self.records)
        header = "| stage | wall s | share of total | peak RSS GiB |" + (" peak CUDA GiB |" if cuda else "")
        lines = [header, "|---|---:|---:|---:|" + ("---:|" if cuda else "")]
        for record in self.records:
            marker = "" if record.peak_rss_scope == STAGE else " *"
            cells = [record.stage, f"{record.wall_s:.1f}", _share(record.wall_s, total),
                     f"{record.peak_rss_gib:.2f}{marker}"]
            if cuda:
                cells.append("" if record.peak_cuda_gib is None else f"{record.peak_cuda_gib:.2f}")
            lines.append("| " + " | ".join(cells) + " |")
        outside = max(total - sum(record.wall_s for record in self.records), 0.0)
        lines.append(f"| outside the stages | {outside:.1f} | {_share(outside, total)} | |" + (" |" if cuda else ""))
        lines.append(f"| total | {total:.1f} | 100% | {self.overall_peak_rss_gib():.2f} (process peak) |"
                     + (" |" if cuda else ""))
        if any(record.peak_rss_scope != STAGE for record in self.records):
            lines.append("")
            lines.append("\\* peak RSS since the process started: the peak could not be reset at the stage's "
                         "start here (no writable /proc/self/clear_refs)")
        return "\n".join(lines)

    def _reset_peak(self) -> str:
        """Resets the process's peak RSS to its current RSS where possible; returns the peak's scope."""
        self._overall_peak_gib = max(self._overall_peak_gib, _peak_rss_gib())
        try:
            CLEAR_REFS.write_text(RESET_PEAK)
            _read_vm_hwm_kib()
        except (OSError, ValueError):
            return SINCE_START
        return STAGE


def _peak_rss_gib() -> float:
    """The peak RSS in GiB: ``VmHWM`` where /proc has it, else ``getrusage``'s lifetime peak."""
    try:
        return _read_vm_hwm_kib() / 2**20
    except (OSError, ValueError):
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return maxrss / GIB if sys.platform == "darwin" else maxrss / 2**20  # bytes on macOS, KiB elsewhere


def _read_vm_hwm_kib() -> int:
    """``VmHWM`` of /proc/self/status in KiB; ValueError when the line is missing."""
    match = re.search(r"^VmHWM:\s+(\d+) kB", STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise ValueError(f"{STATUS} has no VmHWM line")
    return int(match.group(1))


def _share(seconds: float, total: float) -> str:
    return f"{100 * seconds / total:.0f}%" if total > 0 else "n/a"
