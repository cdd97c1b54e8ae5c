#!/usr/bin/env bash
# data/prepare.sh — owns dataset preparation: finds or downloads the text, builds data/bpe if
# needed, trains the tokenizer and writes the token shards under data/<dataset>/.
#
#   data/prepare.sh [tinyshakespeare]   -> data/tinyshakespeare/{input.txt, tokenizer.bin, train_000000.bin, val_000000.bin}
#   data/prepare.sh tinystories         -> data/tinystories/{tokenizer.bin, train_*.bin, val_000000.bin}
#
# Environment: VOCAB (default 4096 for tinyshakespeare, 8192 for tinystories),
#              TINYSHAKESPEARE=/path/to/input.txt (use this local copy, no download),
#              TINYSTORIES_DIR=/dir holding TinyStoriesV2-GPT4-{train,valid}.txt (no download).
# Exits non-zero with a clear message when no text can be found or fetched.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "error: prepare.sh: $*" >&2; exit 1; }

build_bpe() {
    if [ ! -x data/bpe ] || [ data/bpe.c -nt data/bpe ] || [ common/tokenizer.h -nt data/bpe ] || [ common/shard.h -nt data/bpe ]; then
        echo "building data/bpe"
        gcc -O2 -std=c11 data/bpe.c -o data/bpe -lm -lpthread || die "cannot build data/bpe (is gcc installed?)"
    fi
}

# fetch URL DEST: download with curl or wget; fails with a message when offline
fetch() {
    local url=$1 dest=$2
    echo "downloading $url"
    if command -v curl >/dev/null 2>&1; then
        curl -fsSL --retry 2 --connect-timeout 20 -o "$dest.part" "$url" || { rm -f "$dest.part"; return 1; }
    elif command -v wget >/dev/null 2>&1; then
        wget -q -T 20 -O "$dest.part" "$url" || { rm -f "$dest.part"; return 1; }
    else
        echo "neither curl nor wget is installed" >&2
        return 1
    fi
    mv "$dest.part" "$dest"
}

tinyshakespeare() {
    local out=data/tinyshakespeare vocab=${VOCAB:-4096} src=""
    local url=https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
    mkdir -p "$out"
    if [ -n "${TINYSHAKESPEARE:-}" ]; then
        [ -f "$TINYSHAKESPEARE" ] || die "TINYSHAKESPEARE=$TINYSHAKESPEARE is not a file"
        src=$TINYSHAKESPEARE
    else
        for c in "$out/input.txt" ../shared/data/tinyshakespeare/input.txt shared/data/tinyshakespeare/input.txt; do
            if [ -f "$c" ]; then src=$c; break; fi
        done
        if [ -z "$src" ]; then
            fetch "$url" "$out/input.txt" || die "no tinyshakespeare text: set TINYSHAKESPEARE=/path/to/input.txt or go online ($url)"
            src=$out/input.txt
        fi
    fi
    echo "tinyshakespeare: text $src ($(wc -c <"$src") bytes), vocab $vocab"
    build_bpe
    data/bpe train --quiet --vocab "$vocab" -o "$out/tokenizer.bin" "$src"
    data/bpe encode -t "$out/tokenizer.bin" -o "$out" --val-fraction 0.1 "$src"
    echo "done: $out/tokenizer.bin, $out/train_000000.bin, $out/val_000000.bin (val = first 10% of tokens)"
}

tinystories() {
    local out=data/tinystories vocab=${VOCAB:-8192} dir=${TINYSTORIES_DIR:-data/tinystories}
    local base=https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main
    mkdir -p "$out"
    for f in TinyStoriesV2-GPT4-valid.txt TinyStoriesV2-GPT4-train.txt; do
        if [ ! -f "$dir/$f" ]; then
            [ -z "${TINYSTORIES_DIR:-}" ] || die "$dir/$f not found (TINYSTORIES_DIR=$TINYSTORIES_DIR)"
            fetch "$base/$f" "$dir/$f" || die "cannot download $base/$f (offline? set TINYSTORIES_DIR to a local copy)"
        fi
    done
    echo "tinystories: text in $dir, vocab $vocab (tokenizer trained on the 22 MB validation file)"
    build_bpe
    data/bpe train --quiet --vocab "$vocab" --doc-sep '<|endoftext|>' -o "$out/tokenizer.bin" "$dir/TinyStoriesV2-GPT4-valid.txt"
    # the validation file is the val split; ~2.2 GB of text needs ~5 GB of memory here
    data/bpe encode -t "$out/tokenizer.bin" -o "$out" --doc-sep '<|endoftext|>' --val-files 1 \
        "$dir/TinyStoriesV2-GPT4-valid.txt" "$dir/TinyStoriesV2-GPT4-train.txt"
    echo "done: $out/tokenizer.bin, $out/train_*.bin, $out/val_000000.bin"
}

case "${1:-tinyshakespeare}" in
    tinyshakespeare) tinyshakespeare ;;
    tinystories) tinystories ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown dataset '$1' (expected tinyshakespeare or tinystories)" ;;
esac
