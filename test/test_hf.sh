#!/usr/bin/env bash
# test_hf.sh — the trainers' Hugging Face paths end to end, on any machine (no GPU needed):
#   --export-hf on a checkpoint (written by test/test_hf mkckpt) exits 0 without a GPU and its export
#   imports back bit-exactly through common/hf.h with the reference layout (test/test_hf verify);
#   --init-hf reads and checks config.json + weights before the GPU is touched (run with the GPU hidden,
#   so on every machine a clean run ends at "no CUDA device"), and a mismatch names the field;
#   bad uses of the flags end with one error line; --load checks a checkpoint's kind, config and length
#   before the GPU too, and a run that does not resume refuses a directory with an earlier run's checkpoints.
set -uo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_hf.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

for bin in test/test_hf train_gla train_mamba; do
    [ -x "$bin" ] || { echo "FAIL $bin is not built (run make)"; exit 1; }
done

source test/lib.sh   # expect

# the model flags that describe test_hf mkckpt's tiny models
gla_flags=(--vocab 61 -D 64 -L 2 -H 1 --expand-k 0.5 --expand-v 1 --mlp 48 --tied 0)
mamba_flags=(--vocab 53 -D 16 -L 2 --d-inner 32 --d-state 4 --dt-rank 3 --conv 4 --tied 1)

for m in gla mamba; do
    bin=./train_$m
    ckpt="$tmp/ckpt_$m.bin"
    out="$tmp/hf_$m"
    ./test/test_hf mkckpt $m "$ckpt" || echo "FAIL $m: test_hf mkckpt"
    if CUDA_VISIBLE_DEVICES= $bin --export-hf "$out" -e "$ckpt" >"$tmp/export.txt" 2>&1 &&
       [ -s "$out/model.safetensors" ] && [ -s "$out/config.json" ]; then
        echo "PASS $m --export-hf without a GPU: $(head -n 1 "$tmp/export.txt" | cut -c1-100)"
    else
        echo "FAIL $m --export-hf: $(tail -n 3 "$tmp/export.txt")"
    fi
    ./test/test_hf verify $m "$ckpt" "$out" | sed "s/^\(PASS\|FAIL\) verify:/\1 $m verify:/"

    if [ $m = gla ]; then flags=("${gla_flags[@]}"); else flags=("${mamba_flags[@]}"); fi
    # a clean --init-hf passes every check, then stops where the GPU is needed
    expect "$m --init-hf checks config.json and weights before the GPU" "no CUDA device" \
        env CUDA_VISIBLE_DEVICES= $bin --init-hf "$out" --bench "${flags[@]}"
    expect "$m --init-hf with other model flags names the field" "config.json.*L=2 but this run gives L=3" \
        $bin --init-hf "$out" --bench "${flags[@]}" -L 3
    expect "$m --export-hf without -e" "--export-hf DIR -e CKPT" $bin --export-hf "$tmp/x"
    expect "$m --init-hf with --load" "excludes --load" $bin --init-hf "$out" -e "$ckpt"
    expect "$m --init-hf of a missing dir" "no_such_dir/config.json" $bin --init-hf "$tmp/no_such_dir" --bench "${flags[@]}"
    cp -r "$out" "$tmp/trunc_$m"; truncate -s -64 "$tmp/trunc_$m/model.safetensors"
    expect "$m --init-hf of a truncated model.safetensors" "trunc_$m/model.safetensors" \
        $bin --init-hf "$tmp/trunc_$m" --bench "${flags[@]}"
done
# a checkpoint whose config gives sizes outside the flags' bounds (or not integers) is refused by name
# before any size reaches int arithmetic
for bad in "gla D=1000000000000:D = 1000000000000 is not an integer in" "gla L=-3:L = -3 is not an integer" \
           "gla H=2.5:H = 2.5 is not an integer" "gla eps=1e300:eps = 1e.300 is not in .0, 1." \
           "mamba d_state=100000:d_state = 100000 is not an integer in \[1, 32\]" "mamba conv=9:conv = 9"; do
    m=${bad%% *}; rest=${bad#* }; field=${rest%%:*}; want=${rest#*:}
    ./test/test_hf mkckpt $m "$tmp/bad_$m.bin" "$field" || echo "FAIL $m: test_hf mkckpt $field"
    expect "$m --export-hf of a checkpoint with $field" "$want" ./train_$m --export-hf "$tmp/z" -e "$tmp/bad_$m.bin"
done
# --load checks a checkpoint's header against the flags before the GPU (test_hf mkckpt's files)
expect "train_gla --load of a Mamba checkpoint" "is a Mamba model .* builds a GLA model" ./train_gla --load "$tmp/ckpt_mamba.bin" --bench
expect "train_gla --load with other model flags names the field" "checkpoint is Vc=61 but this run gives Vc=32000" \
    ./train_gla --load "$tmp/ckpt_gla.bin" --bench
expect "train_gla --load with matching flags reaches the GPU" "no CUDA device" \
    env CUDA_VISIBLE_DEVICES= ./train_gla --load "$tmp/ckpt_gla.bin" --bench "${gla_flags[@]}"
head -c 1000 "$tmp/ckpt_mamba.bin" > "$tmp/short.bin"
expect "train_mamba --load of a truncated checkpoint" "truncated: 1000 bytes" ./train_mamba --load "$tmp/short.bin" --bench
# a run that does not resume refuses an output directory holding an earlier run's checkpoints
mkdir -p "$tmp/earlier"; cp "$tmp/ckpt_gla.bin" "$tmp/earlier/ckpt_00000042.bin"
expect "a fresh run into a directory with an earlier run's checkpoints" "holds 1 checkpoint.*ckpt_00000042.bin.*--resume 1" \
    ./train_gla --task synthetic -x 5 -o "$tmp/earlier"
expect "--resume 1 into it goes on to check the checkpoint against the flags" "ckpt_00000042.bin: checkpoint is Vc=61" \
    ./train_gla --task synthetic -x 5 -o "$tmp/earlier" --resume 1
expect "a fresh run into a new directory reaches the GPU" "no CUDA device" \
    env CUDA_VISIBLE_DEVICES= ./train_gla --task synthetic -x 5 -o "$tmp/later"
# the other model's checkpoint
expect "train_mamba --export-hf of a GLA checkpoint" "GLA model" ./train_mamba --export-hf "$tmp/y" -e "$tmp/ckpt_gla.bin"
expect "train_gla --init-hf of a Mamba export" "model_type\" is \"mamba\"" ./train_gla --init-hf "$tmp/hf_mamba" --bench
# captured first: under pipefail, `--help | grep -q` fails when grep quits early and the writer gets SIGPIPE
help_gla=$(./train_gla --help 2>&1); help_mamba=$(./train_mamba --help 2>&1)
if grep -q -- "--export-hf" <<<"$help_gla" && grep -q -- "--init-hf" <<<"$help_mamba"; then
    echo "PASS --help lists --export-hf and --init-hf"
else echo "FAIL --help does not list the HF flags"; fi
