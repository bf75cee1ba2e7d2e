#!/usr/bin/python3
"""Independent PyTorch reference for rank surgery (surgeon resize / extract /
merge --method cat|svd).

Run from the repository root (Debian's system interpreter, which has torch):

    /usr/bin/python3 tools/refgen/rankgen.py --out surgery/ranks/testdata

It writes, with fixed seeds (byte-identical on every run):

    lora-r16/   a random PEFT LoRA adapter, r=16, lora_alpha=32 (s = 2), on
                q_proj, v_proj and down_proj of core/testdata/reference/
                llama-gqa-f32 (6 modules). The rows of A are scaled by 0.8^i so
                the spectrum of B@A decays and truncation matters.
    lora-r8/    a second adapter, r=8, lora_alpha=8, use_rslora (s = 8/sqrt 8),
                on q_proj and k_proj (q_proj overlaps the first adapter).
    expected.safetensors  (F32)
        resize/<module>.delta     s * B @ A of lora-r16
        resize/<module>.delta_r8  its best rank-8 approximation (truncated SVD)
        sum/<module>              0.7 * (lora-r16 update) + 0.5 * (lora-r8 update)
        svd/<module>              that sum truncated to rank 6
    expected.json
        per module of lora-r16: the singular values of s*B@A (top 16), the
        retained energy and Frobenius truncation error at rank 8, and the
        ranks chosen by energy 0.9, sv_fro 0.9, sv_ratio 4, sv_cumulative 0.7;
        per module of the sum: its singular values (top 24) and energy at rank 6.
    gpt2-smartreview.json
        for the real adapter ../shared/fixtures/peft-lora-gpt2-smartreview
        (read, never copied; its sha256 is recorded): per module, the singular
        values of s*B@A, retained energy and truncation error at rank 4; and for
        the difference of its update and that of checkpoint-2500/ (two
        PEFT-derived weight sets on the same GPT-2 base, which cancels), the
        singular values and energy at rank 8.

Rank selection rules implemented here (the same documented rules the Go code
follows, written independently), for singular values s (descending):
    energy F         smallest k with sum(s[:k]^2) / sum(s^2) >= F
    sv_fro F         smallest k with sqrt(sum(s[:k]^2) / sum(s^2)) >= F
    sv_ratio V       k = #{ s_i >= s_0 / V }
    sv_cumulative F  smallest k with sum(s[:k]) / sum(s) >= F
Everything is computed in float64 with torch.linalg.svd; tensors are stored
as float32.
"""

import argparse
import hashlib
import json
import math
import os
import sys

import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refgen as rg  # noqa: E402  (sets torch threads / determinism)

check = rg.check

BASE = "core/testdata/reference/llama-gqa-f32"
FIXTURE = "../shared/fixtures/peft-lora-gpt2-smartreview"
PREFIX = "base_model.model."


