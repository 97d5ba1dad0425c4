#!/usr/bin/env bash
# Runs every multi-process test of the suite N times in a row (default 30) and prints, per run, its outcome
# and wall time, then how many runs passed, failed and timed out. A run is one pytest process over all of
# them; one that outlives RUN_LIMIT_S (default 600 s) is killed (SIGABRT first, so Python prints every
# thread's stack) and counted as timed out. Each failed or timed-out run's output is kept in LOG_DIR
# (default: a new temporary folder, printed at the end; a LOG_DIR that holds files is refused).
#
#   bash scripts/stress_distributed.sh [N]
set -uo pipefail
cd "$(dirname "$0")/.."
runs="${1:-30}"
limit="${RUN_LIMIT_S:-600}"
log_dir="${LOG_DIR:-$(mktemp -d -t ccr-stress-XXXXXX)}"
if [ -e "$log_dir" ] && [ -n "$(ls -A "$log_dir" 2>/dev/null)" ]; then
    echo "stress: LOG_DIR $log_dir is not empty: give a new or empty folder (its files are never replaced)" >&2
    exit 2
fi
mkdir -p "$log_dir"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_EVALUATE_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONFAULTHANDLER=1
tests=(
    tests/losses/test_distributed_losses.py
    tests/evaluation/test_eval_distributed.py::test_sharded_ranks_equal_one_process
    tests/app/test_eval_cli.py::test_two_processes_give_the_single_process_report
    tests/app/index/test_gallery_index.py::test_torchrun_build_equals_single_process
    tests/app/test_train_command.py::test_two_process_training_ends_cleanly
    tests/test_hang_guards.py::test_workers_that_end_their_group_exit_cleanly
)
passed=0 failed=0 timed_out=0
echo "stress: ${#tests[@]} multi-process test groups, $runs runs, at most ${limit} s each; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for run in $(seq 1 "$runs"); do
    start=$(date +%s%N)
    HF_HOME="$(mktemp -d)" timeout --signal=ABRT --kill-after=20 "$limit" \
        python3 -m pytest -q -p no:cacheprovider "${tests[@]}" >"$log_dir/run-$run.log" 2>&1
    rc=$?
    wall_ms=$(( ($(date +%s%N) - start) / 1000000 ))
    summary=$(grep -E "^(=+ )?[0-9]+ (passed|failed)" "$log_dir/run-$run.log" | tail -1 | tr -d '=' | xargs)
    if [ "$rc" -eq 0 ]; then
        outcome="passed"; passed=$((passed + 1)); rm -f "$log_dir/run-$run.log"
    elif [ "$rc" -eq 124 ] || [ "$rc" -eq 134 ] || [ "$rc" -eq 137 ]; then
        outcome="TIMED OUT"; timed_out=$((timed_out + 1))
    else
        outcome="FAILED (exit $rc)"; failed=$((failed + 1))
    fi
    printf 'run %3d: %-16s %5d.%d s  %s\n' "$run" "$outcome" $((wall_ms / 1000)) $((wall_ms % 1000 / 100)) \
        "${summary:-no summary}"
done
echo "stress: $passed passed, $failed failed, $timed_out timed out of $runs runs; logs of the others in $log_dir"
[ "$passed" -eq "$runs" ]
