#!/usr/bin/python3
"""Independent PyTorch reference for GPT-2 (GPT2LMHeadModel,
GPT2ForSequenceClassification), and the expected results of the real PEFT
LoRA in ../shared/fixtures/peft-lora-gpt2-smartreview on a random GPT-2 base.

Written from the published architecture (transformers' modeling_gpt2.py,
eval mode) in plain PyTorch: learned position embeddings, pre-LayerNorm
blocks, Conv1D projections (y = x @ W + b with W saved [in, out]), the fused
c_attn split into q, k, v in that order, gelu_new (tanh GELU), tied lm_head,
and the classifier pooling the last token that is not pad_token_id. It reuses
refgen.py's safetensors writer and helpers.

    /usr/bin/python3 tools/refgen/gpt2.py --out core/testdata/reference
    /usr/bin/python3 tools/refgen/gpt2.py --peft ../shared/fixtures/peft-lora-gpt2-smartreview \
        --peft-out core/testdata/reference/peft/gpt2-smartreview.json

Self-checks before writing: safetensors round trip, causality, masked batch
rows equal unpadded runs, float32 vs float64 noise, and that plausible
mistakes (exact-erf GELU for gelu_new, positions off by one, c_attn split as
k, q, v, Conv1D weights applied untransposed where shapes allow, the
classifier reading the padding) move the logits beyond the noise.

The PEFT base is GPT-2 small's shapes (12 layers, n_embd 768, 12 heads,
n_inner 3072; vocab 512 and n_positions 64 to keep it small) with weights
from a counter-based hash that core/gpt2's test implements identically
(hashweights below), so the Go test rebuilds the same ~85M-parameter base
without the file; only logits and merged-weight checksums are committed.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refgen import (Init, check, f32list, generator_string, layer_norm,  # noqa: E402
                    maxdiff, read_safetensors, round_to, sensitivity,
                    write_json, write_safetensors, TORCH_DTYPE_NAME)


def gpt2_params(cfg, init, s, embed_std, attn_buffers=False):
    E = cfg["n_embd"]
    I = cfg["n_inner"] or 4 * E
    V = cfg["vocab_size"]
    P = cfg["n_positions"]
    p = [("transformer.wte.weight", init.normal((V, E), embed_std)),
         ("transformer.wpe.weight", init.normal((P, E), embed_std * 0.5))]
    for i in range(cfg["n_layer"]):
        pre = "transformer.h.%d." % i
        p += [
            (pre + "ln_1.weight", init.normal((E,), 0.1, 1.0)),
            (pre + "ln_1.bias", init.normal((E,), 0.1)),
        ]
        if attn_buffers:  # old checkpoints carry the causal mask buffers
            p += [(pre + "attn.bias", torch.ones(P, P).tril().view(1, 1, P, P)),
                  (pre + "attn.masked_bias", torch.tensor(-1e4))]
        p += [
            (pre + "attn.c_attn.weight", init.normal((E, 3 * E), s)),  # Conv1D: [in, out]
            (pre + "attn.c_attn.bias", init.normal((3 * E,), 0.2)),
            (pre + "attn.c_proj.weight", init.normal((E, E), s)),
            (pre + "attn.c_proj.bias", init.normal((E,), 0.1)),
            (pre + "ln_2.weight", init.normal((E,), 0.1, 1.0)),
            (pre + "ln_2.bias", init.normal((E,), 0.1)),
            (pre + "mlp.c_fc.weight", init.normal((E, I), s)),
            (pre + "mlp.c_fc.bias", init.normal((I,), 0.2)),
            (pre + "mlp.c_proj.weight", init.normal((I, E), s)),
            (pre + "mlp.c_proj.bias", init.normal((E,), 0.1)),
        ]
    p += [("transformer.ln_f.weight", init.normal((E,), 0.1, 1.0)),
          ("transformer.ln_f.bias", init.normal((E,), 0.1))]
    if is_classifier(cfg):
        p.append(("score.weight", init.normal((len(cfg["id2label"]), E), 0.3)))
    elif not cfg.get("tie_word_embeddings", True):
        p.append(("lm_head.weight", init.normal((V, E), 0.2)))
    return p


def is_classifier(cfg):
    return cfg["architectures"][0].endswith("ForSequenceClassification")


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gelu_erf(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def gpt2_forward(cfg, W, input_ids, attention_mask=None, dtype=torch.float32, variant=None, lora=None):
    """Logits of GPT2LMHeadModel [B, T, V] or GPT2ForSequenceClassification
    [B, labels] (eval mode). `variant` introduces a plausible mistake for the
    sensitivity checks. `lora` maps a module name to (A [r, in], B [out, r],
    scale): PEFT's LoRA on a Conv1D, y = x @ W + b + scale * x @ A^T @ B^T."""
    W = {k: v.to(dtype) for k, v in W.items()}
    E = cfg["n_embd"]
    nh = cfg["n_head"]
    hd = E // nh
    eps = cfg["layer_norm_epsilon"]
    B, T = input_ids.shape
    act = gelu_erf if (variant == "gelu_erf" or cfg["activation_function"] == "gelu") else gelu_new

    def conv1d(x, name):
        w = W[name + ".weight"]
        if variant == "conv1d_untransposed" and w.shape[0] == w.shape[1]:
            w = w.T  # W read as [out, in]: only c_proj is square
        y = x @ w + W[name + ".bias"]
        if lora and name in lora:
            a, b, s = lora[name]
            y = y + s * ((x @ a.to(dtype).T) @ b.to(dtype).T)
        return y

    minval = torch.finfo(dtype).min
    causal = torch.ones(T, T, dtype=torch.bool).tril().view(1, 1, T, T)
    ext = torch.zeros(B, 1, 1, T, dtype=dtype)
    if attention_mask is not None:
        ext = (1.0 - attention_mask.to(dtype).view(B, 1, 1, T)) * minval

    pos = torch.arange(T).unsqueeze(0).expand(B, T)
    if variant == "pos_off_by_one":
        pos = pos + 1
    x = W["transformer.wte.weight"][input_ids] + W["transformer.wpe.weight"][pos]
    for i in range(cfg["n_layer"]):
        pre = "transformer.h.%d." % i
        h = layer_norm(x, W[pre + "ln_1.weight"], W[pre + "ln_1.bias"], eps)
        qkv = conv1d(h, pre + "attn.c_attn")
        q, k, v = qkv.split(E, dim=2)
        if variant == "split_kqv":
            q, k = k, q
        q, k, v = (t.view(B, T, nh, hd).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-1, -2)
        if cfg.get("scale_attn_weights", True):
            scores = scores / torch.full([], v.size(-1) ** 0.5, dtype=dtype)
        if cfg.get("scale_attn_by_inverse_layer_idx", False) and variant != "no_layer_scale":
            scores = scores / float(i + 1)
        scores = torch.where(causal, scores, torch.full([], minval, dtype=dtype))
        scores = scores + ext
        probs = torch.softmax(scores, dim=-1)
        a = (probs @ v).transpose(1, 2).reshape(B, T, E)
        x = x + conv1d(a, pre + "attn.c_proj")
        h = layer_norm(x, W[pre + "ln_2.weight"], W[pre + "ln_2.bias"], eps)
        x = x + conv1d(act(conv1d(h, pre + "mlp.c_fc")), pre + "mlp.c_proj")
    x = layer_norm(x, W["transformer.ln_f.weight"], W["transformer.ln_f.bias"], eps)
    if is_classifier(cfg):
        logits = x @ W["score.weight"].T  # [B, T, labels]
        pad = cfg.get("pad_token_id")
        if pad is None:
            last = torch.full((B,), T - 1, dtype=torch.long)
        else:
            non_pad = (input_ids != pad).int()
            last = (torch.arange(T) * non_pad).argmax(-1)
        if variant == "pool_last_position":
            last = torch.full((B,), T - 1, dtype=torch.long)
        return logits[torch.arange(B), last]
    head = W["lm_head.weight"] if "lm_head.weight" in W and not cfg.get("tie_word_embeddings", True) \
        else W["transformer.wte.weight"]
    return x @ head.T


