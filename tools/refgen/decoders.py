#!/usr/bin/python3
"""Independent PyTorch references for Mistral, Gemma and Phi-3, the decoder
families surgeon runs on its Llama implementation.

Written in plain PyTorch from the semantics of transformers' modeling_mistral.py,
modeling_gemma.py and modeling_phi3.py with masking_utils.py (transformers
>= 4.53, eval mode); no transformers code is used. It reuses refgen.py's
safetensors writer, deterministic initialisation and self-check helpers, and
writes the same expected.json format into one folder per case:

    /usr/bin/python3 tools/refgen/decoders.py --out core/testdata/reference

Semantics:
  * Mistral: Llama with sliding-window attention. masking_utils'
    sliding_window_overlay keeps kv_idx > q_idx - sliding_window on top of the
    causal mask: a query sees itself and the sliding_window - 1 keys before
    it. sliding_window null means none.
  * Gemma: GemmaRMSNorm is x * rsqrt(mean(x^2) + eps) * (1 + w) in float32;
    embeddings are multiplied by sqrt(hidden_size) as a tensor of the compute
    dtype (float32 here, the dtype surgeon computes in); the MLP is
    down(gelu_tanh(gate(x)) * up(x)); head_dim comes from the config; the LM
    head is tied to the embeddings.
  * Phi-3: self_attn.qkv_proj is [q; k; v] and mlp.gate_up_proj is
    [gate; up] (rows), everything else is Llama; sliding_window as Mistral.

Self-checks before writing: causality, masked batch rows equal unpadded runs,
float32 vs float64 noise, reductions (Mistral with a window at least the
sequence length, and Phi-3 with its fused matrices split, equal refgen's
Llama), and that plausible mistakes (window off by one either way, Gemma's
plain w instead of 1 + w, no sqrt(hidden) scaling, exact GELU, Phi-3's gate
and up or k and v swapped) move the logits far beyond float32 noise.
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


def dec_params(cfg, init, fam, s, embed_std, head_std):
    H = cfg["hidden_size"]
    I = cfg["intermediate_size"]
    V = cfg["vocab_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg["num_key_value_heads"]
    hd = cfg["head_dim"]
    # Gemma's norms scale by 1 + w: weights around 0, not 1.
    nmean, nstd = (0.0, 0.3) if fam == "gemma" else (1.0, 0.1)
    p = [("model.embed_tokens.weight", init.normal((V, H), embed_std))]
    for i in range(cfg["num_hidden_layers"]):
        pre = "model.layers.%d." % i
        p.append((pre + "input_layernorm.weight", init.normal((H,), nstd, nmean)))
        if fam == "phi3":
            p.append((pre + "self_attn.qkv_proj.weight", init.normal(((nh + 2 * nkv) * hd, H), s)))
        else:
            p += [
                (pre + "self_attn.q_proj.weight", init.normal((nh * hd, H), s)),
                (pre + "self_attn.k_proj.weight", init.normal((nkv * hd, H), s)),
                (pre + "self_attn.v_proj.weight", init.normal((nkv * hd, H), s)),
            ]
        p.append((pre + "self_attn.o_proj.weight", init.normal((H, nh * hd), s)))
        p.append((pre + "post_attention_layernorm.weight", init.normal((H,), nstd, nmean)))
        if fam == "phi3":
            p.append((pre + "mlp.gate_up_proj.weight", init.normal((2 * I, H), s)))
        else:
            p += [
                (pre + "mlp.gate_proj.weight", init.normal((I, H), s)),
                (pre + "mlp.up_proj.weight", init.normal((I, H), s)),
            ]
        p.append((pre + "mlp.down_proj.weight", init.normal((H, I), s)))
    p.append(("model.norm.weight", init.normal((H,), nstd, nmean)))
    if not cfg["tie_word_embeddings"]:
        p.append(("lm_head.weight", init.normal((V, H), head_std)))
    return p


def allowed_mask(T, B, window, attention_mask):
    """[B, 1, T, T] booleans: causal, inside the window, key not padding."""
    i = torch.arange(T).view(T, 1)
    j = torch.arange(T).view(1, T)
    allowed = j <= i
    if window is not None:
        allowed = allowed & (j > i - window)  # sliding_window_overlay
    allowed = allowed.view(1, 1, T, T).expand(B, 1, T, T)
    if attention_mask is not None:
        allowed = allowed & attention_mask.bool().view(B, 1, 1, T)
    return allowed


def dec_forward(cfg, W, fam, input_ids, attention_mask=None, dtype=torch.float32, variant=None):
    """Logits [B, T, V] of <Family>ForCausalLM in eval mode.

    `variant` introduces a plausible mistake, for the sensitivity checks."""
    W = {k: v.to(dtype) for k, v in W.items()}
    H = cfg["hidden_size"]
    I = cfg["intermediate_size"]
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

    window = cfg.get("sliding_window") if fam in ("mistral", "phi3") else None
    if window is not None and variant == "window_plus_one":
        window += 1
    if window is not None and variant == "window_minus_one":
        window -= 1
    allowed = allowed_mask(T, B, window, attention_mask)
    mask = torch.zeros(B, 1, T, T, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)

    def norm(x, w):
        if fam == "gemma" and variant != "plain_norm":
            xf = x.to(torch.float32) if x.dtype != torch.float64 else x
            return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)) * (1.0 + w)
        return rms_norm(x, w, eps)

    def act(g):
        if fam == "gemma":
            return torch.nn.functional.gelu(g, approximate="none" if variant == "exact_gelu" else "tanh")
        return torch.nn.functional.silu(g)

    x = W["model.embed_tokens.weight"][input_ids]
    if fam == "gemma" and variant != "no_embed_scale":
        normalizer = torch.tensor(H ** 0.5, dtype=dtype)
        if variant == "normalizer_bf16":
            normalizer = normalizer.to(torch.bfloat16).to(dtype)
        x = x * normalizer
    for i in range(cfg["num_hidden_layers"]):
        pre = "model.layers.%d." % i
        h = norm(x, W[pre + "input_layernorm.weight"])
        if fam == "phi3":
            qkv = h @ W[pre + "self_attn.qkv_proj.weight"].T
            q = qkv[..., : nh * hd]
            k = qkv[..., nh * hd: nh * hd + nkv * hd]
            v = qkv[..., nh * hd + nkv * hd:]
            if variant == "swap_kv":
                k, v = v, k
        else:
            q = h @ W[pre + "self_attn.q_proj.weight"].T
            k = h @ W[pre + "self_attn.k_proj.weight"].T
            v = h @ W[pre + "self_attn.v_proj.weight"].T
        q = rope(q.reshape(B, T, nh, hd).transpose(1, 2))
        k = rope(k.reshape(B, T, nkv, hd).transpose(1, 2))
        v = v.reshape(B, T, nkv, hd).transpose(1, 2)
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd) + mask
        probs = torch.softmax(scores, dim=-1)
        a = (probs @ v).transpose(1, 2).reshape(B, T, nh * hd)
        x = x + a @ W[pre + "self_attn.o_proj.weight"].T
        h = norm(x, W[pre + "post_attention_layernorm.weight"])
        if fam == "phi3":
            gu = h @ W[pre + "mlp.gate_up_proj.weight"].T
            g, u = gu[..., :I], gu[..., I:]
            if variant == "swap_gate_up":
                g, u = u, g
        else:
            g = h @ W[pre + "mlp.gate_proj.weight"].T
            u = h @ W[pre + "mlp.up_proj.weight"].T
        x = x + (act(g) * u) @ W[pre + "mlp.down_proj.weight"].T
    x = norm(x, W["model.norm.weight"])
    head = W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
    return x @ head.T


ARCH = {"mistral": "MistralForCausalLM", "gemma": "GemmaForCausalLM", "phi3": "Phi3ForCausalLM"}


def dec_config(c):
    fam = c["family"]
    cfg = {
        "architectures": [ARCH[fam]],
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": c["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": c["inter"],
        "max_position_embeddings": 64,
        "model_type": fam,
        "num_attention_heads": c["heads"],
        "num_hidden_layers": c["layers"],
        "num_key_value_heads": c["kv"],
        "pad_token_id": 0,
        "rms_norm_eps": 1e-05 if fam == "phi3" else 1e-06,
        "rope_theta": float(c["theta"]),
        "tie_word_embeddings": c["tied"],
        "torch_dtype": TORCH_DTYPE_NAME[c["dtype"]],
        "transformers_version": "4.53.0",
        "use_cache": True,
        "vocab_size": c["vocab"],
    }
    if fam == "mistral":
        cfg["head_dim"] = c["head_dim"]
        cfg["sliding_window"] = c["window"]
    if fam == "gemma":
        # As google/gemma-* publish it: hidden_activation names the MLP's
        # activation (transformers 4.38-4.41 read it; hidden_act is "gelu").
        cfg["hidden_act"] = "gelu"
        cfg["hidden_activation"] = "gelu_pytorch_tanh"
        cfg["head_dim"] = c["head_dim"]
        cfg["attention_bias"] = False
        cfg["rope_scaling"] = None
    if fam == "phi3":
        cfg["embd_pdrop"] = 0.0
        cfg["resid_pdrop"] = 0.0
        cfg["original_max_position_embeddings"] = 64
        cfg["rope_scaling"] = None
        cfg["sliding_window"] = c["window"]
    return cfg


CASES = [
    # Mistral: windows shorter than the sequences (lengths 5..9).
    dict(name="mistral-gqa-window3-f32", family="mistral", seed=4001, hidden=64, inter=160, layers=2, heads=4,
         kv=2, head_dim=16, vocab=96, theta=1000000, tied=False, dtype="F32", shards=None, batch=True,
         window=3, embed_std=1.0, proj_std=0.15, head_std=0.15, lengths=[5, 7, 9]),
    dict(name="mistral-mha-tied-window4-f16", family="mistral", seed=4002, hidden=32, inter=96, layers=2, heads=4,
         kv=4, head_dim=8, vocab=128, theta=10000, tied=True, dtype="F16", shards=None, batch=False,
         window=4, embed_std=0.3, proj_std=0.2, head_std=None, lengths=[6, 8, 9]),
    dict(name="mistral-headdim-window6-bf16-sharded", family="mistral", seed=4003, hidden=64, inter=128, layers=3,
         heads=8, kv=2, head_dim=12, vocab=80, theta=10000, tied=False, dtype="BF16", shards=3, batch=False,
         window=6, embed_std=1.0, proj_std=0.15, head_std=0.15, lengths=[5, 8, 9]),
    # Gemma: head_dim from the config, tied head; hidden sizes whose square
    # root is not exact in float32.
    dict(name="gemma-gqa-f32", family="gemma", seed=5001, hidden=48, inter=128, layers=2, heads=4, kv=2,
         head_dim=16, vocab=96, theta=10000, tied=True, dtype="F32", shards=None, batch=True,
         embed_std=0.15, proj_std=0.25, head_std=None, lengths=[5, 7, 9]),
    dict(name="gemma-mqa-f16", family="gemma", seed=5002, hidden=40, inter=96, layers=2, heads=4, kv=1,
         head_dim=24, vocab=128, theta=10000, tied=True, dtype="F16", shards=None, batch=False,
         embed_std=0.15, proj_std=0.25, head_std=None, lengths=[6, 8, 9]),
    dict(name="gemma-bf16-sharded", family="gemma", seed=5003, hidden=56, inter=112, layers=3, heads=4, kv=2,
         head_dim=32, vocab=80, theta=10000, tied=True, dtype="BF16", shards=3, batch=False,
         embed_std=0.15, proj_std=0.25, head_std=None, lengths=[5, 8, 9]),
    # Phi-3: fused qkv_proj and gate_up_proj.
    dict(name="phi3-gqa-f32", family="phi3", seed=6001, hidden=64, inter=160, layers=2, heads=4, kv=2,
         head_dim=16, vocab=96, theta=10000, tied=False, dtype="F32", shards=None, batch=True,
         window=None, embed_std=1.0, proj_std=0.15, head_std=0.15, lengths=[5, 7, 9]),
    dict(name="phi3-mha-window5-f16", family="phi3", seed=6002, hidden=32, inter=96, layers=2, heads=4, kv=4,
         head_dim=8, vocab=128, theta=10000, tied=False, dtype="F16", shards=None, batch=False,
         window=5, embed_std=0.5, proj_std=0.2, head_std=0.2, lengths=[6, 8, 9]),
    dict(name="phi3-bf16-sharded", family="phi3", seed=6003, hidden=64, inter=128, layers=3, heads=8, kv=8,
         head_dim=8, vocab=80, theta=10000, tied=False, dtype="BF16", shards=3, batch=False,
         window=None, embed_std=1.0, proj_std=0.15, head_std=0.15, lengths=[5, 8, 9]),
]


def split_phi3(W, cfg):
    """Phi-3 weights with qkv_proj and gate_up_proj split into Llama's."""
    nh, nkv, hd, I = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"], cfg["intermediate_size"]
    out = {}
    for n, t in W.items():
        if n.endswith("qkv_proj.weight"):
            p = n[: -len("qkv_proj.weight")]
            out[p + "q_proj.weight"] = t[: nh * hd]
            out[p + "k_proj.weight"] = t[nh * hd: nh * hd + nkv * hd]
            out[p + "v_proj.weight"] = t[nh * hd + nkv * hd:]
        elif n.endswith("gate_up_proj.weight"):
            p = n[: -len("gate_up_proj.weight")]
            out[p + "gate_proj.weight"] = t[:I]
            out[p + "up_proj.weight"] = t[I:]
        else:
            out[n] = t
    return out


