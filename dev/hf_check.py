"""
dev/hf_check.py -- checks the trainers' Hugging Face export (--export-hf, common/hf.h) against the real HF
model classes: the export is loaded with transformers' MambaForCausalLM (and fla's GLAForCausalLM when fla is
installed and can run here; otherwise that model is skipped with a message), and its loss and logits on the
same tokens are compared with dev/torch_models.py run on the checkpoint itself (the same weights).
The other direction, as a published checkpoint would be used: the library builds the same model with
its own random init, writes it with save_pretrained, the trainer starts from it (--init-hf, one step at
lr 0, checkpoint written), and that checkpoint's master weights must equal the library's tensors
bit for bit and give the library's loss.

  python3 dev/hf_check.py                  # tiny random checkpoints made here, exported by ./train_mamba, ./train_gla
  python3 dev/hf_check.py --ckpt log_mamba/ckpt_00001000.bin --shards 'data/tinyshakespeare/val_*.bin' -b 4 -t 256
  python3 dev/hf_check.py --device cuda    # on a GPU machine: fla's Triton GLA runs too; --init-hf runs

Needs torch, transformers and safetensors (pip install transformers safetensors); CPU is enough, and the
export needs no GPU; the --init-hf direction needs one (the trainer trains a step) and is skipped without. Tiny checkpoints have every tensor perturbed away from its init (norm weights 1, biases
0 would hide a swapped or dropped tensor). Prints PASS/FAIL lines; exit status 1 on any FAIL.
"""
import argparse
import glob
import math
import os
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models as tm  # noqa: E402
from torch_check import random_batches, shard_batches  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
fails = []


def report(ok, what):
    print("%s %s" % ("PASS" if ok else "FAIL", what))
    if not ok:
        fails.append(what)