def gpt2_config(c):
    cfg = {
        "activation_function": c.get("act", "gelu_new"),
        "architectures": [c.get("arch", "GPT2LMHeadModel")],
        "attn_pdrop": 0.1,
        "bos_token_id": 1,
        "embd_pdrop": 0.1,
        "eos_token_id": 1,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": c["positions"],
        "n_embd": c["hidden"],
        "n_head": c["heads"],
        "n_inner": c["inner"],
        "n_layer": c["layers"],
        "n_positions": c["positions"],
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": c.get("inverse_layer_idx", False),
        "scale_attn_weights": True,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "torch_dtype": TORCH_DTYPE_NAME[c["dtype"]],
        "transformers_version": "4.51.0",
        "use_cache": True,
        "vocab_size": c["vocab"],
    }
    if not c["tied"]:
        cfg["tie_word_embeddings"] = False
    if "labels" in c:
        cfg["id2label"] = {str(i): l for i, l in enumerate(c["labels"])}
        cfg["label2id"] = {l: i for i, l in enumerate(c["labels"])}
        cfg["pad_token_id"] = c["pad"]
    return cfg


CASES = [
    dict(name="gpt2-f32", seed=4001, hidden=64, inner=None, layers=2, heads=4, vocab=96, positions=32,
         tied=True, dtype="F32", shards=None, batch=True, embed_std=0.5, proj_std=0.15, lengths=[5, 7, 9]),
    dict(name="gpt2-untied-f16", seed=4002, hidden=32, inner=80, layers=3, heads=4, vocab=128, positions=24,
         tied=False, dtype="F16", shards=None, batch=False, embed_std=0.5, proj_std=0.2, lengths=[6, 8, 9],
         attn_buffers=True),
    dict(name="gpt2-bf16-sharded", seed=4003, hidden=64, inner=128, layers=3, heads=8, vocab=80, positions=16,
         tied=True, dtype="BF16", shards=3, batch=False, embed_std=0.5, proj_std=0.15, lengths=[5, 8, 9],
         inverse_layer_idx=True),
    dict(name="gpt2-cls-f32", seed=4004, hidden=48, inner=None, layers=2, heads=4, vocab=100, positions=32,
         tied=True, dtype="F32", shards=None, batch=True, embed_std=0.5, proj_std=0.2, lengths=[5, 7, 9],
         arch="GPT2ForSequenceClassification", labels=["negative", "neutral", "positive"], pad=0),
]


