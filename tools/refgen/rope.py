#!/usr/bin/python3
"""Independent PyTorch references for scaled and partial rotary embeddings
(config.json's rope_scaling and partial_rotary_factor) on Llama, Qwen2 and
Phi-3.

Written in plain PyTorch from the formulas of transformers'
modeling_rope_utils.py (4.56/4.57) and the rotary application of
modeling_llama.py / modeling_phi3.py, eval mode; no transformers code is used.
It reuses refgen.py's safetensors writer, deterministic initialisation and
self-check helpers (and the parameter layouts of decoders.py and
families.py), and writes the same expected.json format into one folder per
case:

    /usr/bin/python3 tools/refgen/rope.py --out core/testdata/reference

Rotary embedding, per rope type (dim = int(head_dim * partial_rotary_factor)
rotated features, base = rope_theta, inverse frequencies computed in float32
like transformers):
  * default:  inv[i] = 1 / base^(2i/dim)
  * linear:   default / factor
  * dynamic:  default with base * (factor*L/max_pos - (factor-1))^(dim/(dim-2)),
              L = max(seq_len, max_position_embeddings)
  * yarn:     per pair i, a ramp r(i) = clamp((i - lo)/(hi - lo), 0, 1) over the
              pair index between lo = floor(d(beta_fast)) and
              hi = ceil(d(beta_slow)), d(n) = dim*ln(orig/(2*pi*n))/(2 ln base),
              orig = rope_scaling's original_max_position_embeddings or
              max_position_embeddings; inv = default/factor * r + default * (1-r);
              cos and sin times 0.1*ln(factor) + 1
  * longrope: inv[i] = 1 / (ext[i] * base^(2i/dim)), ext = long_factor when the
              sequence is longer than original_max_position_embeddings (the
              top-level key, Phi-3's) else short_factor; cos and sin times
              sqrt(1 + ln(s)/ln(orig)), s = max_pos/orig
  * llama3:   wavelength w = 2*pi/inv; w < orig/high_freq_factor unchanged,
              w > orig/low_freq_factor divided by factor, in between
              (1-s)*inv/factor + s*inv with s = (orig/w - low)/(high - low)
The sequence length is the largest position id + 1 of the forward pass (the
padded length for a batch). The first dim features of each head turn as
pairs (i, i + dim/2) in the rotate-half convention; the others pass through.

Self-checks before writing: causality wherever the frequencies do not depend
on the length, masked batch rows equal unpadded runs when the batch's length
selects the same frequencies (and differ when it does not: longrope and
dynamic switch with the padded length), float32 vs float64 noise, that every
scaling and partial rotation moves the logits far beyond that noise (the
default rope, no smoothing, no ramp, no attention factor, short factors on a
long sequence, the rotated features taken from the end of the head), and that
the unscaled default reduces to refgen's Llama.
"""

import argparse
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decoders  # noqa: E402
import families  # noqa: E402
import refgen  # noqa: E402
from refgen import (Init, check, f32list, generator_string, maxdiff,  # noqa: E402
                    rms_norm, rotate_half, round_to, save_weights, sensitivity,
                    write_json, TORCH_DTYPE_NAME)


# --------------------------------------------------------------------------
# rotary tables
# --------------------------------------------------------------------------

def rope_type(rs):
    if rs is None:
        return "default"
    return rs.get("rope_type", rs.get("type"))


def rot_dim(cfg):
    return int(cfg["head_dim"] * cfg.get("partial_rotary_factor", 1.0))


