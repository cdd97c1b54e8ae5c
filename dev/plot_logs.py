#!/usr/bin/env python3
"""plot_logs.py — training logs (log.jsonl of train_gla / train_mamba) as PNG figures.

One figure, four panels against the optimizer step: train and validation loss, learning rate, gradient
norm, tokens/s. Several runs go on the same axes, so GLA and Mamba on the same data compare at a glance.

    python3 dev/plot_logs.py log_gla log_mamba -o runs.png
    python3 dev/plot_logs.py log_gla/log.jsonl --label gla-tiny -o gla.png

Each argument is a run directory (holding log.jsonl) or a log.jsonl file; --label names the runs in
order (default: the directory name). Needs matplotlib (not needed by anything else in the project).
"""
import argparse
import json
import os
import sys


def read_log(path):
    """step records and validation records of one log.jsonl; malformed lines are skipped"""
    if os.path.isdir(path):
        path = os.path.join(path, "log.jsonl")
    steps, vals = [], []
    with open(path) as f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if "loss" in r:
                steps.append(r)
            elif "val_loss" in r:
                vals.append(r)
    return path, steps, vals


def smooth(xs, k):
    """trailing mean over k points (the per-step loss is noisy)"""
    out, acc = [], 0.0
    for i, x in enumerate(xs):
        acc += x
        if i >= k:
            acc -= xs[i - k]
        out.append(acc / min(i + 1, k))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="run directories or log.jsonl files")
    ap.add_argument("--label", action="append", default=[], help="name of each run, in order")
    ap.add_argument("-o", "--out", default="runs.png", help="output PNG")
    ap.add_argument("--smooth", type=int, default=20, help="trailing mean of the train loss over N steps")
    a = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("error: plot_logs.py needs matplotlib (pip install matplotlib)")

    fig, ax = plt.subplots(2, 2, figsize=(12, 8))
    (a_loss, a_lr), (a_norm, a_tps) = ax
    for i, run in enumerate(a.runs):
        try:
            path, steps, vals = read_log(run)
        except OSError as e:
            sys.exit("error: cannot read %s: %s" % (run, e.strerror))
        if not steps:
            sys.exit("error: %s has no step records" % path)
        label = a.label[i] if i < len(a.label) else os.path.basename(os.path.dirname(os.path.abspath(path)))
        x = [r["step"] + 1 for r in steps]
        line, = a_loss.plot(x, smooth([r["loss"] for r in steps], a.smooth), label=label + " train", lw=1)
        if vals:
            a_loss.plot([r["step"] for r in vals], [r["val_loss"] for r in vals], "o--", color=line.get_color(),
                        label=label + " val")
        for axis, key in ((a_lr, "lr"), (a_norm, "grad_norm"), (a_tps, "tokens_per_s")):
            pts = [(r["step"] + 1, r[key]) for r in steps if key in r]
            if pts:
                axis.plot(*zip(*pts), color=line.get_color(), label=label, lw=1)
    for axis, title in ((a_loss, "loss (nats/token)"), (a_lr, "learning rate"), (a_norm, "gradient norm (before clipping)"),
                        (a_tps, "tokens/s")):
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print("wrote %s" % a.out)


if __name__ == "__main__":
    main()