def shard_plan(names):
    """3 shards; layer 1 is split across the first two."""
    plan = {}
    for n in names:
        if n.startswith("transformer.wte") or n.startswith("transformer.wpe") or n.startswith("transformer.h.0."):
            s = 1
        elif n.startswith("transformer.h.1."):
            s = 1 if ".attn." in n else 2
        elif n.startswith("transformer.h."):
            s = 2
        else:
            s = 3
        plan[n] = s
    return plan


def save(outdir, raw, st_dtype, shards):
    if not shards:
        path = os.path.join(outdir, "model.safetensors")
        write_safetensors(path, raw, st_dtype)
        return read_safetensors(path)
    plan = shard_plan([n for n, _ in raw])
    total, weight_map, loaded = 0, {}, {}
    for s in range(1, shards + 1):
        fname = "model-%05d-of-%05d.safetensors" % (s, shards)
        part = [(n, t) for n, t in raw if plan[n] == s]
        check(len(part) > 0, "empty shard")
        total += write_safetensors(os.path.join(outdir, fname), part, st_dtype)
        for n, _ in part:
            weight_map[n] = fname
        loaded.update(read_safetensors(os.path.join(outdir, fname)))
    with open(os.path.join(outdir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        f.write("\n")
    return loaded


def run(c, outroot, gen):
    print("== %s" % c["name"])
    cfg = gpt2_config(c)
    init = Init(c["seed"])
    raw = gpt2_params(cfg, init, c["proj_std"], c["embed_std"], c.get("attn_buffers", False))
    params = round_to(raw, c["dtype"])
    W = dict(params)
    outdir = os.path.join(outroot, c["name"])
    os.makedirs(outdir, exist_ok=True)
    write_json(os.path.join(outdir, "config.json"), cfg, indent=2)
    loaded = save(outdir, raw, c["dtype"], c["shards"])
    check(set(loaded) == set(W), "safetensors names differ")
    for n in W:
        check(torch.equal(loaded[n], W[n]), "safetensors round trip differs for " + n)

    cls = is_classifier(cfg)
    inputs = [[cfg["bos_token_id"]] + init.ints(L - 1, 3, c["vocab"]) for L in c["lengths"]]
    logits, noise = [], 0.0
    for ids in inputs:
        t = torch.tensor([ids])
        y = gpt2_forward(cfg, W, t)[0]
        y64 = gpt2_forward(cfg, W, t, dtype=torch.float64)[0]
        noise = max(noise, maxdiff(y, y64))
        if not cls:
            for p in range(1, len(ids)):
                yp = gpt2_forward(cfg, W, torch.tensor([ids[:p]]))[0]
                d = maxdiff(yp, y[:p])
                check(d < 1e-5 * max(1.0, float(y.abs().max())), "causality violated at prefix %d (%g)" % (p, d))
        logits.append(y if not cls else y.view(1, -1))
    allp = torch.cat(logits)
    print("    logits std %.3f, max|.| %.3f, f32 vs f64 max diff %.2g"
          % (float(allp.std()), float(allp.abs().max()), noise))
    if cls:
        check(maxdiff(logits[0], logits[1]) > 0.01 and maxdiff(logits[1], logits[2]) > 0.01,
              "logits not input dependent")
    else:
        check(len(set(allp.argmax(-1).tolist())) > 2, "argmax nearly constant")

    t = torch.tensor([inputs[-1]])
    base = logits[-1]

    def fwd(variant, ids=t, mask=None):
        y = gpt2_forward(cfg, W, ids, mask, variant=variant)
        return y[0] if not cls else y[0:1]
    for v in ["pos_off_by_one", "split_kqv", "conv1d_untransposed"]:
        sensitivity(v, base, fwd(v), noise)
    # gelu_new vs exact GELU differ by < 5e-4 pointwise: require a clear
    # margin over float32 noise rather than a large relative change.
    ge = fwd("gelu_erf")
    sensitivity("gelu_erf", base, ge, noise, factor=50, min_rel=0)
    caught = int(((ge - base).abs() > 1e-4 * base.abs().clamp(min=1.0)).sum())
    check(caught > 0, "gelu_erf would pass the Go tests' 1e-4 tolerance")
    print("    gelu_erf: %d of %d logits outside the 1e-4 tolerance" % (caught, base.numel()))
    if cfg.get("scale_attn_by_inverse_layer_idx"):
        sensitivity("no_layer_scale", base, fwd("no_layer_scale"), noise)

    exp = {
        "generator": gen.replace("refgen.py", "gpt2.py"),
        "case": c["name"],
        "compute_dtype": "float32",
        "max_abs_diff_vs_float64": float("%.3g" % noise),
        "inputs": inputs,
        "logits": [f32list(y) for y in logits],
    }
    if c["batch"]:
        seqs = [inputs[0], inputs[1]]
        T = max(len(s) for s in seqs)
        pad = cfg.get("pad_token_id", 0)
        ids = [s + [pad] * (T - len(s)) for s in seqs]
        mask = [[1] * len(s) + [0] * (T - len(s)) for s in seqs]
        yb = gpt2_forward(cfg, W, torch.tensor(ids), torch.tensor(mask))
        for b, s in enumerate(seqs):
            if cls:
                check(maxdiff(yb[b:b + 1], logits[b]) < 1e-5, "batch row %d differs" % b)
            else:
                check(maxdiff(yb[b, :len(s)], logits[b]) < 1e-5 * max(1.0, float(logits[b].abs().max())), "batch row %d differs (%g)" % (b, maxdiff(yb[b, :len(s)], logits[b])))
        if cls:
            sensitivity("pool_last_position", yb[0:1],
                        gpt2_forward(cfg, W, torch.tensor(ids), torch.tensor(mask), variant="pool_last_position")[0:1],
                        noise)
        exp["batch"] = {
            "pad_token_id": pad,
            "input_ids": ids,
            "attention_mask": mask,
            "logits": [f32list(yb[b:b + 1] if cls else yb[b]) for b in range(len(seqs))],
        }
        print("    batch ok (T=%d, lengths %s)" % (T, [len(s) for s in seqs]))
    write_json(os.path.join(outdir, "expected.json"), exp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="output root, e.g. core/testdata/reference")
    ap.add_argument("--peft", help="the PEFT LoRA fixture folder (peft-lora-gpt2-smartreview)")
    ap.add_argument("--peft-out", help="where to write the PEFT fixture's expected results (JSON)")
    args = ap.parse_args()
    gen = generator_string()
    print(gen)
    if args.out:
        for c in CASES:
            run(c, args.out, gen)
    if args.peft:
        import gpt2peft  # noqa: E402
        gpt2peft.run(args.peft, args.peft_out, gen.replace("refgen.py", "gpt2.py"))
    print("all self-checks passed")


if __name__ == "__main__":
    main()
