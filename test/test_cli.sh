#!/usr/bin/env bash
# test_cli.sh — bad input to the trainers, on any machine (no GPU needed): every case must end with one
# "error: ..." line naming the flag or file, a non-zero exit, and no crash; and it must be caught before
# the GPU is touched (so on a CPU-only machine the message is the input error, not "no CUDA device").
# Also: --help works without a GPU and lists every flag of both tables; bad launcher variables (RANK,
# WORLD_SIZE) and MQAR configurations are refused the same way; shapes the kernels cannot run are refused
# with the reason, and every preset at the benchmark shapes passes all of these checks.
set -uo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_cli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# a small tokenizer and shards from generated text
for i in $(seq 1 400); do echo "line $i: the quick brown fox jumps over the lazy dog $((i * 7919 % 1000))"; done >"$tmp/text.txt"
./data/bpe train -o "$tmp/tok.bin" --vocab 300 "$tmp/text.txt" >/dev/null 2>&1 || echo "FAIL setup: data/bpe train"
mkdir -p "$tmp/data"; ./data/bpe encode -t "$tmp/tok.bin" -o "$tmp/data" --val-fraction 0.1 "$tmp/text.txt" >/dev/null 2>&1 || echo "FAIL setup: data/bpe encode"
train=$(ls "$tmp"/data/train_*.bin | head -n 1)

source test/lib.sh   # expect

for m in gla mamba; do
    bin=./train_$m
    d=(-i "$tmp/data/train_*.bin" -j "$tmp/data/val_*.bin" --tokenizer "$tmp/tok.bin" -b 1 -t 64)
    if $bin --help >"$tmp/help" 2>&1 && grep -q -- "--total-batch" "$tmp/help" && grep -q -- "--model" "$tmp/help"; then
        echo "PASS $m --help works without a GPU and lists common and model flags"
    else echo "FAIL $m --help"; fi
    expect "$m unknown flag" "unknown option '--bogus'" $bin --bogus 1
    expect "$m non-numeric value" "--batch" $bin -b abc
    expect "$m zero batch" "--batch.*range" $bin -b 0
    expect "$m negative lr" "--lr.*range" $bin -l -1
    expect "$m missing value" "--seq" $bin -t
    expect "$m bad choice" "cosine" $bin --schedule bogus
    expect "$m unknown preset" "unknown preset" $bin --model bogus "${d[@]}"
    expect "$m total batch not a multiple" "total-batch" $bin -b 4 -t 64 -d 1000 "${d[@]}"
    expect "$m no shards" "no training shards match" $bin -i "$tmp/nothing_*.bin"
    expect "$m vocab too small" "smaller than the data" $bin --vocab 100 "${d[@]}"
    expect "$m missing checkpoint" "no such file" $bin --load "$tmp/none.bin" "${d[@]}"
    cp "$train" "$tmp/trunc_000.bin"; truncate -s -100 "$tmp/trunc_000.bin"
    expect "$m truncated shard" "trunc_000.bin" $bin -i "$tmp/trunc_*.bin" --tokenizer "$tmp/tok.bin" -j none
    cp "$train" "$tmp/magic_000.bin"; printf '\x01\x02\x03\x04' | dd of="$tmp/magic_000.bin" conv=notrunc 2>/dev/null
    expect "$m wrong magic" "magic_000.bin" $bin -i "$tmp/magic_*.bin" --tokenizer "$tmp/tok.bin" -j none
    head -c 1500 "$train" >"$tmp/short_000.bin"
    expect "$m shard shorter than a sequence" "short_000.bin" $bin -i "$tmp/short_*.bin" --tokenizer "$tmp/tok.bin" -j none -t 4096
    printf 'garbage' >"$tmp/badtok.bin"
    expect "$m unreadable tokenizer" "badtok.bin" $bin -i "$tmp/data/train_*.bin" --tokenizer "$tmp/badtok.bin"
    expect "$m --sample missing checkpoint" "no such file" $bin --sample "$tmp/none.bin" --tokenizer "$tmp/tok.bin"
    expect "$m --sample without tokenizer" "needs the tokenizer" $bin --sample "$train" --tokenizer "$tmp/none.bin"
    expect "$m --sample on a file that is not a checkpoint" "not a checkpoint" $bin --sample "$train" --tokenizer "$tmp/tok.bin"
    # launcher variables (common/dist.h): refused before any rendezvous or GPU
    expect "$m RANK without WORLD_SIZE" "RANK is set but WORLD_SIZE is not" env RANK=1 $bin "${d[@]}"
    expect "$m RANK not below WORLD_SIZE" "RANK=2 is not below WORLD_SIZE=2" env RANK=2 WORLD_SIZE=2 $bin "${d[@]}"
    expect "$m non-numeric WORLD_SIZE" "WORLD_SIZE=two is not an integer" env RANK=0 WORLD_SIZE=two $bin "${d[@]}"
    [ "$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')" -lt 4 ] &&
        expect "$m --gpus beyond the devices" "--gpus 4, but this machine shows" $bin --gpus 4 "${d[@]}"
    expect "$m --gpus disagrees with the launcher" "--gpus 2, but the launcher" env RANK=0 WORLD_SIZE=3 $bin --gpus 2 "${d[@]}"
    expect "$m --sample on several ranks" "one process" env RANK=0 WORLD_SIZE=2 $bin --sample "$train" --tokenizer "$tmp/tok.bin"
    expect "$m total batch not a multiple of B*T*world" "B\*T\*world = 1\*64\*2" env RANK=0 WORLD_SIZE=2 $bin -d 64 "${d[@]}"
    expect "$m B*T beyond an int" "tokens per micro-batch is more than 2\^31 - 2\^24" $bin -b 65536 -t 65536 --bench
    # MQAR task configuration (common/mqar.h)
    expect "$m MQAR pairs do not fit in T" "--task mqar" $bin --task mqar -b 1 -t 64 --mqar-pairs 40
    expect "$m MQAR vocabulary too small" "--task mqar" $bin --task mqar -b 1 -t 64 --mqar-vocab 8 --mqar-pairs 8
