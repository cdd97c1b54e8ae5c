# test/lib.sh — the shell helpers the test scripts share (sourced, not run): expect and check print one
# PASS/FAIL line, the format test/run_tests.sh counts; losses and wait_steps read a run's log.jsonl;
# train_data picks the data of the whole-run tests; have_gpu and selected are the runners' (run_tests.sh,
# sanitize.sh) device probe and program filter. The sourcing script sets $tmp (a scratch directory).

# have_gpu: a CUDA device is visible (NO_GPU=1 forces the no-device path)
have_gpu() {
    [ "${NO_GPU:-0}" = 1 ] && return 1
    command -v nvidia-smi >/dev/null 2>&1 || return 1
    local list   # captured first: with pipefail, `nvidia-smi | grep -q` can fail on SIGPIPE
    list=$(nvidia-smi -L 2>/dev/null) || return 1
    grep -q '^GPU ' <<<"$list"
}

# selected PROGRAM: PROGRAM is among $TEST_ONLY (space-separated), or TEST_ONLY is unset or empty
selected() { [ -z "${TEST_ONLY:-}" ] || [[ " $TEST_ONLY " == *" $1 "* ]]; }

# expect NAME PATTERN CMD...: CMD must fail cleanly (non-zero exit, not killed by a signal) with stderr
# matching the extended regex PATTERN
expect() {
    local name="$1" pat="$2"; shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ $rc -eq 0 ]; then echo "FAIL $name: exit 0, expected an error"; return; fi
    if [ $rc -gt 128 ]; then echo "FAIL $name: crashed (signal $((rc - 128)))"; return; fi
    if ! grep -qE -- "$pat" "$tmp/err"; then echo "FAIL $name: message does not match /$pat/: $(head -c 300 "$tmp/err")"; return; fi
    echo "PASS $name: $(head -n 1 "$tmp/err" | cut -c1-110)"
}

# check NAME STATUS WHY: PASS when STATUS is 0, else FAIL with WHY
check() {
    if [ "$2" -eq 0 ]; then echo "PASS $1"; else echo "FAIL $1: $3"; fi
}

# losses DIR: "step loss" lines of DIR/log.jsonl (training records only)
losses() { grep -o '"step":[0-9]*,"loss":[^,}]*' "$1/log.jsonl" | sed 's/"step":\([0-9]*\),"loss":\(.*\)/\1 \2/'; }

# wait_steps DIR N: waits until a running trainer has logged N training steps in DIR (at most 60 s)
wait_steps() { for _ in $(seq 600); do [ "$(losses "$1" 2>/dev/null | wc -l)" -ge "$2" ] && return 0; sleep 0.1; done; return 1; }

# train_data: tinyshakespeare shards for the whole-run tests (prepared from $TINYSHAKESPEARE or the
# workplace copy when missing), else the synthetic task. Sets the array data (trainer flags) and what.
train_data() {
    local text=${TINYSHAKESPEARE:-../shared/data/tinyshakespeare/input.txt}
    if ! ls data/tinyshakespeare/train_*.bin >/dev/null 2>&1 && [ -f "$text" ]; then
        TINYSHAKESPEARE="$text" bash data/prepare.sh >"$tmp/prep.log" 2>&1 || cat "$tmp/prep.log"
    fi
    if ls data/tinyshakespeare/train_*.bin >/dev/null 2>&1; then data=(); what="tinyshakespeare"
    else data=(--task synthetic); what="synthetic task"; fi
}
