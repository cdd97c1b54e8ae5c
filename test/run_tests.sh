#!/usr/bin/env bash
# test/run_tests.sh: runs every test program of the repo and counts checks. It owns the counting rule
# (the one `make test` reports):
#   - each `PASS ...` line a program prints is one pass, each `FAIL ...` line one failure;
#   - a program that exits non-zero without printing FAIL is one failure (crash, die(), timeout);
#   - a program that prints neither and exits 0 is one pass.
# CPU: test/test_*.c binaries, data/check*.sh, and that every train_*.cu built. GPU (only when a CUDA device is usable): every dev/<name>
# harness with --check, test/test_*.cu binaries, and the test/test_*.sh scripts whose header says `# gpus: N`
# (run when the machine has N GPUs: test_train.sh 1, test_multigpu.sh 2). Without a device each GPU test
# prints `SKIP <name>: no CUDA device` and counts as neither. Optional fuzzing: test/fuzz_* binaries
# (built by make when clang's libFuzzer works) run FUZZ_SECONDS each (0 = skip; default 0, .ci/run
# uses 20) from libFuzzer seed FUZZ_SEED (unset: a random seed; .ci/run fixes it so that CI's verdict can
# be reproduced; explore with other seeds and longer times by hand). The last line is always `N passed, M failed`; exit status is non-zero iff M > 0.
#
# usage: test/run_tests.sh [--cpu-only] [--gpu-only] [--no-train] [--cpu-bindir DIR]
# env:   TEST_TIMEOUT (s per program, default 900), FUZZ_SECONDS, FUZZ_SEED, NO_GPU=1 (force the no-device path),
#        GPU_WRAPPER (command prefix for GPU programs, e.g. compute-sanitizer; make sanitize uses test/sanitize.sh),
#        TEST_ONLY (space-separated GPU programs to run, e.g. "dev/conv1d test/test_gla"; unset: all)

set -uo pipefail
cd "$(dirname "$0")/.."
source test/lib.sh   # have_gpu, selected

run_cpu=1; run_gpu=1; run_train=1; cpu_bindir=test
while [ $# -gt 0 ]; do
    case "$1" in
        --cpu-only) run_gpu=0 ;;
        --gpu-only) run_cpu=0 ;;
        --no-train) run_train=0 ;;
        --cpu-bindir) cpu_bindir="$2"; shift ;;
        *) echo "usage: $0 [--cpu-only] [--gpu-only] [--no-train] [--cpu-bindir DIR]"; exit 2 ;;
    esac
    shift
done

