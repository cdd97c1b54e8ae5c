#!/usr/bin/env bash
# load_run.sh — the long-run check of issue 9: trains one model for many steps on tinyshakespeare and
# reports whether host or device memory grows and whether the step time stays steady.
#   dev/load_run.sh gla   [steps] [extra trainer flags...]   (default: gla-125m, 2000 steps, B=16 T=1024)
#   dev/load_run.sh mamba [steps] [extra trainer flags...]   (default: mamba-130m)
# Host and device memory: the trainer's own per-step figures in log.jsonl (host_mib: resident set from
# /proc/self/statm; mem_gib: cudaMemGetInfo beyond the CUDA context), at step 100 and at the last step
# (the final checkpoint's host buffer comes after that record and is not counted). Step time: ms of
# every step after the first 100 (p10 / p50 / p90). Prints one summary line; no assertion:
# growth is reported, not judged, so the figure can go into the README with this command beside it.
set -uo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: dev/load_run.sh gla|mamba [steps] [flags...]}; shift
steps=${1:-2000}; [ $# -gt 0 ] && shift
case $model in gla) preset=gla-125m ;; mamba) preset=mamba-130m ;; *) echo "unknown model $model" >&2; exit 1 ;; esac
out=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/load_$model.XXXXXX")}
mkdir -p "$out"
./train_$model --model $preset -b 16 -t 1024 -x "$steps" -v 500 -s 0 -n 0 --log-every 250 -o "$out/run" "$@" \
    >"$out/train.txt" 2>&1 &
wait $!; rc=$?
[ $rc -ne 0 ] && { tail -n 20 "$out/train.txt"; echo "load run failed: exit $rc"; exit 1; }
rec() { grep '"loss"' "$out/run/log.jsonl" | grep -o "\"$1\":[^,}]*" | cut -d: -f2; }
ms=$(rec ms | tail -n +101 | sort -g)
n=$(echo "$ms" | wc -l)
pct() { echo "$ms" | awk -v p=$1 -v n=$n 'NR == int(p * (n - 1)) + 1'; }
dev_first=$(rec mem_gib | sed -n 101p); dev_last=$(rec mem_gib | tail -n 1)
host_first=$(rec host_mib | sed -n 101p); host_last=$(rec host_mib | tail -n 1)
loss_first=$(rec loss | head -n 1); loss_last=$(rec loss | tail -n 1)
printf '%s %s steps: loss %.3f -> %.3f | device %.3f -> %.3f GiB | host %.1f -> %.1f MiB (step 100 -> last) | step ms p10 %.2f p50 %.2f p90 %.2f (%d steps)\n' \
    "$preset" "$steps" "$loss_first" "$loss_last" "$dev_first" "$dev_last" "$host_first" "$host_last" \
    "$(pct 0.1)" "$(pct 0.5)" "$(pct 0.9)" "$n"
