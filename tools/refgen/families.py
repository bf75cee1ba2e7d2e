#!/usr/bin/python3
"""Independent PyTorch references for the decoder families built on the Llama
implementation: Qwen2 (q/k/v biases) and Qwen3 (per-head RMSNorm of q and k
before RoPE, head_dim independent of hidden_size).

Written from the published architectures (transformers' modeling_qwen2.py and
modeling_qwen3.py, eval mode), in plain PyTorch; it reuses refgen.py's
safetensors writer, deterministic initialisation and self-check helpers, and
writes the same expected.json format into one folder per case:

    /usr/bin/python3 tools/refgen/families.py --out core/testdata/reference

Self-checks before writing: causality, masked batch rows equal unpadded runs,
float32 vs float64 noise, that plausible mistakes (biases dropped, o_proj
given a bias, q/k norms skipped or applied after RoPE) change the logits by much more than the noise, and that the
families reduce to Llama where they should (Qwen2 with zero biases equals
refgen.llama_forward on the same weights).
"""

import argparse
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refgen  # noqa: E402
from refgen import (Init, check, f32list, generator_string, maxdiff,  # noqa: E402
                    rms_norm, rotate_half, round_to, save_weights, sensitivity,
                    write_json, TORCH_DTYPE_NAME)


def family_params(cfg, init, family, s, embed_std, head_std):
    H = cfg["hidden_size"]
    I = cfg["intermediate_size"]
    V = cfg["vocab_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg["num_key_value_heads"]
    hd = cfg["head_dim"]
    p = [("model.embed_tokens.weight", init.normal((V, H), embed_std))]
    for i in range(cfg["num_hidden_layers"]):
        pre = "model.layers.%d." % i
        p += [
            (pre + "input_layernorm.weight", init.normal((H,), 0.1, 1.0)),
            (pre + "self_attn.q_proj.weight", init.normal((nh * hd, H), s)),
        ]
        if family == "qwen2":
            p.append((pre + "self_attn.q_proj.bias", init.normal((nh * hd,), 0.3)))
        p.append((pre + "self_attn.k_proj.weight", init.normal((nkv * hd, H), s)))
        if family == "qwen2":
            p.append((pre + "self_attn.k_proj.bias", init.normal((nkv * hd,), 0.3)))
        p.append((pre + "self_attn.v_proj.weight", init.normal((nkv * hd, H), s)))
        if family == "qwen2":
            p.append((pre + "self_attn.v_proj.bias", init.normal((nkv * hd,), 0.3)))
        p.append((pre + "self_attn.o_proj.weight", init.normal((H, nh * hd), s)))
        if family == "qwen3":
            p += [
                (pre + "self_attn.q_norm.weight", init.normal((hd,), 0.3, 1.0)),
                (pre + "self_attn.k_norm.weight", init.normal((hd,), 0.3, 1.0)),
            ]
        p += [
            (pre + "post_attention_layernorm.weight", init.normal((H,), 0.1, 1.0)),
            (pre + "mlp.gate_proj.weight", init.normal((I, H), s)),
            (pre + "mlp.up_proj.weight", init.normal((I, H), s)),
            (pre + "mlp.down_proj.weight", init.normal((H, I), s)),
        ]
    p.append(("model.norm.weight", init.normal((H,), 0.1, 1.0)))
    if not cfg["tie_word_embeddings"]:
        p.append(("lm_head.weight", init.normal((V, H), head_std)))
    return p


def family_forward(cfg, W, family, input_ids, attention_mask=None, dtype=torch.float32, variant=None):
    """Logits [B, T, V] of Qwen2ForCausalLM / Qwen3ForCausalLM (eval mode).

    `variant` introduces a plausible mistake, for the sensitivity checks."""
    W = {k: v.to(dtype) for k, v in W.items()}
    nh = cfg["num_attention_heads"]
    nkv = cfg["num_key_value_heads"]
    hd = cfg["head_dim"]
    rep = nh // nkv
    eps = cfg["rms_norm_eps"]
    B, T = input_ids.shape

    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).to(dtype) / hd))
    pos = torch.arange(T, dtype=dtype)
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()

    def rope(x):
        return x * cos + rotate_half(x) * sin

    minval = torch.finfo(dtype).min
    allowed = torch.ones(T, T, dtype=torch.bool).tril().view(1, 1, T, T).expand(B, 1, T, T)
    if attention_mask is not None:
        allowed = allowed & attention_mask.bool().view(B, 1, 1, T)
    mask = torch.zeros(B, 1, T, T, dtype=dtype).masked_fill(~allowed, minval)

    def proj(h, name, bias):
        y = h @ W[name + ".weight"].T
        if bias and variant != "no_bias":
            y = y + W[name + ".bias"]
        return y

    x = W["model.embed_tokens.weight"][input_ids]
    for i in range(cfg["num_hidden_layers"]):
        pre = "model.layers.%d." % i
        h = rms_norm(x, W[pre + "input_layernorm.weight"], eps)
        qb = family == "qwen2"
        q = proj(h, pre + "self_attn.q_proj", qb)
        k = proj(h, pre + "self_attn.k_proj", qb)
        v = proj(h, pre + "self_attn.v_proj", qb)
        q = q.view(B, T, nh, hd)
        k = k.view(B, T, nkv, hd)
        v = v.view(B, T, nkv, hd).transpose(1, 2)
        if family == "qwen3" and variant not in ("no_qknorm", "qknorm_after_rope"):
            q = rms_norm(q, W[pre + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, W[pre + "self_attn.k_norm.weight"], eps)
        q, k = rope(q.transpose(1, 2)), rope(k.transpose(1, 2))
        if family == "qwen3" and variant == "qknorm_after_rope":
            q = rms_norm(q, W[pre + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, W[pre + "self_attn.k_norm.weight"], eps)
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd) + mask
        probs = torch.softmax(scores, dim=-1)
        a = (probs @ v).transpose(1, 2).reshape(B, T, nh * hd)
        o = a @ W[pre + "self_attn.o_proj.weight"].T
        if variant == "o_bias":
            o = o + W[pre + "self_attn.q_proj.bias"][: o.shape[-1]]
        x = x + o
        h = rms_norm(x, W[pre + "post_attention_layernorm.weight"], eps)
        g = h @ W[pre + "mlp.gate_proj.weight"].T
        u = h @ W[pre + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ W[pre + "mlp.down_proj.weight"].T
    x = rms_norm(x, W["model.norm.weight"], eps)
    if "score.weight" in W:
        # *ForSequenceClassification: the score head on each sequence's
        # last non-padding token (HF finds it from pad_token_id; with right
        # padding that is the last position the mask keeps).
        logits = x @ W["score.weight"].T
        if attention_mask is None:
            last = torch.full((B,), T - 1, dtype=torch.long)
        else:
            last = attention_mask.sum(-1) - 1
        if variant == "pool_first":
            last = torch.zeros_like(last)
        return logits[torch.arange(B), last]
    head = W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
    return x @ head.T


def family_config(c):
    arch = {"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}[c["family"]]
    cfg = {
        "architectures": [arch],
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": c["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": c["inter"],
        "max_position_embeddings": 64,
        "max_window_layers": c["layers"],
        "model_type": c["family"],
        "num_attention_heads": c["heads"],
        "num_hidden_layers": c["layers"],
        "num_key_value_heads": c["kv"],
        "pad_token_id": 0,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": float(c["theta"]),
        "sliding_window": None,
        "tie_word_embeddings": c["tied"],
        "torch_dtype": TORCH_DTYPE_NAME[c["dtype"]],
        "transformers_version": "4.51.0",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": c["vocab"],
    }
    if c["family"] == "qwen3":
        cfg["attention_bias"] = False
        cfg["head_dim"] = c["head_dim"]
    if c.get("labels"):
        cfg["architectures"] = [arch.replace("ForCausalLM", "ForSequenceClassification")]
        cfg["id2label"] = {str(i): l for i, l in enumerate(c["labels"])}
        cfg["label2id"] = {l: i for i, l in enumerate(c["labels"])}
    return cfg


CASES = [
    dict(name="qwen2-gqa-f32", family="qwen2", seed=3001, hidden=64, inter=160, layers=2, heads=4, kv=2,
         head_dim=16, vocab=96, theta=1000000, tied=False, dtype="F32", shards=None, batch=True,
         embed_std=1.0, proj_std=0.15, head_std=0.15, lengths=[5, 7, 9]),
    dict(name="qwen2-tied-bf16-sharded", family="qwen2", seed=3002, hidden=64, inter=128, layers=3, heads=8, kv=2,
         head_dim=8, vocab=80, theta=10000, tied=True, dtype="BF16", shards=3, batch=False,
         embed_std=0.5, proj_std=0.15, head_std=None, lengths=[5, 8, 9]),
    dict(name="qwen3-gqa-f32", family="qwen3", seed=3003, hidden=48, inter=128, layers=2, heads=4, kv=2,
         head_dim=32, vocab=96, theta=1000000, tied=False, dtype="F32", shards=None, batch=True,
         embed_std=1.0, proj_std=0.15, head_std=0.15, lengths=[5, 7, 9]),
    dict(name="qwen2-mha-f16", family="qwen2", seed=3006, hidden=32, inter=96, layers=2, heads=4, kv=4,
         head_dim=8, vocab=128, theta=10000, tied=False, dtype="F16", shards=None, batch=False,
         embed_std=0.5, proj_std=0.2, head_std=0.2, lengths=[6, 8, 9]),
    dict(name="qwen3-bf16-sharded", family="qwen3", seed=3007, hidden=64, inter=128, layers=3, heads=8, kv=2,
         head_dim=16, vocab=80, theta=1000000, tied=False, dtype="BF16", shards=3, batch=False,
         embed_std=1.0, proj_std=0.15, head_std=0.15, lengths=[5, 8, 9]),
    dict(name="qwen2-cls-f32", family="qwen2", seed=3005, hidden=64, inter=160, layers=2, heads=4, kv=2,
         head_dim=16, vocab=96, theta=1000000, tied=False, dtype="F32", shards=None, batch=True,
         embed_std=1.0, proj_std=0.15, head_std=0.5, lengths=[5, 7, 9], labels=["negative", "neutral", "positive"]),
    dict(name="qwen3-mha-tied-f16", family="qwen3", seed=3004, hidden=32, inter=96, layers=2, heads=4, kv=4,
         head_dim=16, vocab=128, theta=10000, tied=True, dtype="F16", shards=None, batch=False,
         embed_std=0.3, proj_std=0.2, head_std=None, lengths=[6, 8, 9]),
]


def run(c, outroot, gen):
    print("== %s" % c["name"])
    fam = c["family"]
    cfg = family_config(c)
    cfg["head_dim"] = c["head_dim"] if fam == "qwen3" else c["hidden"] // c["heads"]
    fcfg = dict(cfg)
    if fam == "qwen2":
        del cfg["head_dim"]  # Qwen2Config has no head_dim key
    init = Init(c["seed"])
    raw = family_params(fcfg, init, fam, c["proj_std"], c["embed_std"], c["head_std"])
    if c.get("labels"):
        # A classifier has a score head [labels, hidden] and no lm_head.
        raw = [(n, t) for n, t in raw if n != "lm_head.weight"]
        raw.append(("score.weight", init.normal((len(c["labels"]), c["hidden"]), c["head_std"])))
    params = round_to(raw, c["dtype"])
    W = dict(params)
    outdir = os.path.join(outroot, c["name"])
    os.makedirs(outdir, exist_ok=True)
    write_json(os.path.join(outdir, "config.json"), cfg, indent=2)
    loaded = save_weights(outdir, raw, c["dtype"], c["shards"], c["layers"])
    check(set(loaded) == set(W), "safetensors names differ")
    for n in W:
        check(torch.equal(loaded[n], W[n]), "safetensors round trip differs for " + n)

    inputs = [[cfg["bos_token_id"]] + init.ints(L - 1, 3, c["vocab"]) for L in c["lengths"]]
    if c.get("labels"):
        return run_classifier(c, cfg, fcfg, W, fam, inputs, outdir, gen)
    logits, noise = [], 0.0
    for ids in inputs:
        t = torch.tensor([ids])
        y = family_forward(fcfg, W, fam, t)[0]
        y64 = family_forward(fcfg, W, fam, t, dtype=torch.float64)[0]
        noise = max(noise, maxdiff(y, y64))
        for p in range(1, len(ids)):
            yp = family_forward(fcfg, W, fam, torch.tensor([ids[:p]]))[0]
            d = maxdiff(yp, y[:p]); check(d < 1e-5 * max(1.0, float(y.abs().max())), "causality violated at prefix %d (%g)" % (p, d))
        logits.append(y)
    print("    logits std %.3f, max|.| %.3f, f32 vs f64 max diff %.2g"
          % (float(torch.cat(logits).std()), float(torch.cat(logits).abs().max()), noise))
    check(len(set(torch.cat(logits).argmax(-1).tolist())) > 2, "argmax nearly constant")

    base = logits[-1]
    t = torch.tensor([inputs[-1]])
    if fam == "qwen2":
        for v in ["no_bias", "o_bias"]:
            sensitivity(v, base, family_forward(fcfg, W, fam, t, variant=v)[0], noise)
        # Qwen2 with zero biases is Llama (refgen's independent forward).
        Z = {k: (torch.zeros_like(v) if k.endswith(".bias") else v) for k, v in W.items()}
        Zl = {k: v for k, v in Z.items() if not k.endswith(".bias")}
        lcfg = dict(fcfg, model_type="llama")
        d = maxdiff(family_forward(fcfg, Z, fam, t)[0], refgen.llama_forward(lcfg, Zl, t)[0])
        check(d < 1e-5, "qwen2 with zero biases differs from llama by %g" % d)
        print("    qwen2 with zero biases == llama (max diff %.2g)" % d)
    else:
        for v in ["no_qknorm", "qknorm_after_rope"]:
            sensitivity(v, base, family_forward(fcfg, W, fam, t, variant=v)[0], noise)
        # q/k norms with unit weights on Llama-shaped heads differ from Llama:
        # the check is that the norms matter, done above.
    exp = {
        "generator": gen,
        "case": c["name"],
        "compute_dtype": "float32",
        "max_abs_diff_vs_float64": float("%.3g" % noise),
        "inputs": inputs,
        "logits": [f32list(y) for y in logits],
    }
    if c["batch"]:
        seqs = [inputs[0], inputs[1]]
        T = max(len(s) for s in seqs)
        pad = cfg["pad_token_id"]
        ids = [s + [pad] * (T - len(s)) for s in seqs]
        mask = [[1] * len(s) + [0] * (T - len(s)) for s in seqs]
        yb = family_forward(fcfg, W, fam, torch.tensor(ids), torch.tensor(mask))
        for b, s in enumerate(seqs):
            check(maxdiff(yb[b, :len(s)], logits[b]) < 1e-5, "batch row %d differs" % b)
        exp["batch"] = {
            "pad_token_id": pad,
            "input_ids": ids,
            "attention_mask": mask,
            "logits": [f32list(yb[b]) for b in range(len(seqs))],
        }
        print("    batch ok (T=%d, lengths %s)" % (T, [len(s) for s in seqs]))
    write_json(os.path.join(outdir, "expected.json"), exp)


def run_classifier(c, cfg, fcfg, W, fam, inputs, outdir, gen):
    logits, noise = [], 0.0
    for ids in inputs:
        t = torch.tensor([ids])
        y = family_forward(fcfg, W, fam, t)          # [1, labels]
        y64 = family_forward(fcfg, W, fam, t, dtype=torch.float64)
        noise = max(noise, maxdiff(y, y64))
        logits.append(y)
    print("    class logits %s, f32 vs f64 max diff %.2g" % ([round(float(v), 3) for v in logits[0][0]], noise))
    t = torch.tensor([inputs[-1]])
    sensitivity("pool_first", logits[-1], family_forward(fcfg, W, fam, t, variant="pool_first"), noise)
    seqs = [inputs[0], inputs[1]]
    T = max(len(s) for s in seqs)
    pad = cfg["pad_token_id"]
    ids = [s + [pad] * (T - len(s)) for s in seqs]
    mask = [[1] * len(s) + [0] * (T - len(s)) for s in seqs]
    yb = family_forward(fcfg, W, fam, torch.tensor(ids), torch.tensor(mask))
    for b in range(len(seqs)):
        check(maxdiff(yb[b:b + 1], logits[b]) < 1e-5, "batch row %d differs" % b)
    unmasked = family_forward(fcfg, W, fam, torch.tensor(ids))
    sensitivity("pool_padding", yb[:1], unmasked[:1], noise)
    exp = {
        "generator": gen,
        "case": c["name"],
        "compute_dtype": "float32",
        "max_abs_diff_vs_float64": float("%.3g" % noise),
        "inputs": inputs,
        "logits": [f32list(y) for y in logits],
        "batch": {"pad_token_id": pad, "input_ids": ids, "attention_mask": mask,
                  "logits": [f32list(yb[b:b + 1]) for b in range(len(seqs))]},
    }
    write_json(os.path.join(outdir, "expected.json"), exp)
    print("    batch ok (T=%d, lengths %s)" % (T, [len(s) for s in seqs]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output root, e.g. core/testdata/reference")
    args = ap.parse_args()
    gen = generator_string()
    print(gen)
    for c in CASES:
        run(c, args.out, gen)
    print("all self-checks passed")


if __name__ == "__main__":
    main()
