#!/usr/bin/env python3
"""Markdown tables from the results file written by tools/bench/run.sh.

Usage: table.py RESULTS.tsv

Each line of RESULTS.tsv is

    round <TAB> side <TAB> name <TAB> value <TAB> unit <TAB> others

side is "go", "torch", "cat" or "other" (the repository's remaining Go
benchmarks); others is the CPU (in cores) that processes other than the
measured one used while it ran. Across rounds the best value is kept (the
highest throughput, the lowest time or memory): the machine is shared and
contention only ever slows a run down. Standard library only.
"""

import collections
import sys

# (label, unit, go name, peer names, higher is better, goal on surgeon/peer)
ROWS = []
for shape, goal in (("1024x768x3072", 0.8), ("1024x768x8", 0.6), ("1024x8x768", 0.6)):
    m, k, n = shape.split("x")
    for op, desc in (("NN", "B [k,n]"), ("NT", "B [n,k]")):
        ROWS.append(("Sgemm %s %sx%s * %sx%s (%s)" % (op, m, k, k, n, desc), "GFLOP/s",
                     "BenchmarkSgemm/%s/%s" % (op, shape),
                     ["sgemm/%s/%s/torch" % (op, shape), "sgemm/%s/%s/numpy" % (op, shape)],
                     True, (">=", goal)))
# Both sides held to AVX2 + FMA (surgeon's 6x16 kernel, OpenBLAS's Haswell
# kernels), as on CPUs without AVX-512; measured on CPUs that have it.
for op in ("NN", "NT"):
    ROWS.append(("Sgemm %s 1024x768 * 768x3072, both held to AVX2 (surgeon 6x16 kernel, OpenBLAS Haswell)" % op,
                 "GFLOP/s", "BenchmarkSgemm/%s-avx2/1024x768x3072" % op,
                 ["sgemm/%s/1024x768x3072/%s@avx2" % (op, lib) for lib in ("torch", "numpy")],
                 True, (">=", 0.8)))
ROWS += [
    ("BERT-base LoRA step, 8x128 (s/step)", "s/step", "BenchmarkLoRAStepBERTBase:s/step",
     ["bert-step/min"], False, ("<=", 1.0)),
    ("BERT-base LoRA step, peak RSS", "MiB", "BenchmarkLoRAStepBERTBase:peak-RSS-MiB",
     ["bert-step/peak-rss"], False, ("<=", 1.0)),
    ("stories260K LoRA training, 32x64", "tokens/s", "BenchmarkLoRATrainStories:tokens/s",
     ["stories-train/tokens"], True, (">=", 3.0)),
    ("stories260K LoRA training, peak RSS", "MiB", "BenchmarkLoRATrainStories:peak-RSS-MiB",
     ["stories-train/peak-rss"], False, None),
]
ROWS.append(("stories260K LoRA training, 32x64, vs PyTorch on 1 thread", "tokens/s",
             "BenchmarkLoRATrainStories:tokens/s", ["stories-train/tokens@1t"], True, (">=", 3.0)))
for b in ("1x64", "8x64", "32x64"):
    ROWS.append(("stories260K forward, %s" % b, "tokens/s", "BenchmarkForwardStories/%s" % b,
                 ["stories-forward/%s" % b], True, None))
    ROWS.append(("stories260K forward, %s, vs PyTorch on 1 thread" % b, "tokens/s",
                 "BenchmarkForwardStories/%s" % b, ["stories-forward/%s@1t" % b], True, None))

LOWER_UNITS = {"s/step", "MiB", "peak-RSS-MiB", "ns/op", "B/op", "allocs/op", "s"}


def load(path):
    """Returns {(side, name, unit): [(value, others), ...]}."""
    res = collections.defaultdict(list)
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 6:
                continue
            _, side, name, value, unit, others = parts
            try:
                res[(side, name, unit)].append((float(value), float(others)))
            except ValueError:
                pass
    return res


def best(vals, higher):
    return (max if higher else min)(vals, key=lambda v: v[0])