def inv_freq(cfg, seq_len, dtype, variant=None):
    """Inverse frequencies [dim/2] and the attention factor for a forward
    pass over seq_len tokens."""
    rs = cfg.get("rope_scaling")
    typ = rope_type(rs)
    if variant == "default_rope":
        typ = "default"
    base = cfg["rope_theta"]
    dim = rot_dim(cfg)
    expo = torch.arange(0, dim, 2, dtype=torch.int64).to(dtype) / dim

    def plain(b):
        return 1.0 / (b ** expo)

    if typ == "default":
        return plain(base), 1.0
    if typ == "linear":
        return plain(base) / rs["factor"], 1.0
    if typ == "dynamic":
        mp = cfg["max_position_embeddings"]
        L = max(seq_len, mp)
        f = rs["factor"]
        return plain(base * ((f * L / mp) - (f - 1)) ** (dim / (dim - 2))), 1.0
    if typ == "yarn":
        f = rs["factor"]
        orig = rs.get("original_max_position_embeddings") or cfg["max_position_embeddings"]
        fast = rs.get("beta_fast") or 32
        slow = rs.get("beta_slow") or 1

        def corr_dim(n):
            return dim * math.log(orig / (n * 2 * math.pi)) / (2 * math.log(base))
        lo = max(math.floor(corr_dim(fast)), 0)
        hi = min(math.ceil(corr_dim(slow)), dim - 1)
        if lo == hi:
            hi += 0.001
        ramp = ((torch.arange(dim // 2, dtype=dtype) - lo) / (hi - lo)).clamp(0, 1)
        if variant == "no_ramp":
            ramp = torch.ones_like(ramp)
        pos = base ** expo
        inv = (1.0 / (f * pos)) * ramp + (1.0 / pos) * (1 - ramp)
        att = rs.get("attention_factor") or (0.1 * math.log(f) + 1.0 if f > 1 else 1.0)
        if variant == "no_attention_factor":
            att = 1.0
        return inv, att
    if typ == "longrope":
        orig = cfg["original_max_position_embeddings"]
        s = cfg["max_position_embeddings"] / orig
        long_ = seq_len > orig and variant != "short_only"
        ext = torch.tensor(rs["long_factor"] if long_ else rs["short_factor"], dtype=dtype)
        att = math.sqrt(1 + math.log(s) / math.log(orig)) if s > 1 else 1.0
        if variant == "no_attention_factor":
            att = 1.0
        return 1.0 / (ext * base ** expo), att
    if typ == "llama3":
        inv = plain(base)
        f = rs["factor"]
        low, high = rs["low_freq_factor"], rs["high_freq_factor"]
        orig = rs["original_max_position_embeddings"]
        wave = 2 * math.pi / inv
        out = inv.clone()
        for i in range(inv.shape[0]):
            if wave[i] < orig / high:
                continue
            if wave[i] > orig / low:
                out[i] = inv[i] / f
            elif variant != "no_smoothing":
                sm = (orig / wave[i] - low) / (high - low)
                out[i] = (1 - sm) * inv[i] / f + sm * inv[i]
        return out, 1.0
    raise ValueError(typ)


def rotary(cfg, T, dtype, variant=None):
    """rope(x) for x [B, heads, T, head_dim] at positions 0..T-1."""
    inv, att = inv_freq(cfg, T, dtype, variant)
    dim = 2 * inv.shape[0]
    freqs = torch.outer(torch.arange(T, dtype=dtype), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos() * att, emb.sin() * att

    def rope(x):
        if variant == "rotate_tail":  # the rotated features taken from the end
            keep, r = x[..., : x.shape[-1] - dim], x[..., x.shape[-1] - dim:]
            return torch.cat((keep, r * cos + rotate_half(r) * sin), dim=-1)
        r, keep = x[..., :dim], x[..., dim:]
        return torch.cat((r * cos + rotate_half(r) * sin, keep), dim=-1)
    return rope


def same_freqs(cfg, a, b):
    x, fa = inv_freq(cfg, a, torch.float64)
    y, fb = inv_freq(cfg, b, torch.float64)
    return fa == fb and torch.equal(x, y)


# --------------------------------------------------------------------------
# forward (Llama, Qwen2 biases, Phi-3 fused projections)
# --------------------------------------------------------------------------

def forward(cfg, W, fam, input_ids, attention_mask=None, dtype=torch.float32, variant=None):
    W = {k: v.to(dtype) for k, v in W.items()}
    nh = cfg["num_attention_heads"]
    nkv = cfg["num_key_value_heads"]
    hd = cfg["head_dim"]
    I = cfg["intermediate_size"]
    rep = nh // nkv
    eps = cfg["rms_norm_eps"]
    B, T = input_ids.shape
    rope = rotary(cfg, T, dtype, variant)

    allowed = torch.ones(T, T, dtype=torch.bool).tril().view(1, 1, T, T).expand(B, 1, T, T)
    if attention_mask is not None:
        allowed = allowed & attention_mask.bool().view(B, 1, 1, T)
    mask = torch.zeros(B, 1, T, T, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)

    def lin(h, name):
        y = h @ W[name + ".weight"].T
        if name + ".bias" in W:
            y = y + W[name + ".bias"]
        return y

    x = W["model.embed_tokens.weight"][input_ids]
    for i in range(cfg["num_hidden_layers"]):
        pre = "model.layers.%d." % i
        h = rms_norm(x, W[pre + "input_layernorm.weight"], eps)
        if fam == "phi3":
            qkv = h @ W[pre + "self_attn.qkv_proj.weight"].T
            q, k, v = qkv[..., : nh * hd], qkv[..., nh * hd: (nh + nkv) * hd], qkv[..., (nh + nkv) * hd:]
        else:
            q, k, v = lin(h, pre + "self_attn.q_proj"), lin(h, pre + "self_attn.k_proj"), lin(h, pre + "self_attn.v_proj")
        q = rope(q.reshape(B, T, nh, hd).transpose(1, 2))
        k = rope(k.reshape(B, T, nkv, hd).transpose(1, 2))
        v = v.reshape(B, T, nkv, hd).transpose(1, 2)
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, dim=-1)
        a = (probs @ v).transpose(1, 2).reshape(B, T, nh * hd)
        x = x + a @ W[pre + "self_attn.o_proj.weight"].T
        h = rms_norm(x, W[pre + "post_attention_layernorm.weight"], eps)
        if fam == "phi3":
            gu = h @ W[pre + "mlp.gate_up_proj.weight"].T
            g, u = gu[..., :I], gu[..., I:]
        else:
            g, u = h @ W[pre + "mlp.gate_proj.weight"].T, h @ W[pre + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ W[pre + "mlp.down_proj.weight"].T
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
    return x @ head.T


# --------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------

CASES = [
    # Llama 3.1's scaling; rope_theta 1e4 and original_max_position_embeddings
    # 64 put head_dim 16's pairs in all three bands (wavelengths 6.3 < 16;
    # 20 and 63 smoothed; 199 and up divided by 8).
    dict(name="rope-llama3-f32", family="llama", seed=7001, hidden=64, inter=128, layers=2, heads=4, kv=2,
         vocab=96, theta=10000, tied=False, dtype="F32", batch=True, max_pos=256,
         rope_scaling={"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                       "original_max_position_embeddings": 64, "rope_type": "llama3"},
         embed_std=1.0, proj_std=0.15, head_std=0.15, lengths=[6, 13, 20],
         variants=["default_rope", "no_smoothing"]),
    # Linear scaling with the older "type" key, tied, F16 weights.
    dict(name="rope-llama-linear-f16", family="llama", seed=7002, hidden=32, inter=88, layers=2, heads=4, kv=4,
         vocab=128, theta=10000, tied=True, dtype="F16", batch=False, max_pos=128,
         rope_scaling={"factor": 2.0, "type": "linear"},
         embed_std=0.3, proj_std=0.2, head_std=None, lengths=[6, 9, 14],
         variants=["default_rope"]),
    # Dynamic NTK: max_position_embeddings 8, so the 13-token input (and the
    # batch padded to 13) grows the base while 6 and 8 tokens do not.
    dict(name="rope-llama-dynamic-f32", family="llama", seed=7003, hidden=32, inter=96, layers=2, heads=2, kv=1,
         vocab=96, theta=10000, tied=False, dtype="F32", batch=True, max_pos=8,
         rope_scaling={"factor": 4.0, "rope_type": "dynamic"},
         embed_std=1.0, proj_std=0.2, head_std=0.2, lengths=[6, 8, 13],
         variants=["default_rope"]),
    # YaRN on Qwen2 (q/k/v biases), BF16 weights; rope_theta 100 and
    # original_max_position_embeddings 64 spread the ramp over pairs 0..5.
    dict(name="rope-qwen2-yarn-bf16", family="qwen2", seed=7004, hidden=64, inter=128, layers=2, heads=4, kv=2,
         vocab=96, theta=100, tied=False, dtype="BF16", batch=True, max_pos=256,
         rope_scaling={"factor": 4.0, "original_max_position_embeddings": 64, "rope_type": "yarn"},
         embed_std=1.0, proj_std=0.15, head_std=0.15, lengths=[5, 9, 14],
         variants=["default_rope", "no_ramp", "no_attention_factor"]),
    # Phi-3 LongRoPE (Phi-3.5 / Phi-4-mini style) with partial_rotary_factor
    # 0.75: 12 of head_dim 16 features turn. original_max_position_embeddings
    # 8, max_position_embeddings 32: inputs of 5 and 8 tokens use the short
    # factors, 12 tokens the long ones, and so does the batch padded to 12.
    dict(name="rope-phi3-longrope-partial-f32", family="phi3", seed=7005, hidden=64, inter=128, layers=2, heads=4,
         kv=2, vocab=96, theta=10000, tied=False, dtype="F32", batch=True, max_pos=32, orig_max_pos=8,
         partial=0.75,
         rope_scaling={"long_factor": [1.0, 1.25, 2.0, 3.5, 6.0, 10.0],
                       "short_factor": [1.0, 1.05, 1.2, 1.5, 1.8, 2.2], "type": "longrope"},
         embed_std=1.0, proj_std=0.15, head_std=0.15, lengths=[5, 8, 12],
         variants=["default_rope", "short_only", "no_attention_factor", "rotate_tail"]),
]


def make_config(c):
    fam = c["family"]
    if fam == "llama":
        cfg = refgen.llama_config(c["hidden"], c["inter"], c["layers"], c["heads"], c["kv"],
                                  c["vocab"], c["theta"], c["tied"], c["dtype"])
        cfg["transformers_version"] = "4.56.0"
    elif fam == "qwen2":
        cfg = families.family_config(dict(c, head_dim=c["hidden"] // c["heads"]))
    else:
        cfg = decoders.dec_config(dict(c, window=None))
    cfg["max_position_embeddings"] = c["max_pos"]
    cfg["rope_scaling"] = c["rope_scaling"]
    if "orig_max_pos" in c:
        cfg["original_max_position_embeddings"] = c["orig_max_pos"]
    if "partial" in c:
        cfg["partial_rotary_factor"] = c["partial"]
    return cfg


def make_params(c, fcfg, init):
    fam = c["family"]
    if fam == "qwen2":
        return families.family_params(fcfg, init, "qwen2", c["proj_std"], c["embed_std"], c["head_std"])
    return decoders.dec_params(fcfg, init, fam, c["proj_std"], c["embed_std"], c["head_std"])


def run(c, outroot, gen):
    print("== %s" % c["name"])
    fam = c["family"]
    cfg = make_config(c)
    fcfg = dict(cfg, head_dim=c["hidden"] // c["heads"])
    init = Init(c["seed"])
    raw = make_params(c, fcfg, init)
    params = round_to(raw, c["dtype"])
    W = dict(params)
    outdir = os.path.join(outroot, c["name"])
    os.makedirs(outdir, exist_ok=True)
    write_json(os.path.join(outdir, "config.json"), cfg, indent=2)
    loaded = save_weights(outdir, raw, c["dtype"], None, c["layers"])
    check(set(loaded) == set(W), "safetensors names differ")
    for n in W:
        check(torch.equal(loaded[n], W[n]), "safetensors round trip differs for " + n)

    inv, att = inv_freq(fcfg, max(c["lengths"]), torch.float64)
    print("    rotated %d of %d features, attention factor %.4f, inv_freq %s"
          % (2 * inv.shape[0], fcfg["head_dim"], att, [float("%.4g" % v) for v in inv]))
    inputs = [[cfg["bos_token_id"]] + init.ints(L - 1, 3, c["vocab"]) for L in c["lengths"]]
    logits, noise = [], 0.0
    for ids in inputs:
        t = torch.tensor([ids])
        y = forward(fcfg, W, fam, t)[0]
        y64 = forward(fcfg, W, fam, t, dtype=torch.float64)[0]
        noise = max(noise, maxdiff(y, y64))
        checked = 0
        for p in range(1, len(ids)):
            if not same_freqs(fcfg, p, len(ids)):
                continue  # the frequencies depend on the length here
            yp = forward(fcfg, W, fam, torch.tensor([ids[:p]]))[0]
            d = maxdiff(yp, y[:p])
            check(d < 1e-5 * max(1.0, float(y.abs().max())), "causality violated at prefix %d (%g)" % (p, d))
            checked += 1
        print("    %d tokens: causal over %d prefixes" % (len(ids), checked))
        logits.append(y)
    print("    logits std %.3f, max|.| %.3f, f32 vs f64 max diff %.2g"
          % (float(torch.cat(logits).std()), float(torch.cat(logits).abs().max()), noise))
    check(len(set(torch.cat(logits).argmax(-1).tolist())) > 2, "argmax nearly constant")

    base = logits[-1]
    t = torch.tensor([inputs[-1]])
    for v in c["variants"]:
        sensitivity(v, base, forward(fcfg, W, fam, t, variant=v)[0], noise)
    # Without rope_scaling and partial rotation the reference is refgen's Llama.
    if fam == "llama":
        plain = dict(fcfg, rope_scaling=None)
        d = maxdiff(forward(plain, W, fam, t)[0], refgen.llama_forward(plain, W, t)[0])
        check(d < 1e-5, "default rope differs from refgen's llama by %g" % d)
        print("    unscaled == refgen llama (max diff %.2g)" % d)

    exp = {
        "generator": gen,
        "case": c["name"],
        "compute_dtype": "float32",
        "max_abs_diff_vs_float64": float("%.3g" % noise),
        "inputs": inputs,
        "logits": [f32list(y) for y in logits],
    }
    if c["batch"]:
        seqs = [inputs[0], inputs[-1]]
        T = max(len(s) for s in seqs)
        pad = cfg["pad_token_id"]
        ids = [s + [pad] * (T - len(s)) for s in seqs]
        mask = [[1] * len(s) + [0] * (T - len(s)) for s in seqs]
        yb = forward(fcfg, W, fam, torch.tensor(ids), torch.tensor(mask))
        for b, s in enumerate(seqs):
            d = maxdiff(yb[b, :len(s)], logits[0 if b == 0 else -1])
            if same_freqs(fcfg, T, len(s)):
                check(d < 1e-5, "batch row %d differs (%g)" % (b, d))
            else:
                # The padded length selects other frequencies than the
                # sequence alone (longrope, dynamic): so the row moves.
                check(d > 1000 * max(noise, 1e-6), "batch row %d does not see the padded length (%g)" % (b, d))
                print("    batch row %d (%d tokens) uses the frequencies of %d: moves by %.3g" % (b, len(s), T, d))
        exp["batch"] = {
            "pad_token_id": pad,
            "input_ids": ids,
            "attention_mask": mask,
            "logits": [f32list(yb[b]) for b in range(len(seqs))],
        }
        print("    batch ok (T=%d, lengths %s)" % (T, [len(s) for s in seqs]))
    write_json(os.path.join(outdir, "expected.json"), exp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output root, e.g. core/testdata/reference")
    args = ap.parse_args()
    gen = generator_string().replace("tools/refgen/refgen.py", "tools/refgen/rope.py")
    print(gen)
    for c in CASES:
        run(c, args.out, gen)
    print("all self-checks passed")


if __name__ == "__main__":
    main()