TEST_TIMEOUT=${TEST_TIMEOUT:-900}
FUZZ_SECONDS=${FUZZ_SECONDS:-0}
GPU_WRAPPER=${GPU_WRAPPER:-}
npass=0; nfail=0; nskip=0
failures=()
tmp=$(mktemp -d "${TMPDIR:-/tmp}/run_tests.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# run_one NAME CMD...: runs CMD, streams its output, counts its PASS/FAIL lines
run_one() {
    local name="$1"; shift
    local log="$tmp/out.txt" rc p f t0=$SECONDS
    echo "=== $name"
    if command -v timeout >/dev/null 2>&1; then
        timeout -k 10 "$TEST_TIMEOUT" "$@" 2>&1 | tee "$log"; rc=${PIPESTATUS[0]}
    else
        "$@" 2>&1 | tee "$log"; rc=${PIPESTATUS[0]}
    fi
    p=$(grep -cE '^[[:space:]]*PASS([[:space:]:]|$)' "$log")
    f=$(grep -cE '^[[:space:]]*FAIL([[:space:]:]|$)' "$log")
    while IFS= read -r line; do failures+=("$name: ${line#"${line%%[![:space:]]*}"}"); done \
        < <(grep -E '^[[:space:]]*FAIL([[:space:]:]|$)' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            failures+=("$name: timed out after ${TEST_TIMEOUT}s")
        else
            failures+=("$name: exit status $rc without a FAIL line")
        fi
    fi
    if [ "$rc" -eq 0 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then p=1; fi
    npass=$((npass + p)); nfail=$((nfail + f))
    echo "--- $name: $p passed, $f failed (exit $rc, $((SECONDS - t0)) s)"
}

# missing NAME: a test whose source exists but whose binary does not (it failed to build)
missing() {
    echo "FAIL $1: not built (run make; see the compiler output above)"
    failures+=("$1: not built"); nfail=$((nfail + 1))
}

skip() { echo "SKIP $1: $2"; nskip=$((nskip + 1)); }

# gpus_needed SCRIPT: the N of a `# gpus: N` header line (0 without one: a CPU script)
gpus_needed() { local n; n=$(sed -n 's/^# gpus: \([0-9][0-9]*\)$/\1/p' "$1" | head -n 1); echo "${n:-0}"; }
gpu_count() { nvidia-smi -L 2>/dev/null | grep -c '^GPU '; }


# ---------------------------------------------------------------------------------------------------
if [ "$run_cpu" = 1 ]; then
    for src in test/test_*.c; do
        [ -e "$src" ] || continue
        name=$(basename "${src%.c}"); bin="$cpu_bindir/$name"
        if [ -x "$bin" ]; then run_one "$name" "$bin"; else missing "$name"; fi
    done
    # the trainers have no CPU test, but a trainer that no longer compiles is a failure
    for src in train_*.cu; do
        [ "$cpu_bindir" = test ] || break   # (make asan builds only the tests)
        [ -e "$src" ] || continue
        if [ -x "${src%.cu}" ]; then echo "PASS build ${src%.cu}"; npass=$((npass + 1)); else missing "${src%.cu}"; fi
    done
    for script in test/test_*.sh; do   # CPU scripts (GPU scripts run below)
        [ -e "$script" ] || continue
        [ "$(gpus_needed "$script")" -gt 0 ] && continue
        run_one "$(basename "$script")" bash "$script"
    done
    for script in data/check*.sh; do
        [ -e "$script" ] || continue
        run_one "$(basename "$script")" bash "$script"
    done
fi

if [ "$run_gpu" = 1 ]; then
    gpu_tests=()
    for src in dev/*.cu; do [ -e "$src" ] && gpu_tests+=("${src%.cu}"); done
    for src in test/test_*.cu; do [ -e "$src" ] && gpu_tests+=("${src%.cu}"); done
    if have_gpu; then
        nvidia-smi -L 2>/dev/null
        for bin in "${gpu_tests[@]}"; do
            selected "$bin" || continue
            args=(); case "$bin" in dev/*) args=(--check) ;; esac
            if [ -x "$bin" ]; then
                # shellcheck disable=SC2086  # GPU_WRAPPER is a command prefix, split on purpose
                run_one "$bin" $GPU_WRAPPER "./$bin" "${args[@]}"
            else
                missing "$bin"
            fi
        done
    else
        for bin in "${gpu_tests[@]}"; do skip "$bin" "no CUDA device"; done
    fi
    for script in test/test_*.sh; do   # whole-run GPU scripts
        [ "$run_train" = 1 ] && [ -e "$script" ] || continue
        need=$(gpus_needed "$script"); name=$(basename "$script")
        [ "$need" -gt 0 ] || continue
        if ! have_gpu; then skip "$name" "no CUDA device"
        elif [ "$(gpu_count)" -lt "$need" ]; then skip "$name" "needs $need GPUs, this machine has $(gpu_count)"
        else run_one "$name" bash "$script"; fi
    done
fi

if [ "$run_cpu" = 1 ] && [ "$FUZZ_SECONDS" != 0 ]; then
    for src in test/fuzz_*.c; do
        [ -e "$src" ] || continue
        bin="${src%.c}"; name=$(basename "$bin")
        if [ ! -x "$bin" ]; then skip "$name" "not built (clang -fsanitize=fuzzer unavailable?)"; continue; fi
        corpus="$tmp/corpus_$name"; art="$tmp/artifacts_$name"; mkdir -p "$corpus" "$art" build/fuzz-artifacts
        seeds="test/corpus/$name"; [ -d "$seeds" ] || seeds=
        before=$nfail
        run_one "$name" "./$bin" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
            ${FUZZ_SEED:+-seed="$FUZZ_SEED"} -artifact_prefix="$art/" -print_final_stats=0 "$corpus" ${seeds:+"$seeds"}
        # A finding on a CI machine is lost with the machine: print each input so the log alone reproduces it
        # (base64 -d > crash; ./test/fuzz_x crash).
        for a in "$art"/*; do
            [ -e "$a" ] || continue
            cp "$a" build/fuzz-artifacts/
            echo "fuzz input $(basename "$a") ($(wc -c < "$a") bytes), base64:"; base64 "$a" | head -c 20000; echo
        done
        [ "$nfail" -gt "$before" ] && echo "reproduce: ./$bin build/fuzz-artifacts/<input above>"
    done
fi

# ---------------------------------------------------------------------------------------------------
echo
if [ "${#failures[@]}" -gt 0 ]; then
    echo "failures:"
    for f in "${failures[@]}"; do echo "  $f"; done
fi
[ "$nskip" -gt 0 ] && echo "($nskip skipped)"
echo "$npass passed, $nfail failed"
[ "$nfail" -eq 0 ]