def fmt(v):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1000:
        return "%.0f" % v
    if a >= 100:
        return "%.1f" % v
    if a >= 1:
        return "%.2f" % v
    return "%.3g" % v


def lookup(res, side, name, unit):
    if ":" in name:
        name, unit = name.split(":", 1)
    return res.get((side, name, unit))


def main():
    res = load(sys.argv[1])
    print("| measurement | unit | surgeon | PyTorch | ratio surgeon/PyTorch | goal | met | other load (cores) |")
    print("|---|---|---:|---:|---:|---|---|---:|")
    for label, unit, goname, peers, higher, goal in ROWS:
        g = lookup(res, "go", goname, unit)
        gv = best(g, higher) if g else None
        pv, pname = None, ""
        for p in peers:
            r = lookup(res, "torch", p, unit if unit != "MiB" else "MiB")
            if r:
                v = best(r, higher)
                if pv is None or (v[0] > pv[0] if higher else v[0] < pv[0]):
                    pv, pname = v, p.rsplit("/", 1)[-1]
        ratio = gv[0] / pv[0] if gv and pv and pv[0] else None
        met = "-"
        if goal and ratio is not None:
            met = "yes" if (ratio >= goal[1] if goal[0] == ">=" else ratio <= goal[1]) else "**no**"
        peer = fmt(pv[0] if pv else None)
        if pname.split("@")[0] in ("torch", "numpy"):
            peer += " (%s)" % pname.split("@")[0]
        load_ = max([v[1] for v in (gv, pv) if v] or [0])
        print("| %s | %s | %s | %s | %s | %s | %s | %.2f |" % (
            label, unit, fmt(gv[0] if gv else None), peer, fmt(ratio),
            "%s %s" % goal if goal else "", met, load_))

    # I/O against cat: decoding a whole F16 or BF16 file to float32 against
    # `cat FILE > /dev/null` on the same file (best rounds of each), and
    # against the benchmark's own read loop in the same iterations.
    rows = sorted(k for k in res if k[0] == "go" and k[1].startswith("BenchmarkReadToF32/") and k[2] == "GB/s")
    if rows or any(k[0] == "cat" for k in res):
        print()
        print("| safetensors read to F32 (1 GiB-class file in the page cache) | surgeon GB/s "
              "| `cat FILE > /dev/null` GB/s | ratio | goal | met | same-run read loop GB/s | ratio to it "
              "| other load (cores) |")
        print("|---|---:|---:|---:|---|---|---:|---:|---:|")
        for key in rows:
            name = key[1]
            dtype = name.split("/")[1]
            gv = best(res[key], True)
            cat = res.get(("cat", "cat/" + dtype, "GB/s"))
            cv = best(cat, True) if cat else None
            size = res.get(("cat", "file-size/" + dtype, "B"))
            label = name + (" (%.0f MiB)" % (size[0][0] / 2**20) if size else "")
            ratio = gv[0] / cv[0] if cv and cv[0] else None
            met = "-" if ratio is None else ("yes" if ratio >= 0.5 else "**no**")
            rl = res.get(("go", name, "read-GB/s"))
            xr = res.get(("go", name, "x-read"))
            print("| %s | %s | %s | %s | >= 0.5 | %s | %s | %s | %.2f |" % (
                label, fmt(gv[0]), fmt(cv[0] if cv else None), fmt(ratio), met,
                fmt(best(rl, True)[0] if rl else None), fmt(best(xr, True)[0] if xr else None),
                max(gv[1], cv[1] if cv else 0)))

    # The repository's other Go benchmarks, as measured.
    other = collections.OrderedDict()
    for (side, name, unit), vals in res.items():
        if side == "other":
            other.setdefault(name, []).append((unit, best(vals, unit not in LOWER_UNITS)))
    if other:
        print()
        print("Other Go benchmarks of the repository (`-benchtime 3x`, not compared):")
        print()
        print("| benchmark | metrics |")
        print("|---|---|")
        for name, ms in other.items():
            print("| %s | %s |" % (name, ", ".join("%s %s" % (fmt(v[0]), u) for u, v in ms)))


if __name__ == "__main__":
    main()