done
# heads that do not divide, checked before the GPU
expect "gla heads do not divide" "divide" ./train_gla -H 7 -i "$tmp/data/train_*.bin" --tokenizer "$tmp/tok.bin"
# shapes the kernels do not take (common/*.cuh *_shape_error), refused before the GPU with the reason
expect "gla head key dim the chunk kernels lack" "head key dim K=16 unsupported" ./train_gla --bench --expand-k 0.25 -H 8
expect "gla head dims too wide" "K=512 unsupported" ./train_gla --bench -D 1024 -H 1
expect "gla batch x heads beyond a grid dimension" "40000 x 4 is more than 65535" ./train_gla --bench -b 40000 -t 8 -H 4
expect "gla width above RMSNorm's limit" "--dim = 16384 is out of range" ./train_gla --bench -D 16384
expect "gla --keep-states below -1" "--keep-states = -2 is out of range" ./train_gla --bench --keep-states -2
expect "mamba --keep-xz below -2" "--keep-xz = -3 is out of range" ./train_mamba --bench --keep-xz -3
expect "mamba --keep-ln takes 0 or 1" "--keep-ln = 2 is out of range" ./train_mamba --bench --keep-ln 2
expect "mamba d_state without a scan kernel" "d_state N=5 unsupported" ./train_mamba --bench --d-state 5
expect "mamba d_state above the flag's range" "--d-state = 64 is out of range" ./train_mamba --bench --d-state 64
expect "mamba conv width 1" "conv width 1 not supported" ./train_mamba --bench --conv 1
expect "mamba batch beyond a grid dimension" "batch 65536 is more than 65535" ./train_mamba --bench -b 65536 -t 1
# every preset at the benchmark shapes passes every check made before the GPU (GPU hidden: a clean start
# ends at "no CUDA device"), so the kernel shape limits above refuse nothing a user gets by default
for run in "gla gla-tiny 8 256" "gla gla-125m 16 2048" "gla gla-340m 16 2048" "gla gla-1.3b 4 4096" "gla gla-340m 64 512" \
           "mamba mamba-tiny 8 256" "mamba mamba-130m 16 2048" "mamba mamba-370m 16 2048" "mamba mamba-790m 16 2048" \
           "mamba mamba-1.4b 4 4096" "mamba mamba-370m 4 8192"; do
    set -- $run
    expect "$2 -b $3 -t $4 passes the checks made before the GPU" "no CUDA device" \
        env CUDA_VISIBLE_DEVICES= ./train_$1 --bench --model $2 --vocab 32000 -b $3 -t $4
done