def tiny_checkpoint(path, kind, seed):
    """a small random model in the trainers' checkpoint format (master section only: all --export-hf reads)"""
    if kind == tm.KIND_MAMBA:
        cfg = tm.mamba_config(Vc=72, D=32, L=2, d_state=8, tied=1)
        model = tm.Mamba(cfg)
    else:
        cfg = tm.gla_config(Vc=72, D=128, L=2, H=2, tied=0)   # K=32, V=64: the chunk kernels' smallest heads
        model = tm.GLA(cfg)
    model.init_params(seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    flat = model.to_flat()
    conf = [(n, float(v) if n == "eps" else int(v)) for n, v in cfg.items()]
    tm.write_checkpoint(path, kind, conf, [("master", tm.tensor_bytes(flat))], step=1, num_params=model.total)


def export(ckpt, kind, out_dir, bin_dir):
    binary = os.path.join(bin_dir, "train_gla" if kind == tm.KIND_GLA else "train_mamba")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")   # proves the export needs no GPU
    r = subprocess.run([binary, "--export-hf", out_dir, "-e", ckpt], capture_output=True, text=True, env=env)
    report(r.returncode == 0, "%s --export-hf %s (GPU hidden): %s" %
           (os.path.basename(binary), os.path.basename(ckpt), (r.stdout + r.stderr).strip().splitlines()[-1:]))
    return r.returncode == 0


def load_hf(kind, out_dir, dtype):
    """the HF model of an export through AutoModelForCausalLM (as a user loads it), or None (with a message)
    when its library is missing. fla registers model_type "gla" with the Auto classes when imported."""
    from transformers import AutoModelForCausalLM
    want = "MambaForCausalLM"
    if kind == tm.KIND_GLA:
        want = "GLAForCausalLM"
        try:
            import fla.models  # noqa: F401
        except Exception as e:  # fla needs triton; often absent on CPU machines
            print("SKIP gla: fla is not installed or cannot be imported here (%s: %s)" % (type(e).__name__, e))
            return None
    try:
        model, info = AutoModelForCausalLM.from_pretrained(out_dir, dtype=dtype, output_loading_info=True)
    except TypeError:  # transformers < 4.56 spells it torch_dtype
        model, info = AutoModelForCausalLM.from_pretrained(out_dir, torch_dtype=dtype, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    report(type(model).__name__ == want and not bad,
           "%s: AutoModelForCausalLM.from_pretrained gives %s and loads every tensor, none missing or unexpected %s" %
           (tm.KIND_NAMES[kind], type(model).__name__, bad or ""))
    return model.to(dtype).eval()


def hf_dtype(kind, args):
    """fp64 unless the HF model runs on a GPU with Triton kernels (fla's GLA), which take fp32"""
    if args.dtype == "fp64" and not (kind == tm.KIND_GLA and args.device != "cpu"):
        return torch.float64
    return torch.float32


def loss_tol(kind, args):
    # fp64: transformers' MambaRMSNorm (and fla's norms) compute in fp32 even in an fp64 model, so the
    # floor is fp32 rounding (~1e-10..1e-8 on the loss); fp32 on a GPU: fla's Triton chunk kernels use
    # TF32 matrix products (~1e-4); a wrong mapping is off by 1e-3 or far more
    if hf_dtype(kind, args) == torch.float64:
        return 1e-6
    return 5e-4 if args.device != "cpu" else 2e-5


def model_flags(ck):
    """the trainer flags that describe a checkpoint's model (as its config.json must match them)"""
    c = ck.config
    if ck.kind == tm.KIND_GLA:
        return ["--vocab", str(c["Vc"]), "-D", str(c["D"]), "-L", str(c["L"]), "-H", str(c["H"]),
                "--expand-k", repr(c["key_dim"] / c["D"]), "--expand-v", repr(c["value_dim"] / c["D"]),
                "--mlp", str(c["I"]), "--tied", str(c["tied"])]
    return ["--vocab", str(c["Vc"]), "-D", str(c["D"]), "-L", str(c["L"]), "--d-inner", str(c["d_inner"]),
            "--d-state", str(c["d_state"]), "--dt-rank", str(c["dt_rank"]), "--conv", str(c["conv"]),
            "--tied", str(c["tied"])]


def from_library(ckpt_path, args):
    """library init -> save_pretrained -> --init-hf -> checkpoint: same tensors, same loss"""
    ck = tm.Checkpoint(ckpt_path)
    name = tm.KIND_NAMES[ck.kind]
    if args.device == "cpu":
        print("SKIP %s --init-hf from a library-written directory: needs a GPU (run with --device cuda)" % name)
        return
    dtype = hf_dtype(ck.kind, args)
    with tempfile.TemporaryDirectory() as tmp:
        exp, lib_dir, run_dir = (os.path.join(tmp, d) for d in ("export", "lib", "run"))
        if not export(ckpt_path, ck.kind, exp, args.bin_dir):
            return
        hf = load_hf(ck.kind, exp, torch.float32)   # only for its class and config
        if hf is None:
            return
        lib = type(hf)(hf.config)                   # the library's own random init
        g = torch.Generator().manual_seed(args.seed + 11)
        with torch.no_grad():                       # move norm weights off 1 and biases off 0
            for p in lib.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.02)
        lib.save_pretrained(lib_dir)
        binary = os.path.join(args.bin_dir, "train_gla" if ck.kind == tm.KIND_GLA else "train_mamba")
        cmd = [binary, "--init-hf", lib_dir] + model_flags(ck) + [
            "--task", "synthetic", "-b", "1", "-t", "16", "-x", "1", "-l", "0", "--warmup", "0",
            "-v", "0", "-s", "0", "-n", "0", "-o", run_dir]
        r = subprocess.run(cmd, capture_output=True, text=True)
        ckpts = sorted(glob.glob(os.path.join(run_dir, "ckpt_*.bin")))
        report(r.returncode == 0 and ckpts, "%s --init-hf of a directory written by %s.save_pretrained, one step at lr 0: %s"
               % (name, type(lib).__name__, (r.stdout + r.stderr).strip().splitlines()[-1:]))
        if r.returncode != 0 or not ckpts:
            return
        mine = tm.model_from_checkpoint(tm.Checkpoint(ckpts[-1]), dtype=dtype,
                                        **({"form": "recurrent"} if ck.kind == tm.KIND_GLA else {"scan_chunk": 0})).eval()
        # the checkpoint, exported again, holds every library tensor under its name, bit for bit
        back = os.path.join(tmp, "back")
        if not export(ckpts[-1], ck.kind, back, args.bin_dir):
            return
        from safetensors.torch import load_file
        got = load_file(os.path.join(back, "model.safetensors"))
        lib_sd = lib.state_dict()
        absent = [k for k in lib_sd if k not in got and not (k == "lm_head.weight" and ck.config.get("tied"))]
        differ = [k for k in lib_sd if k in got and not torch.equal(lib_sd[k].float(), got[k].float())]
        report(not absent and not differ, "%s: every tensor of the library's model (%d) comes back bit for bit "
               "through --init-hf, the checkpoint and --export-hf %s" % (name, len(lib_sd), (absent + differ)[:4] or ""))
        lib = lib.to(dtype).to(args.device).eval()
        sums, count = [0.0, 0.0], 0
        with torch.no_grad():
            for x, y, _ in random_batches(ck.config["Vc"], args.b, args.t, args.batches, args.seed):
                lh = lib(input_ids=x.to(args.device), use_cache=False).logits.to(dtype).cpu()
                n = int((y >= 0).sum())
                for i, lg in enumerate((mine(x), lh)):
                    sums[i] += tm.cross_entropy(lg, y).item() * n
                count += n
        a, b = sums[0] / count, sums[1] / count
        rel = abs(a - b) / abs(a)
        tol = loss_tol(ck.kind, args)
        print("%s from %s: loss trainer checkpoint %.10f, library %.10f (rel diff %.2e)" % (name, type(lib).__name__, a, b, rel))
        report(rel <= tol, "%s: the imported model's loss == the library's (rel %.2e <= %.0e)" % (name, rel, tol))


def compare(ckpt_path, args):
    ck = tm.Checkpoint(ckpt_path)
    name = tm.KIND_NAMES[ck.kind]
    dtype = hf_dtype(ck.kind, args)
    with tempfile.TemporaryDirectory() as out_dir:
        if not export(ckpt_path, ck.kind, out_dir, args.bin_dir):
            return
        hf = load_hf(ck.kind, out_dir, dtype)
        if hf is None:
            return
        hf = hf.to(args.device)
        kw = {"form": "recurrent"} if ck.kind == tm.KIND_GLA else {"scan_chunk": 0}
        ours = tm.model_from_checkpoint(ck, dtype=dtype, **kw).eval()
        Vc = ck.config["Vc"]
        batches = (shard_batches(args.shards, args.b, args.t, args.batches) if args.shards
                   else random_batches(Vc, args.b, args.t, args.batches, args.seed))
        sums, count, dmax, nb = [0.0, 0.0], 0, 0.0, 0
        with torch.no_grad():
            for x, y, _ in batches:
                if int(x.max()) >= Vc:
                    raise ValueError("token id %d >= the model's vocabulary %d" % (int(x.max()), Vc))
                try:
                    lh = hf(input_ids=x.to(args.device), use_cache=False).logits.to(dtype).cpu()
                except Exception as e:  # fla's Triton kernels do not run on a CPU
                    print("SKIP %s: the HF model does not run here (%s: %s)" % (name, type(e).__name__, str(e)[:200]))
                    return
                lo = ours(x)
                n = int((y >= 0).sum())
                for i, lg in enumerate((lo, lh)):
                    sums[i] += tm.cross_entropy(lg, y).item() * n
                count += n
                dmax = max(dmax, (lo - lh).abs().max().item())
                nb += 1
        lo_mean, lh_mean = sums[0] / count, sums[1] / count
        rel = abs(lo_mean - lh_mean) / abs(lo_mean)
        tol = loss_tol(ck.kind, args)
        print("%s: %d batches of %d x %d on %s: loss torch_models %.10f, HF %.10f (rel diff %.2e), max |logit diff| %.2e, %s" %
              (name, nb, args.b, args.t, "shards " + args.shards if args.shards else "random tokens", lo_mean, lh_mean, rel,
               dmax, str(dtype).replace("torch.", "") + " on " + args.device))
        report(rel <= tol, "%s: HF loss == torch_models loss on the same weights (rel %.2e <= %.0e)" % (name, rel, tol))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", action="append", help="checkpoint(s) to export and check (default: tiny random GLA and Mamba)")
    ap.add_argument("--shards", help="token shard glob (default: random tokens)")
    ap.add_argument("-b", type=int, default=2)
    ap.add_argument("-t", type=int, default=64)
    ap.add_argument("--batches", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bin-dir", default=REPO, help="where train_gla / train_mamba are (default: the repo root)")
    ap.add_argument("--dtype", choices=["fp32", "fp64"], default="fp64",
                    help="fp64 (default) makes any mapping error stand out far above rounding")
    ap.add_argument("--device", default="cpu", help="where the HF models run (cuda: fla's GLA, and the --init-hf check)")
    args = ap.parse_args()
    if args.shards and not glob.glob(args.shards):
        sys.exit("no shards match %s" % args.shards)
    with tempfile.TemporaryDirectory() as tmp:
        ckpts = args.ckpt
        if not ckpts:
            ckpts = []
            for kind in (tm.KIND_MAMBA, tm.KIND_GLA):
                p = os.path.join(tmp, "ckpt_%s.bin" % tm.KIND_NAMES[kind])
                tiny_checkpoint(p, kind, seed=5)
                ckpts.append(p)
        for p in ckpts:
            compare(p, args)
        if not args.ckpt:
            for p in ckpts:
                from_library(p, args)
    print("%d failed" % len(fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
