"""
dev/torch_bench.py -- times one training step (forward, backward, grad clipping, AdamW) of the models of
dev/torch_models.py in plain PyTorch, eager and torch.compile: the baseline a user without this repo (and
without fla or mamba_ssm) would write. Prints tokens/s, ms/step, MFU (same FLOP count and peak as the
trainers), peak device memory (torch.cuda.max_memory_allocated) and the time to the first step.

It is a NAIVE baseline, not fla or mamba_ssm (for those see ../shared/docs/targets.md): fp32 master
weights, bf16 autocast for the matrix products, fused AdamW; the sequence mixers in fp32 with plain PyTorch
ops: GLA in the chunk form (states between chunks of 64 by a Python loop over chunks, exact intra-chunk
decays), the Mamba scan as the chunked recurrence (about 2*64 + T/64 Python steps per layer, each on
[B, T/64, Di, N] tensors). Compile mode compiles one block function (shared by all layers) and the head.

  python3 dev/torch_bench.py --model gla   --preset gla-340m   --tied 0 -b 16 -t 2048
  python3 dev/torch_bench.py --model mamba --preset mamba-370m --tied 0 -b 16 -t 2048
  python3 dev/torch_bench.py --model gla -D 256 -L 2 -H 2 -b 2 -t 128 --device cpu     # smoke test

Inside each layer the GLA intra-chunk decays and the Mamba scan states are always recomputed in backward
(see torch_models.py); --recompute 1 also recomputes each whole block (torch.utils.checkpoint), keeping only
the residual stream between layers, for shapes whose per-layer activations do not fit. A mode that runs
out of memory prints OOM and the next mode still runs.
"""
import argparse
import gc
import json
import os
import sys
import time

import torch
from torch.utils.checkpoint import checkpoint

sys.dont_write_bytecode = True  # no dev/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models as tm  # noqa: E402


def flops_per_token(kind, c):
    """the trainers' count (train_gla.cu gla_flops_per_token, train_mamba.cu mamba_flops_per_token)"""
    D, L, Vc = c["D"], c["L"], c["Vc"]
    if kind == "gla":
        Dk, Dv, K, V = tm.gla_dims(c)
        P = 2 * Dk + 2 * Dv + tm.GATE_RANK
        per_layer = D * P + Dk * tm.GATE_RANK + D * Dv + 3.0 * D * c["I"]
        return 6.0 * (L * per_layer + Vc * D) + 2.0 * L * c["H"] * (14.0 * K * V + 195.0 * K + 384.0 * V)
    Di, N, R = c["d_inner"], c["d_state"], c["dt_rank"]
    per_layer = 3.0 * D * Di + Di * (2 * R + 2 * N)
    return 6.0 * (L * per_layer + Vc * D) + 30.0 * L * Di * N


