"""
dev/torch_check.py -- the mean next-token loss of a trainer checkpoint, computed by the independent PyTorch
models of dev/torch_models.py, on token shards or on random tokens. Compare it with the trainer's val loss:

  python3 dev/torch_check.py --ckpt log_gla/ckpt_00001000.bin --shards 'data/tinyshakespeare/val_*.bin' -b 4 -t 256

Batches are those of the trainers' validation loader (common/dataloader.h): shards in sorted glob order, each
shard of n tokens holding (n-1)//T samples, sample i = tokens [i*T, i*T+T+1) (inputs its first T, targets its
last T), samples taken in order B at a time, at most --batches batches (default 20 = the trainers'
--val-steps default). With the -b and -t the trainer ran with (defaults 8 and 256, also this program's)
and the same batch count, the trainer validates on exactly these tokens.

Which val loss to compare with: ckpt_<N>.bin holds the weights after N optimizer steps; the trainer
validates at the START of loop step N, i.e. with the same weights, and logs it in log.jsonl as
{"step":N,"val_loss":...} (that record exists when N is a multiple of -v and training ran past N; its
progress line prints "step N+1/..."). The final checkpoint of a run has no matching record: the last
validation runs before the last update.

Expect close but not identical numbers: the trainer multiplies bf16 activations by bf16 weights (fp32
accumulation) and this program computes in fp32 (--dtype fp64 for more). --weights trainer takes the
matrix-product weights from the checkpoint's bf16 working copy, as the trainer does, which removes one of
the differences.

Shard format (llm.c's): 256 x int32 header ([0] magic 20240520, [1] 1 = uint16 / 2 = uint32 tokens,
[2] token count low 32 bits, [3] high 32 bits), then the tokens.
"""
import argparse
import glob
import math
import os
import struct
import sys
import time

import torch

sys.dont_write_bytecode = True  # no dev/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models as tm  # noqa: E402

SHARD_MAGIC = 20240520


def read_shard(path):
    """token ids of one shard as an int64 tensor"""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(1024)
        if len(head) < 1024:
            raise ValueError("%s is truncated: a shard starts with a 1024-byte header" % path)
        h = struct.unpack("<256i", head)
        if h[0] != SHARD_MAGIC:
            raise ValueError("%s is not a token shard (magic %d, expected %d)" % (path, h[0], SHARD_MAGIC))
        if h[1] not in (1, 2):
            raise ValueError("%s: unsupported shard version %d (1 = uint16, 2 = uint32 tokens)" % (path, h[1]))
        tb = 2 if h[1] == 1 else 4
        ntok = (h[2] & 0xFFFFFFFF) | ((h[3] & 0xFFFFFFFF) << 32)
        if ntok == 0 or size != 1024 + ntok * tb:
            raise ValueError("%s: header says %d tokens of %d bytes, the file has %d bytes after the header" %
                             (path, ntok, tb, size - 1024))
        buf = bytearray(ntok * tb)
        f.readinto(buf)
    if tb == 2:
        return torch.frombuffer(buf, dtype=torch.int16).to(torch.int64) & 0xFFFF
    return torch.frombuffer(buf, dtype=torch.int32).to(torch.int64)


