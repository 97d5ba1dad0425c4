"""Keep freed tensor memory in the process for reuse instead of handing it back to the kernel (glibc malloc).

Why: with glibc's defaults a buffer above the mmap threshold (128 kB, raised dynamically to at most
32 MB) is mapped afresh at each allocation and unmapped when freed, and free memory at the top of the
heap is trimmed back to the kernel. A deep-learning step allocates and frees many buffers of tens to
hundreds of MB, so each re-use pays the kernel for fresh, zeroed pages: on a 2-core VM a quarter of
training's CPU time and more of inference's went to page faults. Raising both thresholds to the largest
value ``mallopt`` takes (about 2 GiB) makes freed buffers come back from the heap without a fault, as a
caching allocator would (the PyTorch CPU performance guide recommends one for the same reason). It only
removes kernel work, so it cannot slow a machine where faults are cheap; the price is that up to 2 GiB
of freed memory at the top of the heap stays mapped while the process lives.

:func:`tune_allocator` is called where each of the project's processes starts (the ``ccr`` command, the
Space apps, the benchmark and study scripts); importing the library changes nothing. Set
``CCR_MALLOC_TUNING=0`` to keep glibc's defaults. It also steps aside when the environment already chose:
a ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` / ``GLIBC_TUNABLES`` setting, or another
allocator in ``LD_PRELOAD`` (tcmalloc, jemalloc, mimalloc). :func:`allocator_state` says what this process
runs with; training and evaluation records carry it.
"""

from __future__ import annotations

import ctypes
import os

SWITCH = "CCR_MALLOC_TUNING"
M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
THRESHOLD = 2**31 - 1  # mallopt takes an int: the largest value, about 2 GiB
_ENVIRONMENT_CHOICES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")
_PRELOADED_ALLOCATORS = ("tcmalloc", "jemalloc", "mimalloc")

_state: dict[str, object] | None = None


def tune_allocator() -> dict[str, object]:
    """Raise glibc's mmap and trim thresholds for this process, once; returns :func:`allocator_state`.

    Does nothing (and says why in the state) with ``CCR_MALLOC_TUNING=0``, outside glibc, or when the
    environment already set the allocator up. Call it early, before the first large allocation: buffers
    mapped before it keep their mapping.
    """
    global _state
    if _state is None:
        _state = _apply()
    return dict(_state)


def allocator_state() -> dict[str, object]:
    """What this process's allocator runs with: ``{"allocator", "tuned", "mmap_threshold", "trim_threshold",
    "reason"}`` (thresholds in bytes when tuned, else None)."""
    if _state is not None:
        return dict(_state)
    return _record(False, "not requested in this process (tune_allocator was not called)")


def _apply() -> dict[str, object]:
    if os.environ.get(SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return _record(False, f"switched off ({SWITCH}={os.environ[SWITCH]})")
    preload = os.environ.get("LD_PRELOAD", "")
    chosen = [name for name in _PRELOADED_ALLOCATORS if name in preload]
    if chosen:
        return _record(False, f"another allocator is preloaded ({chosen[0]} in LD_PRELOAD)", chosen[0])
    set_here = [name for name in _ENVIRONMENT_CHOICES if name in os.environ]
    if set_here:
        return _record(False, f"left as the environment set it ({', '.join(set_here)})")
    try:
        libc_version = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        libc_version = ""
    if not libc_version.startswith("glibc"):
        return _record(False, "not glibc: nothing to tune", "system")
    libc = ctypes.CDLL(None)
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    if not (libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD) and libc.mallopt(M_TRIM_THRESHOLD, THRESHOLD)):
        return _record(False, f"{libc_version} refused the mallopt thresholds")
    return _record(True, f"{libc_version}: mmap and trim thresholds raised", mmap=THRESHOLD, trim=THRESHOLD)


def _record(tuned: bool, reason: str, allocator: str = "glibc", mmap: int | None = None,
            trim: int | None = None) -> dict[str, object]:
    return {"allocator": allocator, "tuned": tuned, "mmap_threshold": mmap, "trim_threshold": trim,
            "reason": reason}