def peak_tflops(device):
    """dense bf16 peak as common/mfu.h takes it (vendor figure; MFU_PEAK_TFLOPS overrides), 0 if unknown"""
    if os.environ.get("MFU_PEAK_TFLOPS"):
        return float(os.environ["MFU_PEAK_TFLOPS"])
    if device != "cuda":
        return 0.0
    name = torch.cuda.get_device_name()
    for key, tf in (("GH200", 989.0), ("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0),
                    ("A100", 312.0)):
        if key in name:
            return tf
    return 0.0


def build_config(a):
    if a.model == "gla":
        D, L, H, tied = tm.GLA_PRESETS[a.preset or "gla-340m"]
        return tm.gla_config(a.vocab, a.D or D, a.L or L, a.H or H, a.expand_k, a.expand_v, a.mlp,
                             tied if a.tied < 0 else a.tied)
    D, L = tm.MAMBA_PRESETS[a.preset or "mamba-370m"]
    D = a.D or D
    return tm.mamba_config(a.vocab, D, a.L or L, a.d_inner, a.d_state, a.dt_rank, a.conv, 1 if a.tied < 0 else a.tied)


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def run_mode(a, cfg, mode):
    """one model, optimizer and loop; returns a result dict"""
    dev = a.device
    if dev == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t_start = time.time()
    if a.model == "gla":
        model = tm.GLA(cfg, device=dev, form="chunk", chunk=a.chunk)
    else:
        model = tm.Mamba(cfg, device=dev, scan_chunk=a.chunk)
    model.init_params(seed=a.seed)
    opt = torch.optim.AdamW(model.param_groups(0.1), lr=3e-4, betas=(0.9, 0.95), eps=1e-8,
                            fused=dev == "cuda")
    block, head = model.block, lambda h, y: tm.cross_entropy(model.head(h), y)
    if mode == "compile":
        block, head = torch.compile(block), torch.compile(head)
    block_fn = (lambda *x: checkpoint(block, *x, use_reentrant=False)) if a.recompute else block
    gen = torch.Generator(device=dev).manual_seed(a.seed + 1)
    amp = torch.autocast(dev, dtype=torch.bfloat16, enabled=a.dtype == "bf16")
    params = list(model.parameters())
    first_step = None
    loss = None
    for it in range(a.warmup + a.steps):
        if it == a.warmup:
            sync(dev)
            t0 = time.time()
        x = torch.randint(0, cfg["Vc"], (a.b, a.t + 1), generator=gen, device=dev)
        y = x[:, 1:].clone()
        y[:, -1] = -1  # as the trainers' --bench: the last position has no target
        with amp:
            loss = head(model.trunk(x[:, :-1], block_fn), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if it == 0:
            sync(dev)
            first_step = time.time() - t_start
    sync(dev)
    dt = (time.time() - t0) / a.steps
    r = {"model": a.model, "mode": mode, "B": a.b, "T": a.t, "ms_per_step": 1e3 * dt,
         "tokens_per_s": a.b * a.t / dt, "first_step_s": first_step, "loss": loss.item(),
         "peak_mem_gib": torch.cuda.max_memory_allocated() / 2 ** 30 if dev == "cuda" else None}
    peak = peak_tflops(dev)
    r["mfu"] = flops_per_token(a.model, cfg) * r["tokens_per_s"] / (peak * 1e12) if peak else None
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["gla", "mamba"], required=True)
    ap.add_argument("--preset", help="gla-tiny|gla-125m|gla-340m|gla-1.3b or mamba-tiny|mamba-130m|mamba-370m|"
                                     "mamba-790m|mamba-1.4b (default gla-340m / mamba-370m)")
    ap.add_argument("-D", type=int, default=0, help="model width (0: preset)")
    ap.add_argument("-L", type=int, default=0, help="layers (0: preset)")
    ap.add_argument("-H", type=int, default=0, help="GLA heads (0: preset)")
    ap.add_argument("--expand-k", type=float, default=0.5)
    ap.add_argument("--expand-v", type=float, default=1.0)
    ap.add_argument("--mlp", type=int, default=0, help="GLA MLP width (0: fla's rule)")
    ap.add_argument("--d-inner", type=int, default=0, help="Mamba d_inner (0: 2D)")
    ap.add_argument("--d-state", type=int, default=16)
    ap.add_argument("--dt-rank", type=int, default=0, help="Mamba dt_rank (0: ceil(D/16))")
    ap.add_argument("--conv", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--tied", type=int, default=-1, help="1 tied, 0 untied (-1: preset)")
    ap.add_argument("-b", type=int, default=16)
    ap.add_argument("-t", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=6, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    ap.add_argument("--modes", default="eager,compile")
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16", help="autocast dtype of the matrix products")
    ap.add_argument("--recompute", type=int, default=0, help="1: recompute each block in backward")
    ap.add_argument("--chunk", type=int, default=64, help="GLA chunk / Mamba scan chunk")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    if a.preset and a.preset not in (tm.GLA_PRESETS if a.model == "gla" else tm.MAMBA_PRESETS):
        ap.error("unknown preset %s for --model %s" % (a.preset, a.model))
    cfg = build_config(a)
    n = tm.layout(tm.gla_table(cfg) if a.model == "gla" else tm.mamba_table(cfg))[1]
    print("torch %s on %s | %s %s | %.1fM parameters | B=%d T=%d | %s autocast | recompute %d" %
          (torch.__version__, torch.cuda.get_device_name() if a.device == "cuda" else "cpu", a.model,
           " ".join("%s=%s" % (k, v) for k, v in cfg.items()), n / 1e6, a.b, a.t, a.dtype, a.recompute))
    rows = []
    for mode in a.modes.split(","):
        try:
            r = run_mode(a, cfg, mode)
            print("TORCH_BENCH_JSON " + json.dumps(r))
            na = lambda v, f: f % v if v is not None else "-"
            rows.append("%-8s | %10.0f | %9.1f | %6s | %8s | %7.1f | %.4f" % (
                mode, r["tokens_per_s"], r["ms_per_step"], na(r["mfu"] and 100 * r["mfu"], "%.1f%%"),
                na(r["peak_mem_gib"], "%.2f"), r["first_step_s"], r["loss"]))
        except torch.cuda.OutOfMemoryError:
            rows.append("%-8s | OOM at B=%d T=%d%s" % (mode, a.b, a.t, "" if a.recompute else " (try --recompute 1)"))
        gc.collect()
        if a.device == "cuda":
            torch.cuda.empty_cache()
    print()
    print("%-8s | %10s | %9s | %6s | %8s | %7s | %s" % ("mode", "tokens/s", "ms/step", "MFU", "mem GiB", "1st s", "loss"))
    print("---------+------------+-----------+--------+----------+---------+-------")
    for r in rows:
        print(r)
    print("(naive PyTorch baseline; MFU against %s TFLOP/s bf16; first step includes building the model and compiling)" %
          (peak_tflops(a.device) or "no known peak"))


if __name__ == "__main__":
    main()
