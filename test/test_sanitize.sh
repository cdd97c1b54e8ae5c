#!/usr/bin/env bash
# test_sanitize.sh — test/sanitize.sh's own machinery, on any machine: with a stand-in for compute-sanitizer
# and for nvidia-smi it must list one job per dev harness (per version where it answers `--versions`) and one
# per model-test case (from `--cases`) and a short run of each trainer, count
# a tool's report or a program's FAIL line as a failure, pass the environment racecheck and initcheck need,
# and end with `N passed, M failed`; without a GPU it skips every job.
set -uo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_sanitize.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
source test/lib.sh   # check

mkdir -p "$tmp/bin"
printf '#!/bin/sh\necho "GPU 0: stand-in"\n' > "$tmp/bin/nvidia-smi"
# the stand-in tool: records its environment and arguments; reports an error for $FAKE_FAIL, a FAIL line for
# $FAKE_PROGFAIL, else passes
cat > "$tmp/bin/cs" <<'EOF'
#!/bin/bash
shift 6   # --tool T --error-exitcode 99 --print-limit 20
echo "$MATMUL_SIMPLE $NO_CUDNN $*" >> "$FAKE_REC"
[ "$*" = "$FAKE_FAIL" ] && { echo "========= ERROR SUMMARY: 1 error"; exit 99; }
[ "$*" = "$FAKE_PROGFAIL" ] && { echo "FAIL something"; exit 1; }
echo "PASS stand-in"
EOF
chmod +x "$tmp/bin/nvidia-smi" "$tmp/bin/cs"
ncases=$(./test/test_gla --cases)
check "test_gla --cases prints a count without a GPU" "$([[ "$ncases" =~ ^[0-9]+$ ]] && [ "$ncases" -ge 1 ]; echo $?)" "got '$ncases'"
nver=$(./dev/swiglu --versions)
check "dev/swiglu --versions prints a count without a GPU" "$([[ "$nver" =~ ^[0-9]+$ ]] && [ "$nver" -ge 1 ]; echo $?)" "got '$nver'"

export SANITIZE_LOGS="$tmp/logs" FAKE_REC="$tmp/rec" FAKE_FAIL="./test/test_gla 1" FAKE_PROGFAIL="./dev/adamw --check"
PATH="$tmp/bin:$PATH" COMPUTE_SANITIZER="$tmp/bin/cs" TEST_ONLY="dev/adamw dev/swiglu test/test_gla" SANITIZE_JOBS=3 \
    bash test/sanitize.sh racecheck > "$tmp/out" 2>&1
rc=$?
last=$(tail -n 1 "$tmp/out")
njobs=$((ncases + nver + 1))
check "sanitize: one job per harness version and per model-test case" \
    "$([ "$(wc -l < "$tmp/rec")" -eq $njobs ] && grep -q "^1 1 ./dev/swiglu $nver --check$" "$tmp/rec"; echo $?)" \
    "$(wc -l < "$tmp/rec") jobs for $ncases cases + $nver swiglu versions + 1 harness"
check "sanitize: a tool report and a FAIL line are failures, the rest passes" \
    "$([ "$last" = "$((njobs - 2)) passed, 2 failed" ] && [ $rc -ne 0 ]; echo $?)" "last line '$last', exit $rc"
check "sanitize: the failing job is named with the tool's summary" \
    "$(grep -q '^FAIL racecheck test/test_gla 1: exit 99.*ERROR SUMMARY' "$tmp/out"; echo $?)" "$(grep '^FAIL' "$tmp/out" | head -n 2)"
check "sanitize: racecheck runs with MATMUL_SIMPLE=1 NO_CUDNN=1" "$([ "$(grep -vc '^1 1 ' "$tmp/rec")" = 0 ]; echo $?)" \
    "$(head -n 2 "$tmp/rec")"
: > "$tmp/rec"
PATH="$tmp/bin:$PATH" COMPUTE_SANITIZER="$tmp/bin/cs" TEST_ONLY="dev/adamw" FAKE_PROGFAIL= bash test/sanitize.sh memcheck > "$tmp/out" 2>&1
check "sanitize: memcheck runs the production path (MATMUL_SIMPLE=0)" \
    "$(grep -q '^0 0 ./dev/adamw --check' "$tmp/rec" && [ "$(tail -n 1 "$tmp/out")" = "1 passed, 0 failed" ]; echo $?)" \
    "$(cat "$tmp/rec") / $(tail -n 1 "$tmp/out")"
: > "$tmp/rec"
PATH="$tmp/bin:$PATH" COMPUTE_SANITIZER="$tmp/bin/cs" TEST_ONLY="dev/adamw test/test_gla" FAKE_PROGFAIL= SANITIZE_JOBS=1 \
    bash test/sanitize.sh memcheck racecheck > "$tmp/out" 2>&1
check "sanitize: the model-test cases start first, each under every tool in turn" \
    "$([ "$(head -n 2 "$tmp/rec" | cut -d' ' -f1-4)" = "$(printf '0 0 ./test/test_gla 0\n1 1 ./test/test_gla 0')" ] &&
       [ "$(tail -n 1 "$tmp/rec" | cut -d' ' -f3)" = ./dev/adamw ]; echo $?)" "$(head -n 3 "$tmp/rec")"
: > "$tmp/rec"
PATH="$tmp/bin:$PATH" COMPUTE_SANITIZER="$tmp/bin/cs" TEST_ONLY="train_gla" FAKE_PROGFAIL= \
    bash test/sanitize.sh racecheck memcheck > "$tmp/out" 2>&1
check "sanitize: a short trainer run per tool, each into its own directory" \
    "$([ "$(wc -l < "$tmp/rec")" -eq 2 ] &&
       grep -q "^1 1 ./train_gla --task synthetic .* -o $tmp/logs/racecheck/run_train_gla\$" "$tmp/rec" &&
       grep -q "^0 0 ./train_gla --task synthetic .* -o $tmp/logs/memcheck/run_train_gla\$" "$tmp/rec" &&
       [ "$(tail -n 1 "$tmp/out")" = "2 passed, 0 failed" ]; echo $?)" "$(cat "$tmp/rec") / $(tail -n 1 "$tmp/out")"
NO_GPU=1 TEST_ONLY="dev/adamw dev/swiglu test/test_gla" bash test/sanitize.sh > "$tmp/out" 2>&1
check "sanitize without a GPU skips every job" \
    "$([ "$(grep -c '^SKIP' "$tmp/out")" -eq $((3 * njobs)) ] && [ "$(tail -n 1 "$tmp/out")" = "0 passed, 0 failed" ]; echo $?)" \
    "$(tail -n 2 "$tmp/out")"
