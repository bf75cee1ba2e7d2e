#!/usr/bin/python3
"""Independent PyTorch reference for Gemma 2 (Gemma2ForCausalLM).

Written in plain PyTorch from the semantics of transformers' modeling_gemma2.py
(transformers 4.50, eval mode, eager attention; the masks and the layer pattern
are those 4.53's masking_utils and layer_types keep); no transformers code is
used. It reuses refgen.py's safetensors writer, deterministic initialisation
and self-check helpers and decoders.py's masks and Gemma reference, and writes
the same expected.json format into one folder per case:

    /usr/bin/python3 tools/refgen/gemma2.py --out core/testdata/reference

Semantics:
  * Gemma2RMSNorm: x * rsqrt(mean(x^2) + eps) * (1 + w) in float32.
  * Embeddings times sqrt(hidden_size) as a tensor of the compute dtype
    (float32 here, as surgeon computes).
  * Decoder layer: h = x + post_attention_layernorm(attn(input_layernorm(x)));
    out = h + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h))).
  * MLP: down(gelu_tanh(gate(x)) * up(x)).
  * Attention: scores = (q k^T) * query_pre_attn_scalar^-0.5, then
    attn_logit_softcapping c: scores = c * tanh(scores / c), then the additive
    mask (causal, padding, and on sliding layers keys j <= i - sliding_window
    masked: a query sees itself and sliding_window - 1 keys before it), then
    softmax in float32.
  * Sliding layers: layer_idx % 2 == 0 (Gemma2Attention.sliding_window is set
    when not bool(layer_idx % 2); 4.53's default layer_types is
    "sliding_attention" when bool((i + 1) % 2)), or config layer_types.
  * Logits: lm_head (tied to embed_tokens by default), then
    final_logit_softcapping c: logits = c * tanh(logits / c).

Self-checks before writing: causality, masked batch rows equal unpadded runs,
float32 vs float64 noise; reductions (windows >= the sequence length equal no
window exactly; huge caps equal no caps within noise; with caps and windows off,
query_pre_attn_scalar = head_dim and the two post norms skipped, Gemma 2 equals
decoders.py's independent Gemma with pre_feedforward_layernorm as Gemma's
post_attention_layernorm); and that plausible mistakes (no attention soft-cap,
cap applied after the mask, no final soft-cap, windows on the odd layers,
1/sqrt(head_dim) instead of query_pre_attn_scalar, no post norms) move the
logits far beyond float32 noise.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refgen import (Init, check, f32list, generator_string, maxdiff,  # noqa: E402
                    rotate_half, round_to, save_weights, sensitivity,
                    write_json, TORCH_DTYPE_NAME)
from decoders import allowed_mask, dec_forward  # noqa: E402


def g2_params(cfg, init, s, embed_std, head_std):
    H = cfg["hidden_size"]
    I = cfg["intermediate_size"]
    V = cfg["vocab_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg["num_key_value_heads"]
    hd = cfg["head_dim"]
    # Norms scale by 1 + w: weights around 0, not 1.
    nstd = 0.3
    p = [("model.embed_tokens.weight", init.normal((V, H), embed_std))]
    for i in range(cfg["num_hidden_layers"]):
        pre = "model.layers.%d." % i
        p += [
            (pre + "input_layernorm.weight", init.normal((H,), nstd, 0.0)),
            (pre + "self_attn.q_proj.weight", init.normal((nh * hd, H), s)),
            (pre + "self_attn.k_proj.weight", init.normal((nkv * hd, H), s)),
            (pre + "self_attn.v_proj.weight", init.normal((nkv * hd, H), s)),
            (pre + "self_attn.o_proj.weight", init.normal((H, nh * hd), s)),
            (pre + "post_attention_layernorm.weight", init.normal((H,), nstd, 0.0)),
            (pre + "pre_feedforward_layernorm.weight", init.normal((H,), nstd, 0.0)),
            (pre + "mlp.gate_proj.weight", init.normal((I, H), s)),
            (pre + "mlp.up_proj.weight", init.normal((I, H), s)),
            (pre + "mlp.down_proj.weight", init.normal((H, I), s)),
            (pre + "post_feedforward_layernorm.weight", init.normal((H,), nstd, 0.0)),
        ]
    p.append(("model.norm.weight", init.normal((H,), nstd, 0.0)))
    if not cfg["tie_word_embeddings"]:
        p.append(("lm_head.weight", init.normal((V, H), head_std)))
    return p


def sliding_layers(cfg):
    n = cfg["num_hidden_layers"]
    if cfg.get("layer_types") is not None:
        return [t == "sliding_attention" for t in cfg["layer_types"]]
    return [not bool(i % 2) for i in range(n)]


def g2_forward(cfg, W, input_ids, attention_mask=None, dtype=torch.float32, variant=None):
    """Logits [B, T, V] of Gemma2ForCausalLM in eval mode.

    `variant` introduces a plausible mistake, for the sensitivity checks."""
    W = {k: v.to(dtype) for k, v in W.items()}
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg["num_key_value_heads"]
    hd = cfg["head_dim"]
    rep = nh // nkv
    eps = cfg["rms_norm_eps"]
    attn_cap = cfg.get("attn_logit_softcapping")
    final_cap = cfg.get("final_logit_softcapping")
    scaling = cfg["query_pre_attn_scalar"] ** -0.5
    if variant == "head_dim_scale":
        scaling = hd ** -0.5
    B, T = input_ids.shape

    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).to(dtype) / hd))
    freqs = torch.outer(torch.arange(T, dtype=dtype), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()

    def rope(x):
        return x * cos + rotate_half(x) * sin

    sliding = sliding_layers(cfg)
    if variant == "windows_odd":
        sliding = [not s for s in sliding]
    masks = {}
    for window in (None, cfg.get("sliding_window")):
        allowed = allowed_mask(T, B, window, attention_mask)
        masks[window] = torch.zeros(B, 1, T, T, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)

    def norm(x, w):
        xf = x.to(torch.float32) if x.dtype != torch.float64 else x
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)) * (1.0 + w)

    def cap(x, c):
        return torch.tanh(x / c) * c

    x = W["model.embed_tokens.weight"][input_ids] * torch.tensor(H ** 0.5, dtype=dtype)
    for i in range(cfg["num_hidden_layers"]):
        pre = "model.layers.%d." % i
        h = norm(x, W[pre + "input_layernorm.weight"])
        q = h @ W[pre + "self_attn.q_proj.weight"].T
        k = h @ W[pre + "self_attn.k_proj.weight"].T
        v = h @ W[pre + "self_attn.v_proj.weight"].T
        q = rope(q.reshape(B, T, nh, hd).transpose(1, 2))
        k = rope(k.reshape(B, T, nkv, hd).transpose(1, 2))
        v = v.reshape(B, T, nkv, hd).transpose(1, 2)
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        mask = masks[cfg.get("sliding_window") if sliding[i] else None]
        scores = (q @ k.transpose(-1, -2)) * scaling
        if attn_cap is not None and variant not in ("no_attn_cap", "cap_after_mask"):
            scores = cap(scores, attn_cap)
        scores = scores + mask
        if attn_cap is not None and variant == "cap_after_mask":
            scores = cap(scores, attn_cap)
        probs = torch.softmax(scores, dim=-1)
        a = (probs @ v).transpose(1, 2).reshape(B, T, nh * hd) @ W[pre + "self_attn.o_proj.weight"].T
        if variant != "no_post_norms":
            a = norm(a, W[pre + "post_attention_layernorm.weight"])
        x = x + a
        h = norm(x, W[pre + "pre_feedforward_layernorm.weight"])
        g = h @ W[pre + "mlp.gate_proj.weight"].T
        u = h @ W[pre + "mlp.up_proj.weight"].T
        f = (torch.nn.functional.gelu(g, approximate="tanh") * u) @ W[pre + "mlp.down_proj.weight"].T
        if variant != "no_post_norms":
            f = norm(f, W[pre + "post_feedforward_layernorm.weight"])
        x = x + f
    x = norm(x, W["model.norm.weight"])
    head = W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
    logits = x @ head.T
    if final_cap is not None and variant != "no_final_cap":
        logits = cap(logits, final_cap)
    return logits


def g2_config(c):
    cfg = {
        "architectures": ["Gemma2ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attn_logit_softcapping": c["attn_cap"],
        "bos_token_id": 2,
        "cache_implementation": "hybrid",
        "eos_token_id": 1,
        "final_logit_softcapping": c["final_cap"],
        "head_dim": c["head_dim"],
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": c["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": c["inter"],
        "max_position_embeddings": 64,
        "model_type": "gemma2",
        "num_attention_heads": c["heads"],
        "num_hidden_layers": c["layers"],
        "num_key_value_heads": c["kv"],
        "pad_token_id": 0,
        "query_pre_attn_scalar": c["qpas"],
        "rms_norm_eps": 1e-06,
        "rope_theta": float(c["theta"]),
        "sliding_window": c["window"],
        "tie_word_embeddings": c["tied"],
        "torch_dtype": TORCH_DTYPE_NAME[c["dtype"]],
        "transformers_version": "4.50.0",
        "use_cache": True,
        "vocab_size": c["vocab"],
    }
    if c.get("layer_types"):
        # As transformers >= 4.53 writes it (the default pattern spelt out).
        cfg["layer_types"] = ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(c["layers"])]
        cfg["transformers_version"] = "4.53.0"
    return cfg


CASES = [
    # Windows shorter than the sequences (lengths 5..9); caps small enough to
    # bite; query_pre_attn_scalar != head_dim except in the last case.
    dict(name="gemma2-gqa-window3-f32", seed=7001, hidden=48, inter=128, layers=3, heads=4, kv=2,
         head_dim=16, vocab=96, theta=10000, tied=True, dtype="F32", shards=None, batch=True,
         window=3, qpas=24, attn_cap=2.0, final_cap=5.0,
         embed_std=0.15, proj_std=0.3, head_std=None, lengths=[5, 7, 9]),
    dict(name="gemma2-mqa-untied-window4-f16", seed=7002, hidden=40, inter=96, layers=2, heads=4, kv=1,
         head_dim=24, vocab=128, theta=10000, tied=False, dtype="F16", shards=None, batch=False,
         window=4, qpas=32, attn_cap=3.0, final_cap=8.0,
         embed_std=0.15, proj_std=0.3, head_std=0.3, lengths=[6, 8, 9]),
    dict(name="gemma2-bf16-sharded", seed=7003, hidden=56, inter=112, layers=4, heads=4, kv=2,
         head_dim=32, vocab=80, theta=10000, tied=True, dtype="BF16", shards=3, batch=False,
         window=5, qpas=32, attn_cap=4.0, final_cap=6.0, layer_types=True,
         embed_std=0.15, proj_std=0.3, head_std=None, lengths=[5, 8, 9]),
]


def to_gemma(W, cfg):
    """Gemma 2 weights as decoders.py's Gemma: pre_feedforward_layernorm
    becomes Gemma's post_attention_layernorm; the post norms are dropped."""
    out = {}
    for n, t in W.items():
        if n.endswith("post_attention_layernorm.weight") or n.endswith("post_feedforward_layernorm.weight"):
            continue
        out[n.replace("pre_feedforward_layernorm", "post_attention_layernorm")] = t
    return out


