"""Ending a ``torch.distributed`` process group without deadlocking at teardown.

Why this module exists: a gloo process group's C++ destructor joins its worker threads while the calling
thread holds Python's GIL. If a worker thread is at that moment destroying a finished work object that
still holds Python references (an all-gather queued by a DistributedDataParallel backward, a future with
a Python callback), it waits for the GIL, and the two threads wait on each other for ever (pytorch
issue 56297, "destructors that can block ... can deadlock"; still open). It happens when the group's last
reference goes while such objects are alive: a DDP model freed in a frame's clean-up after
``destroy_process_group()`` ran in a ``finally``, or an ``Accelerator`` and its prepared model freed at
interpreter exit.

The cure is an order of operations, in one place, :func:`end_process_group`: the caller drops its
references to everything that uses the group (DDP models, their optimisers, trainers, async work handles);
then a garbage collection frees what is only held in reference cycles while the group is still alive; a
barrier makes every process finish its collectives, so no work is pending anywhere; a second collection
frees what the barrier's completion released; and only then is the group destroyed. The barrier has a
timeout, so a process that never arrives turns into an error that names the ranks, not a hang.
"""

from __future__ import annotations

import datetime
import gc
import logging

import torch.distributed as dist

logger = logging.getLogger(__name__)

DEFAULT_BARRIER_TIMEOUT_S = 300.0


def end_process_group(barrier_timeout_s: float = DEFAULT_BARRIER_TIMEOUT_S) -> bool:
    """Destroy the default process group once nothing uses it any more; a no-op (False) without one.

    Call it at the end of a process's collective work, after ``del``-ing the caller's references to
    DistributedDataParallel models, optimisers of their parameters, trainers and pending work handles
    (references this function cannot see). Every process of the group must call it: it waits at a
    barrier for all of them, at most ``barrier_timeout_s`` seconds on gloo (``monitored_barrier``, which
    then raises a ``RuntimeError`` naming the ranks that did not arrive; the group is left alone, since
    destroying it with work in flight is what deadlocks). Returns True when a group was destroyed.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return False
    gc.collect()  # DDP reducers and work objects held only by reference cycles go while the group lives
    if dist.get_backend() == dist.Backend.GLOO:
        dist.monitored_barrier(timeout=datetime.timedelta(seconds=barrier_timeout_s))
    else:
        dist.barrier()
    gc.collect()
    dist.destroy_process_group()
    logger.debug("process group destroyed")
    return True
