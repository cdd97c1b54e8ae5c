#!/usr/bin/env bash
# test/sanitize.sh: every GPU test program under compute-sanitizer, as parallel jobs (`make sanitize` runs it).
# Jobs: each dev/<name> harness with --check (each version alone where the harness answers `--versions`),
# each case of each model test (test/test_*.cu binaries take a case index; `--cases` prints how many) on its
# own, and a short whole run of each trainer (synthetic task: training, validation, sampling, checkpoints; what
# test_train.sh runs at length), so that the host-side paths around the kernels are covered too. Many small jobs
# let the slow tools (racecheck, initcheck: 10-100x slower than memcheck, and bound by the CPU) spread over the
# machine's cores instead of running one program after another. racecheck and initcheck run with
# MATMUL_SIMPLE=1 and NO_CUDNN=1 (common/matmul.cuh and common/cudnn_ops.cuh say why): they check this
# project's kernels; memcheck runs the production path.
#
# usage: test/sanitize.sh [tool ...]      (default: memcheck racecheck initcheck)
# env:   SANITIZE_JOBS (parallel jobs, default: the number of CPUs), TEST_TIMEOUT (s per job, default 900),
#        TEST_ONLY (space-separated programs, as in run_tests.sh), COMPUTE_SANITIZER (the tool's path),
#        SANITIZE_LOGS (log directory, default build/sanitize), NO_GPU=1 (force the no-device path)
# A job passes when the tool reports nothing (its --error-exitcode) and the program passes (exit 0, no FAIL
# line). One line per job (PASS/FAIL/SKIP), logs in build/sanitize/<tool>/; the last line is `N passed, M failed`.

set -uo pipefail
cd "$(dirname "$0")/.."
source test/lib.sh   # have_gpu, selected

tools=("$@"); [ ${#tools[@]} -gt 0 ] || tools=(memcheck racecheck initcheck)
JOBS=${SANITIZE_JOBS:-$(nproc 2>/dev/null || echo 4)}
TEST_TIMEOUT=${TEST_TIMEOUT:-900}
CS=${COMPUTE_SANITIZER:-$(command -v compute-sanitizer 2>/dev/null || echo /usr/local/cuda/bin/compute-sanitizer)}
logdir=${SANITIZE_LOGS:-build/sanitize}

# the jobs: "program arg..." per line
list_jobs() {
    local src bin n c
    for src in test/test_*.cu dev/*.cu; do   # the model tests first: their cases are the slowest jobs
        [ -e "$src" ] || continue
        bin=${src%.cu}
        selected "$bin" || continue
        case "$bin" in
            dev/*) n=$("./$bin" --versions 2>/dev/null) || n=
                   if [[ "$n" =~ ^[0-9]+$ ]]; then for ((c = 1; c <= n; c++)); do echo "$bin $c --check"; done
                   else echo "$bin --check"; fi ;;
            *) n=$("./$bin" --cases 2>/dev/null) || n=
               if [[ "$n" =~ ^[0-9]+$ ]]; then for ((c = 0; c < n; c++)); do echo "$bin $c"; done
               else echo "$bin"; fi ;;
        esac
    done
    for bin in train_gla train_mamba; do   # @TOOL@: each tool's run writes its own directory
        selected "$bin" || continue
        echo "$bin --task synthetic -b 2 -t 64 -x 4 -v 2 --val-steps 1 -s 4 -g 8 -n 2 -o $logdir/@TOOL@/run_$bin"
    done
}

# run_job TOOL "program arg...": prints its one result line
run_job() {
    local tool=$1 job=$2 log rc t0=$SECONDS simple=0 f
    job=${job//@TOOL@/$tool}
    read -r -a argv <<<"$job"
    log="$logdir/$tool/$(tr ' /' '__' <<<"$job").log"
    if [ ! -x "${argv[0]}" ]; then echo "FAIL $tool $job: not built (run make)"; return; fi
    [ "$tool" = memcheck ] || simple=1
    MATMUL_SIMPLE=$simple NO_CUDNN=$simple timeout -k 10 "$TEST_TIMEOUT" \
        "$CS" --tool "$tool" --error-exitcode 99 --print-limit 20 "./${argv[0]}" "${argv[@]:1}" > "$log" 2>&1
    rc=$?
    f=$(grep -cE '^[[:space:]]*FAIL([[:space:]:]|$)' "$log")
    if [ "$rc" -eq 0 ] && [ "$f" -eq 0 ]; then
        echo "PASS $tool $job ($((SECONDS - t0)) s)"
    elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "FAIL $tool $job: timed out after ${TEST_TIMEOUT}s (log: $log)"
    else
        echo "FAIL $tool $job: exit $rc, $f FAIL lines; $(grep -m1 -E 'ERROR SUMMARY|RACECHECK SUMMARY|^=+ +[A-Z]' "$log") (log: $log)"
    fi
}
export -f run_job
export CS TEST_TIMEOUT logdir

mapfile -t jobs < <(list_jobs)
if ! have_gpu; then
    for tool in "${tools[@]}"; do for job in "${jobs[@]}"; do echo "SKIP $tool ${job//@TOOL@/$tool}: no CUDA device"; done; done
    echo "0 passed, 0 failed"
    exit 0
fi
if [ ! -x "$CS" ]; then echo "FAIL compute-sanitizer not found (set COMPUTE_SANITIZER)"; echo "0 passed, 1 failed"; exit 1; fi

out=$(mktemp "${TMPDIR:-/tmp}/sanitize.XXXXXX")
trap 'rm -f "$out"' EXIT
# one pool for every (tool, job) pair: a slow job of one tool does not hold the others back; a job's tools start
# together, slowest jobs first, so the pool does not end waiting on a long job started last
# (the trainers' runs start from empty directories: a trainer refuses one with an earlier run's checkpoints)
for tool in "${tools[@]}"; do mkdir -p "$logdir/$tool"; rm -rf "$logdir/$tool"/run_train_*; done
echo "=== compute-sanitizer --tool ${tools[*]}: ${#jobs[@]} jobs each, $JOBS at a time"
for job in "${jobs[@]}"; do for tool in "${tools[@]}"; do echo "$tool $job"; done; done |
    xargs -P "$JOBS" -I{} bash -c 'run_job ${0%% *} "${0#* }"' {} | tee "$out"
npass=$(grep -c '^PASS' "$out"); nfail=$(grep -c '^FAIL' "$out")
echo "$npass passed, $nfail failed"
[ "$nfail" -eq 0 ]
