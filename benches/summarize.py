#!/usr/bin/env python3
"""Summarize a bench.sh RESULTS file (TSV) as tessera-versus-node medians.

    python3 benches/summarize.py RESULTS --tessera URL [--node URL] [--skip LINES]

RESULTS lines (written by the peers' bench.sh and benches/run.sh):
    ts base_url workload rep rps p50_ms p99_ms non2xx sockerr server_cores loadgen_cores other_cores busy% tool
or, for a skipped workload:
    ts base_url workload N/A reason
--skip ignores the first LINES lines (results of earlier runs appended to the same file).
"""
import argparse
import statistics
import sys

ORDER = ["w1", "w1o", "w2", "w3", "verify", "gateway", "hello"]


def load(path, skip):
    runs, na = {}, {}
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i < skip:
                continue
            c = line.rstrip("\n").split("\t")
            if len(c) >= 5 and c[3] == "N/A":
                na[(c[1], c[2])] = c[4]
                continue
            if len(c) < 13:
                continue
            try:
                rec = {
                    "rps": float(c[4]), "p50": float(c[5]), "p99": float(c[6]),
                    "non2xx": int(c[7]), "sockerr": int(c[8]),
                    "srv": float(c[9]) if c[9] != "n/a" else None,
                    "other": float(c[11]) if c[11] != "n/a" else None,
                }
            except ValueError:
                continue
            runs.setdefault((c[1], c[2]), []).append(rec)
    return runs, na


def med(recs, k):
    xs = [r[k] for r in recs if r[k] is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec):
    width = "".join(ch for ch in spec.split(".")[0] if ch.isdigit())
    return format("-", ">" + width) if x is None else format(x, spec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--tessera", required=True)
    ap.add_argument("--node")
    ap.add_argument("--skip", type=int, default=0)
    a = ap.parse_args()
    runs, na = load(a.results, a.skip)
    names = {w for (_, w) in list(runs) + list(na)}
    names = sorted(names, key=lambda w: (ORDER.index(w) if w in ORDER else 99, w))
    hdr = (f"{'workload':<8} {'tessera rps':>12} {'p50 ms':>8} {'p99 ms':>8} {'srv cores':>9} "
           f"{'non2xx':>7} | {'node rps':>10} {'p99 ms':>8} | {'ratio':>6}  notes")
    print(hdr)
    print("-" * len(hdr))
    for w in names:
        t = runs.get((a.tessera, w), [])
        n = runs.get((a.node, w), []) if a.node else []
        notes = []
        t_rps, n_rps = med(t, "rps"), med(n, "rps")
        if not t and (a.tessera, w) in na:
            notes.append("tessera N/A: " + na[(a.tessera, w)][:90])
        if a.node and not n and (a.node, w) in na:
            notes.append("node N/A: " + na[(a.node, w)][:60])
        bad = sum(r["non2xx"] + r["sockerr"] for r in t)
        if bad:
            notes.append(f"tessera errors: {bad} non-2xx/socket")
        nbad = sum(r["non2xx"] + r["sockerr"] for r in n)
        if nbad:
            notes.append(f"node errors: {nbad}")
        t_oth = max([r["other"] for r in t if r["other"] is not None], default=0.0)
        n_oth = max([r["other"] for r in n if r["other"] is not None], default=0.0)
        if max(t_oth, n_oth) >= 0.2:
            notes.append(f"noisy (other cores busy, max): tessera {t_oth:.2f}" + (f", node {n_oth:.2f}" if n else ""))
        ratio = (t_rps / n_rps) if (t_rps and n_rps) else None
        print(f"{w:<8} {fmt(t_rps, '12.1f')} {fmt(med(t, 'p50'), '8.2f')} {fmt(med(t, 'p99'), '8.2f')} "
              f"{fmt(med(t, 'srv'), '9.2f')} {sum(r['non2xx'] for r in t) if t else '-':>7} | "
              f"{fmt(n_rps, '10.1f')} {fmt(med(n, 'p99'), '8.2f')} | "
              f"{(fmt(ratio, '5.2f') + 'x') if ratio else '-':>6}  {'; '.join(notes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
