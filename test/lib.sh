# test/lib.sh — the shell helpers the test scripts share (sourced, not run). Each prints one PASS/FAIL
# line, the format test/run_tests.sh counts. The sourcing script sets $tmp (a scratch directory).

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