def shapes(cfg):
    h, inter = cfg["hidden_size"], cfg["intermediate_size"]
    kv = cfg["num_key_value_heads"] * (h // cfg["num_attention_heads"])
    return {"q_proj": (h, h), "k_proj": (kv, h), "v_proj": (kv, h),
            "o_proj": (h, h), "gate_proj": (inter, h), "up_proj": (inter, h),
            "down_proj": (h, inter)}


def module_path(layer, name):
    grp = "mlp" if name in ("gate_proj", "up_proj", "down_proj") else "self_attn"
    return "model.layers.%d.%s.%s" % (layer, grp, name)


def make_adapter(cfg, seed, r, alpha, rslora, targets, decay):
    g = torch.Generator().manual_seed(seed)
    sh = shapes(cfg)
    mods = {}
    for layer in range(cfg["num_hidden_layers"]):
        for t in targets:
            out, inp = sh[t]
            a = torch.randn(r, inp, generator=g, dtype=torch.float64) * 0.2
            a *= torch.tensor([decay ** i for i in range(r)], dtype=torch.float64)[:, None]
            b = torch.randn(out, r, generator=g, dtype=torch.float64) * 0.1
            mods[module_path(layer, t)] = (a.float(), b.float())
    s = alpha / math.sqrt(r) if rslora else alpha / r
    return mods, s


def adapter_config(r, alpha, rslora, targets):
    return {
        "alpha_pattern": {}, "base_model_name_or_path": "llama-gqa-f32", "bias": "none",
        "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True,
        "lora_alpha": alpha, "lora_dropout": 0.0, "modules_to_save": None,
        "peft_type": "LORA", "r": r, "rank_pattern": {}, "target_modules": targets,
        "task_type": "CAUSAL_LM", "use_dora": False, "use_rslora": rslora,
    }


def write_adapter(d, mods, cfg):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    ts = []
    for m in sorted(mods):
        a, b = mods[m]
        ts.append((PREFIX + m + ".lora_A.weight", a))
        ts.append((PREFIX + m + ".lora_B.weight", b))
    path = os.path.join(d, "adapter_model.safetensors")
    rg.write_safetensors(path, ts, "F32")
    back = rg.read_safetensors(path)
    for n, t in ts:
        check(torch.equal(back[n], t), "safetensors round trip " + n)


def svd(delta):
    u, s, vh = torch.linalg.svd(delta.double(), full_matrices=False)
    return u, s, vh


def truncate(u, s, vh, k):
    return (u[:, :k] * s[:k]) @ vh[:k]


def energy(s, k):
    s2 = s.double() ** 2
    return float(s2[:k].sum() / s2.sum())


def choose(s, method, value):
    s = [float(x) for x in s]
    sq = sum(x * x for x in s)
    tot = sum(s)
    if method == "energy" or method == "sv_fro":
        target = value if method == "energy" else value * value
        cum = 0.0
        for i, x in enumerate(s):
            cum += x * x
            if cum / sq >= target - 1e-12:
                return i + 1
        return len(s)
    if method == "sv_cumulative":
        cum = 0.0
        for i, x in enumerate(s):
            cum += x
            if cum / tot >= value - 1e-12:
                return i + 1
        return len(s)
    if method == "sv_ratio":
        return sum(1 for x in s if x >= s[0] / value * (1 - 1e-12))
    raise ValueError(method)


SELECTIONS = [("energy", 0.9), ("sv_fro", 0.9), ("sv_ratio", 4.0), ("sv_cumulative", 0.7)]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def read_peft(d):
    with open(os.path.join(d, "adapter_config.json")) as f:
        cfg = json.load(f)
    ts = rg.read_safetensors(os.path.join(d, "adapter_model.safetensors"))
    mods = {}
    for n, t in ts.items():
        k = n[len(PREFIX):]
        for p in ("lora_A.weight", "lora_B.weight"):
            if k.endswith("." + p):
                mods.setdefault(k[:-len(p) - 1], {})[p] = t
    s = cfg["lora_alpha"] / (math.sqrt(cfg["r"]) if cfg.get("use_rslora") else cfg["r"])
    return mods, s


def gpt2(out):
    fx = FIXTURE
    if not os.path.isdir(fx):
        print("  fixture %s missing: gpt2-smartreview.json not written" % fx)
        return
    final, s = read_peft(fx)
    early, s2 = read_peft(os.path.join(fx, "checkpoint-2500"))
    check(s == s2 == 2.0, "both checkpoints have scale 2")
    res = {"generator": rg.generator_string() + ", tools/refgen/rankgen.py",
           "fixture": "peft-lora-gpt2-smartreview",
           "sha256": sha256(os.path.join(fx, "adapter_model.safetensors")),
           "sha256_checkpoint_2500": sha256(os.path.join(fx, "checkpoint-2500", "adapter_model.safetensors")),
           "scale": s, "resize_rank": 4, "extract_rank": 8, "modules": {}}
    for m in sorted(final):
        a, b = final[m]["lora_A.weight"].double(), final[m]["lora_B.weight"].double()
        delta = s * b @ a
        u, sv, vh = svd(delta)
        k = 4
        err = float(torch.linalg.norm(delta - truncate(u, sv, vh, k)))
        check(abs(err - math.sqrt(float((sv[k:] ** 2).sum()))) < 1e-9 * float(sv[0]) + 1e-12, "Eckart-Young " + m)
        a2, b2 = early[m]["lora_A.weight"].double(), early[m]["lora_B.weight"].double()
        diff = delta - s * b2 @ a2
        _, dsv, _ = svd(diff)
        res["modules"][m] = {
            "singular_values": [float(x) for x in sv[:8]],
            "energy_r4": energy(sv, 4),
            "error_r4": err,
            "norm": float(torch.linalg.norm(delta)),
            "diff_singular_values": [float(x) for x in dsv[:16]],
            "diff_energy_r8": energy(dsv, 8),
            "diff_norm": float(torch.linalg.norm(diff)),
        }
        print("  gpt2 %-28s energy@4 %.6f  diff energy@8 %.6f" % (m, res["modules"][m]["energy_r4"], res["modules"][m]["diff_energy_r8"]))
    rg.write_json(os.path.join(out, "gpt2-smartreview.json"), res, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="surgery/ranks/testdata")
    args = ap.parse_args()
    out = args.out
    with open(os.path.join(BASE, "config.json")) as f:
        cfg = json.load(f)

    t16 = ["q_proj", "v_proj", "down_proj"]
    m16, s16 = make_adapter(cfg, 4001, 16, 32, False, t16, 0.8)
    t8 = ["q_proj", "k_proj"]
    m8, s8 = make_adapter(cfg, 4002, 8, 8, True, t8, 0.9)
    write_adapter(os.path.join(out, "lora-r16"), m16, adapter_config(16, 32, False, t16))
    write_adapter(os.path.join(out, "lora-r8"), m8, adapter_config(8, 8, True, t8))

    tensors = []
    exp = {"generator": rg.generator_string() + ", tools/refgen/rankgen.py",
           "resize": {"adapter": "lora-r16", "scale": s16, "rank": 8, "modules": {}},
           "merge": {"adapters": ["lora-r16", "lora-r8"], "weights": [0.7, 0.5], "scales": [s16, s8],
                     "rank": 6, "modules": {}}}
    for m in sorted(m16):
        a, b = m16[m]
        delta = s16 * b.double() @ a.double()
        u, sv, vh = svd(delta)
        d8 = truncate(u, sv, vh, 8)
        err = float(torch.linalg.norm(delta - d8))
        check(abs(err ** 2 - float((sv[8:] ** 2).sum())) < 1e-9, "truncation error " + m)
        exp["resize"]["modules"][m] = {
            "singular_values": [float(x) for x in sv[:16]],
            "energy_r8": energy(sv, 8),
            "error_r8": err,
            "norm": float(torch.linalg.norm(delta)),
            "ranks": {"%s %g" % (meth, v): choose(sv[:16], meth, v) for meth, v in SELECTIONS},
        }
        tensors.append(("resize/%s.delta" % m, delta.float()))
        tensors.append(("resize/%s.delta_r8" % m, d8.float()))
    w = exp["merge"]["weights"]
    for m in sorted(set(m16) | set(m8)):
        total = None
        for mods, s, wi in ((m16, s16, w[0]), (m8, s8, w[1])):
            if m in mods:
                a, b = mods[m]
                d = wi * s * b.double() @ a.double()
                total = d if total is None else total + d
        u, sv, vh = svd(total)
        d6 = truncate(u, sv, vh, 6)
        exp["merge"]["modules"][m] = {"singular_values": [float(x) for x in sv[:24]], "energy_r6": energy(sv, 6),
                                      "error_r6": float(torch.linalg.norm(total - d6))}
        tensors.append(("sum/%s" % m, total.float()))
        tensors.append(("svd/%s" % m, d6.float()))
    rg.write_safetensors(os.path.join(out, "expected.safetensors"), tensors, "F32")
    rg.write_json(os.path.join(out, "expected.json"), exp, indent=1)
    for m, e in exp["resize"]["modules"].items():
        print("  resize %-34s energy@8 %.6f error %.3g ranks %s" % (m, e["energy_r8"], e["error_r8"], e["ranks"]))
    gpt2(out)


if __name__ == "__main__":
    main()