def shard_batches(pattern, B, T, max_batches):
    """(inputs, targets) [B,T] batches in the order of the trainers' eval loader"""
    paths = sorted(glob.glob(pattern))
    if not paths:
        raise ValueError("no token shards match '%s'" % pattern)
    samples = []  # (shard index, sample index) in stream order
    shards = [read_shard(p) for p in paths]
    for si, toks in enumerate(shards):
        if toks.numel() < T + 1:
            raise ValueError("%s has %d tokens, fewer than one sequence of T+1 = %d" % (paths[si], toks.numel(), T + 1))
        samples += [(si, i) for i in range((toks.numel() - 1) // T)]
    nb = len(samples) // B
    if nb == 0:
        raise ValueError("'%s' holds %d sequences of T+1 = %d tokens, fewer than one batch of B = %d" %
                         (pattern, len(samples), T + 1, B))
    if max_batches > 0:
        nb = min(nb, max_batches)
    for b in range(nb):
        rows = [shards[si][i * T: i * T + T + 1] for si, i in samples[b * B:(b + 1) * B]]
        x = torch.stack(rows)
        yield x[:, :-1], x[:, 1:], paths


def random_batches(Vc, B, T, n, seed):
    """random tokens; the target of the last position of each row is ignored (-1), as in --bench"""
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randint(0, Vc, (B, T + 1), generator=g)
        y = x[:, 1:].clone()
        y[:, -1] = -1
        yield x[:, :-1], y, None


def main():
    ap = argparse.ArgumentParser(description="\n\n".join(__doc__.split("\n\n")[:2]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True, help="checkpoint file written by train_gla / train_mamba")
    ap.add_argument("--shards", help="token shard glob (default: random tokens)")
    ap.add_argument("-b", type=int, default=8, help="batch size B (default 8, the trainers' default)")
    ap.add_argument("-t", type=int, default=256, help="sequence length T (default 256, the trainers' default)")
    ap.add_argument("--batches", type=int, default=20, help="at most this many batches (0 = the whole pass; default 20)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random tokens")
    ap.add_argument("--form", choices=["recurrent", "chunk"], default="recurrent",
                    help="GLA: step-by-step recurrence or chunk form; Mamba: step-by-step scan or chunked (same math)")
    ap.add_argument("--dtype", choices=["fp32", "fp64"], default="fp32")
    ap.add_argument("--weights", choices=["master", "trainer"], default="master",
                    help="master: fp32 weights; trainer: bf16 copy for matrix products, as the trainer reads them")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--verify", action="store_true", help="verify the checksum of large sections too (slow, pure Python)")
    a = ap.parse_args()

    ck = tm.Checkpoint(a.ckpt)
    dtype = torch.float64 if a.dtype == "fp64" else torch.float32
    kw = {"form": a.form} if ck.kind == tm.KIND_GLA else {"scan_chunk": 0 if a.form == "recurrent" else 64}
    if a.verify:
        ck.read("master", torch.float32, verify=True)
    model = tm.model_from_checkpoint(ck, dtype=dtype, device=a.device, weights=a.weights, **kw).eval()
    Vc = ck.config["Vc"]
    print("checkpoint %s: %s, step %d, %d parameters (flat), config %s" %
          (a.ckpt, tm.KIND_NAMES[ck.kind], ck.step, ck.num_params,
           " ".join("%s=%s" % (k, ("%g" % v) if isinstance(v, float) else v) for k, v in ck.config.items())))
    if a.shards:
        batches = shard_batches(a.shards, a.b, a.t, a.batches)
    else:
        batches = random_batches(Vc, a.b, a.t, a.batches if a.batches > 0 else 1, a.seed)
    total, count, nb, t0 = 0.0, 0, 0, time.time()
    with torch.no_grad():
        for x, y, paths in batches:
            if paths is not None and nb == 0:
                print("data: %s (%d shard%s)" % (a.shards, len(paths), "" if len(paths) == 1 else "s"))
            if int(x.max()) >= Vc:
                raise ValueError("token id %d >= the model's vocabulary %d" % (int(x.max()), Vc))
            logits = model(x.to(a.device))
            y = y.to(a.device)
            n = int((y >= 0).sum())
            loss = tm.cross_entropy(logits, y).item()
            total += loss * n
            count += n
            nb += 1
    mean = total / count if count else math.nan
    print("%s loss: %.4f over %d batches of %d x %d (%d targets), %s, %s weights, %s, %.1f s" %
          ("val" if a.shards else "random-token", mean, nb, a.b, a.t, count, a.form, a.weights, a.dtype, time.time() - t0))
    if not a.shards:
        print("(random tokens: an untrained model gives about ln(Vc) = %.4f)" % math.log(Vc))


if __name__ == "__main__":
    main()