def run(c, outroot, gen, only):
    fam = c["family"]
    if only and fam not in only:
        return
    print("== %s" % c["name"])
    cfg = dec_config(c)
    fcfg = dict(cfg, head_dim=c["head_dim"])
    init = Init(c["seed"])
    raw = dec_params(fcfg, init, fam, c["proj_std"], c["embed_std"], c["head_std"])
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
        y = dec_forward(fcfg, W, fam, t)[0]
        y64 = dec_forward(fcfg, W, fam, t, dtype=torch.float64)[0]
        noise = max(noise, maxdiff(y, y64))
        for p in range(1, len(ids)):
            yp = dec_forward(fcfg, W, fam, torch.tensor([ids[:p]]))[0]
            d = maxdiff(yp, y[:p])
            check(d < 1e-5 * max(1.0, float(y.abs().max())), "causality violated at prefix %d (%g)" % (p, d))
        logits.append(y)
    print("    logits std %.3f, max|.| %.3f, f32 vs f64 max diff %.2g"
          % (float(torch.cat(logits).std()), float(torch.cat(logits).abs().max()), noise))
    check(len(set(torch.cat(logits).argmax(-1).tolist())) > 2, "argmax nearly constant")

    base = logits[-1]
    t = torch.tensor([inputs[-1]])
    T = t.shape[1]
    lcfg = dict(fcfg, model_type="llama")
    if fam in ("mistral", "phi3") and fcfg.get("sliding_window") is not None:
        check(fcfg["sliding_window"] < T, "window not shorter than the sequence")
        for v in ["window_plus_one", "window_minus_one"]:
            sensitivity(v, base, dec_forward(fcfg, W, fam, t, variant=v)[0], noise)
        # With a window at least the sequence length the window changes nothing.
        wide = dict(fcfg, sliding_window=T)
        no = dict(fcfg, sliding_window=None)
        d = maxdiff(dec_forward(wide, W, fam, t)[0], dec_forward(no, W, fam, t)[0])
        check(d == 0, "window >= T differs from no window by %g" % d)
    if fam == "mistral":
        if c["head_dim"] * c["heads"] == c["hidden"]:
            wide = dict(fcfg, sliding_window=T)
            d = maxdiff(dec_forward(wide, W, fam, t)[0], refgen.llama_forward(lcfg, W, t)[0])
            check(d < 1e-5, "mistral with window >= T differs from llama by %g" % d)
            print("    mistral with window %d >= T == llama (max diff %.2g)" % (T, d))
        else:  # head_dim != hidden/heads: Llama's reference cannot express it
            print("    (head_dim %d != hidden/heads: no llama reduction)" % c["head_dim"])
    if fam == "gemma":
        for v in ["plain_norm", "no_embed_scale"]:
            sensitivity(v, base, dec_forward(fcfg, W, fam, t, variant=v)[0], noise)
        # Exact and tanh GELU differ by < 1e-3 at most: visible above the
        # noise, though not by 1000x (ops' unit test pins the function).
        sensitivity("exact_gelu", base, dec_forward(fcfg, W, fam, t, variant="exact_gelu")[0], noise,
                    factor=30, min_rel=1e-5)
        d = maxdiff(base, dec_forward(fcfg, W, fam, t, variant="normalizer_bf16")[0])
        print("    (normalizer rounded to bfloat16 instead of float32: max|diff| %.3g)" % d)
    if fam == "phi3":
        for v in ["swap_gate_up", "swap_kv"]:
            sensitivity(v, base, dec_forward(fcfg, W, fam, t, variant=v)[0], noise)
        if fcfg.get("sliding_window") is None and c["head_dim"] * c["heads"] == c["hidden"]:
            d = maxdiff(base, refgen.llama_forward(lcfg, split_phi3(W, fcfg), t)[0])
            check(d < 1e-5, "phi3 with split projections differs from llama by %g" % d)
            print("    phi3 with qkv/gate_up split == llama (max diff %.2g)" % d)
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
        yb = dec_forward(fcfg, W, fam, torch.tensor(ids), torch.tensor(mask))
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output root, e.g. core/testdata/reference")
    ap.add_argument("--only", default="", help="comma-separated families to write (default: all)")
    args = ap.parse_args()
    gen = generator_string().replace("tools/refgen/refgen.py", "tools/refgen/decoders.py")
    print(gen)
    only = [f for f in args.only.split(",") if f]
    for c in CASES:
        run(c, args.out, gen, only)
    print("all self-checks passed")


if __name__ == "__main__":
    main()