def run(c, outroot, gen):
    print("== %s" % c["name"])
    cfg = g2_config(c)
    init = Init(c["seed"])
    raw = g2_params(cfg, init, c["proj_std"], c["embed_std"], c["head_std"])
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
    logits, noise = [], 0.0
    for ids in inputs:
        t = torch.tensor([ids])
        y = g2_forward(cfg, W, t)[0]
        y64 = g2_forward(cfg, W, t, dtype=torch.float64)[0]
        noise = max(noise, maxdiff(y, y64))
        for p in range(1, len(ids)):
            yp = g2_forward(cfg, W, torch.tensor([ids[:p]]))[0]
            d = maxdiff(yp, y[:p])
            check(d < 1e-5 * max(1.0, float(y.abs().max())), "causality violated at prefix %d (%g)" % (p, d))
        logits.append(y)
    print("    logits std %.3f, max|.| %.3f, f32 vs f64 max diff %.2g"
          % (float(torch.cat(logits).std()), float(torch.cat(logits).abs().max()), noise))
    check(len(set(torch.cat(logits).argmax(-1).tolist())) > 2, "argmax nearly constant")

    base = logits[-1]
    t = torch.tensor([inputs[-1]])
    T = t.shape[1]
    check(cfg["sliding_window"] < T, "window not shorter than the sequence")
    variants = ["no_attn_cap", "cap_after_mask", "no_final_cap", "windows_odd", "no_post_norms"]
    if cfg["query_pre_attn_scalar"] != cfg["head_dim"]:
        variants.append("head_dim_scale")
    for v in variants:
        sensitivity(v, base, g2_forward(cfg, W, t, variant=v)[0], noise)
    # Reductions.
    wide = dict(cfg, sliding_window=T)
    no = dict(cfg, sliding_window=None)
    d = maxdiff(g2_forward(wide, W, t)[0], g2_forward(no, W, t)[0])
    check(d == 0, "window >= T differs from no window by %g" % d)
    huge = dict(cfg, attn_logit_softcapping=1e7, final_logit_softcapping=1e7)
    nocap = dict(cfg, attn_logit_softcapping=None, final_logit_softcapping=None)
    d = maxdiff(g2_forward(huge, W, t)[0], g2_forward(nocap, W, t)[0])
    check(d < 1e-5, "caps of 1e7 differ from no caps by %g" % d)
    plain = dict(nocap, sliding_window=None, query_pre_attn_scalar=cfg["head_dim"])
    d = maxdiff(g2_forward(plain, W, t, variant="no_post_norms")[0], dec_forward(plain, to_gemma(W, cfg), "gemma", t)[0])
    check(d < 1e-5, "gemma2 without caps, windows and post norms differs from gemma by %g" % d)
    print("    reductions ok: window >= T == none, caps 1e7 ~ none, "
          "no caps/windows/post norms == decoders.py gemma (max diff %.2g)" % d)
    exp = {
        "generator": gen,
        "case": c["name"],
        "compute_dtype": "float32",
        "max_abs_diff_vs_float64": float("%.3g" % noise),
        "inputs": inputs,
        "logits": [f32list(y) for y in logits],
    }
    if c["batch"]:
        seqs = [inputs[0], inputs[2]]  # 5 and 9 tokens: padding beyond the window
        T = max(len(s) for s in seqs)
        pad = cfg["pad_token_id"]
        ids = [s + [pad] * (T - len(s)) for s in seqs]
        mask = [[1] * len(s) + [0] * (T - len(s)) for s in seqs]
        yb = g2_forward(cfg, W, torch.tensor(ids), torch.tensor(mask))
        for b, s in enumerate(seqs):
            check(maxdiff(yb[b, :len(s)], logits[2 * b]) < 1e-5, "batch row %d differs" % b)
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
    gen = generator_string().replace("tools/refgen/refgen.py", "tools/refgen/gemma2.py")
    print(gen)
    for c in CASES:
        run(c, args.out, gen)
    print("all self-checks passed")


if __name__ == "__main__":
    main()
