#!/usr/bin/env python3
"""dev/ncu_stalls.py: where a kernel's warps wait, per SASS instruction, from an Nsight Compute report.

ncu's source page holds, for every SASS instruction, the warp-state samples that stalled on it and why. This
sums them per kernel and lists the instructions holding the most samples, with their two main reasons; that is
how session 13 found the scan backward's loads that did not prefetch (dev/README.md, Mamba section).

    ncu --clock-control none --set full -o rep -k regex:selective_scan_bwd_kernel -c 1 ./dev/selective_scan_bwd 4 --reps 1
    ncu -i rep.ncu-rep --page source --csv --print-source sass > sass.csv
    python3 dev/ncu_stalls.py sass.csv [--top 20]

Offsets are from the kernel's first instruction (what cuobjdump -sass prints). Plain Python, no packages.
"""
import argparse
import csv
import signal
import sys

SAMPLES = "Warp Stall Sampling (All Samples)"
EXECUTED = "Instructions Executed"


def kernels(path):
    """(kernel name, header, rows) for each launch in the CSV: ncu writes a name line and a header per launch, and
    (ncu 2025) each launch's table twice in a row; the repeat is dropped."""
    name, header, rows, out = None, None, [], []

    def close():
        if header and not (out and out[-1] == (name, header, rows)):
            out.append((name, header, rows))
    try:
        with open(path, newline="") as f:
            for r in csv.reader(f):
                if r and r[0] == "Kernel Name":
                    close()
                    name, header, rows = r[1] if len(r) > 1 else "?", None, []
                elif r and r[0] == "Address":
                    header = r
                elif header and len(r) == len(header):
                    rows.append(r)
    except OSError as e:
        sys.exit("ncu_stalls: cannot read %s: %s" % (path, e.strerror))
    close()
    return out


def as_int(s):
    try:
        return int(s)
    except ValueError:
        return 0


def report(name, header, rows, top):
    ix = {h: i for i, h in enumerate(header)}
    if SAMPLES not in ix:
        sys.exit("no '%s' column: export with --page source --print-source sass from a --set full report" % SAMPLES)
    reasons = [h for h in header if h.startswith("stall_") and "Not Issued" not in h]
    total = sum(as_int(r[ix[SAMPLES]]) for r in rows) or 1
    executed = sum(as_int(r[ix[EXECUTED]]) for r in rows) if EXECUTED in ix else 0
    by_reason = {s: sum(as_int(r[ix[s]]) for r in rows) for s in reasons}
    print("== %s" % name)
    print("   %d stall samples, %d warp instructions executed" % (total, executed))
    print("   " + "  ".join("%s %.1f%%" % (s[6:], 100.0 * v / total)
                            for s, v in sorted(by_reason.items(), key=lambda x: -x[1])[:9]))
    base = int(rows[0][0], 16) if rows else 0
    for r in sorted(rows, key=lambda r: -as_int(r[ix[SAMPLES]]))[:top]:
        n = as_int(r[ix[SAMPLES]])
        why = sorted(((as_int(r[ix[s]]), s[6:]) for s in reasons), reverse=True)[:2]
        print("   %6x  %-48s %7d %5.1f%%  %s" % (int(r[0], 16) - base, r[1].strip()[:48], n, 100.0 * n / total,
                                              ", ".join("%s %d" % (s, v) for v, s in why if v)))


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)   # quiet when piped into head
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("csv", help="ncu -i REPORT --page source --csv --print-source sass > this file")
    ap.add_argument("--top", type=int, default=20, help="instructions to list per kernel (default 20)")
    a = ap.parse_args()
    found = kernels(a.csv)
    if not found:
        sys.exit("%s: no kernel with a source table" % a.csv)
    for name, header, rows in found:
        report(name, header, rows, a.top)


if __name__ == "__main__":
    main()
