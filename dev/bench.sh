#!/usr/bin/env bash
# dev/bench.sh — whole-model benchmark: runs `train_gla --bench` and `train_mamba --bench` at the
# reference configs of ../shared/docs/targets.md (fla / mamba_ssm on one H200) and prints one table:
# config, tokens/s, ms/step, MFU, peak device memory, time to the first optimizer step, the SM clock under
# load (below), and the reference figures beside ours.
#   dev/bench.sh                      all reference configs
#   dev/bench.sh gla|mamba            one model's reference configs
#   dev/bench.sh custom MODEL ARGS..  any preset / B / T, e.g. dev/bench.sh custom gla --model gla-125m -b 8 -t 4096
# Extra env: BENCH_STEPS (timed steps, default 10), BENCH_WARMUP (default 3), BENCH_LOG (dir for raw logs).
set -uo pipefail
cd "$(dirname "$0")/.."
steps=${BENCH_STEPS:-10}
warm=${BENCH_WARMUP:-3}
logdir=${BENCH_LOG:-$(mktemp -d "${TMPDIR:-/tmp}/bench.XXXXXX")}
mkdir -p "$logdir"
rows=()

# The card's SM clock while it works, sampled by nvidia-smi (when there is one) every 100 ms during a row: the
# median over the samples that draw more than half the power limit. Machines of one kind differ by a few percent
# at the same binary because their power caps hold the clock at different levels (dev/README.md, whole-model
# section); this column shows it. "-" without nvidia-smi or without a loaded sample.
gpu=${CUDA_VISIBLE_DEVICES:-0}; gpu=${gpu%%,*}
smi_pid=
smi_start() {
    command -v nvidia-smi >/dev/null 2>&1 || return 0
    nvidia-smi -i "$gpu" --query-gpu=clocks.sm,power.draw,power.limit --format=csv,noheader,nounits -lms 100 >"$1" 2>/dev/null &
    smi_pid=$!
}
smi_stop() {   # smi_stop LOG: prints the loaded median clock (MHz) or -
    [ -n "$smi_pid" ] && { kill "$smi_pid" 2>/dev/null; wait "$smi_pid" 2>/dev/null; smi_pid=; }
    [ -s "$1" ] || { echo -; return; }
    awk -F', *' '$2 + 0 > 0.5 * $3 { print $1 + 0 }' "$1" | sort -n | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "-" }'
}

# run NAME REF_TOKS REF_MEM BIN ARGS...
run() {
    local name="$1" rtok="$2" rmem="$3" bin="$4"; shift 4
    local log="$logdir/$(echo "$name" | tr ' /=' '___').log"
    echo ">>> $bin --bench $* (log: $log)" >&2
    smi_start "$log.smi"
    "./$bin" --bench --bench-steps "$steps" --warmup-bench "$warm" "$@" >"$log" 2>&1
    local j mhz
    mhz=$(smi_stop "$log.smi")
    j=$(grep '^BENCH_JSON' "$log" | tail -n 1 | sed 's/^BENCH_JSON //')
    if [ -z "$j" ]; then
        rows+=("$(printf '%-34s | %s' "$name" "FAILED: $(grep -m1 -i error "$log" | cut -c1-80)")")
        return
    fi
    local tps ms mfu mem first
    tps=$(echo "$j" | sed 's/.*"tokens_per_s":\([0-9.]*\).*/\1/')
    ms=$(echo "$j" | sed 's/.*"ms_per_step":\([0-9.]*\).*/\1/')
    mfu=$(echo "$j" | sed 's/.*"mfu":\([-0-9.]*\).*/\1/')
    mem=$(echo "$j" | sed 's/.*"peak_mem_gib":\([0-9.]*\).*/\1/')
    first=$(echo "$j" | sed 's/.*"first_step_s":\([0-9.]*\).*/\1/')
    rows+=("$(printf '%-34s | %10.0f | %8.1f | %5.1f%% | %8.2f | %7.2f | %6s | %10s | %8s' "$name" "$tps" "$ms" \
        "$(awk -v m="$mfu" 'BEGIN{print 100*m}')" "$mem" "$first" "$mhz" "$rtok" "$rmem")")
}

gla_refs() {
    run "gla D1024 L24 H4 untied B16 T2048" 152260 36.13 train_gla --model gla-340m --tied 0 --vocab 32000 -b 16 -t 2048
    run "gla D2048 L24 H4 untied B4 T4096" "no-start" "-" train_gla --model gla-1.3b --tied 0 --vocab 32000 -b 4 -t 4096
    run "gla D768 L12 H4 B16 T2048" "-" "-" train_gla --model gla-125m --vocab 32000 -b 16 -t 2048
}
mamba_refs() {
    run "mamba D1024 L48 untied B16 T2048" 57053 36.95 train_mamba --model mamba-370m --tied 0 --vocab 32000 -b 16 -t 2048
    run "mamba D768 L24 untied B16 T2048" 149903 20.10 train_mamba --model mamba-130m --tied 0 --vocab 32000 -b 16 -t 2048
    run "mamba D2048 L48 untied B4 T4096" 25314 37.41 train_mamba --model mamba-1.4b --tied 0 --vocab 32000 -b 4 -t 4096
}
scaling() { # fixed 32768 tokens per step, T = 512, 2048, 8192
    local bin=$1; shift
    for bt in "64 512" "16 2048" "4 8192"; do
        set -- $bt
        run "${bin#train_} scaling B$1 T$2" "-" "-" "$bin" "${@:3}" $MODEL_ARGS -b "$1" -t "$2"
    done
}

case "${1:-all}" in
    gla) gla_refs; MODEL_ARGS="--model gla-340m --tied 0 --vocab 32000" scaling train_gla ;;
    mamba) mamba_refs; MODEL_ARGS="--model mamba-370m --tied 0 --vocab 32000" scaling train_mamba ;;
    custom) shift; m=$1; shift; run "$m custom: $*" "-" "-" "train_$m" "$@" ;;
    all) gla_refs; mamba_refs
         MODEL_ARGS="--model gla-340m --tied 0 --vocab 32000" scaling train_gla
         MODEL_ARGS="--model mamba-370m --tied 0 --vocab 32000" scaling train_mamba ;;
    *) echo "usage: $0 [all|gla|mamba|custom MODEL ARGS...]"; exit 2 ;;
esac

echo
printf '%-34s | %10s | %8s | %6s | %8s | %7s | %6s | %10s | %8s\n' config tokens/s ms/step MFU "mem GiB" "1st s" "SM MHz" \
    "ref tok/s" "ref GiB"
printf '%s\n' "-----------------------------------+------------+----------+--------+----------+---------+--------+------------+---------"
for r in "${rows[@]}"; do echo "$r"; done
echo "(reference: fla / mamba_ssm on one H200, ../shared/docs/targets.md; logs in $logdir)"
