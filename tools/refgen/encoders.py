#!/usr/bin/python3
"""Independent PyTorch references for the BERT-like encoder families:
DistilBertForSequenceClassification and RobertaForSequenceClassification
(model_type "roberta" and "xlm-roberta", which share the modules).

Written from the published architectures (transformers' modeling_distilbert.py
and modeling_roberta.py, eval mode) in plain PyTorch; it reuses refgen.py's
safetensors writer, deterministic initialisation and self-check helpers, and
writes the same expected.json format into one folder per case:

    /usr/bin/python3 tools/refgen/encoders.py --out core/testdata/reference

What the reference does:

* DistilBERT: word + position (0..T-1) embeddings, LayerNorm (eps 1e-12,
  hard-coded in HF); per block q/k/v/out_lin attention with q scaled by
  1/sqrt(d) before QK^T, masked keys filled with finfo.min;
  sa_layer_norm(attn + x); ffn lin2(act(lin1(x))) with config "activation"
  (exact-erf gelu or relu); output_layer_norm(ffn + x). Head: token 0,
  pre_classifier, ReLU, classifier.
* RoBERTa: BERT's layout under "roberta." with position ids from
  create_position_ids_from_input_ids: cumsum over tokens != padding_idx,
  times that mask, plus padding_idx (so real tokens start at padding_idx+1
  and pads sit at padding_idx); token type 0 of a type_vocab_size 1 table;
  no pooler; head classifier.dense, tanh, classifier.out_proj on token 0.

Self-checks before writing: safetensors round trip, float32 vs float64 noise,
masked batch rows equal unpadded runs, and that plausible mistakes change the
logits far beyond float32 noise: DistilBERT with GELU in the head or the
other activation in the FFN, no position embeddings, no padding mask;
RoBERTa with positions from 0 or from padding_idx, no tanh in the head,
BERT's pooler-style head on the mean, no padding mask.
"""

import argparse
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refgen import (Init, check, f32list, generator_string, layer_norm,  # noqa: E402
                    maxdiff, read_safetensors, round_to, sensitivity,
                    write_json, write_safetensors, TORCH_DTYPE_NAME)


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def lin_params(init, prefix, o, i, s, bs=0.1):
    return [(prefix + ".weight", init.normal((o, i), s)), (prefix + ".bias", init.normal((o,), bs))]


def ln_params(init, prefix, H):
    return [(prefix + ".weight", init.normal((H,), 0.1, 1.0)), (prefix + ".bias", init.normal((H,), 0.1))]


def sinusoidal(P, H):
    """HF's create_sinusoidal_embeddings table."""
    pe = torch.tensor([[pos / (10000 ** (2 * (j // 2) / H)) for j in range(H)] for pos in range(P)],
                      dtype=torch.float64)
    out = torch.zeros(P, H, dtype=torch.float64)
    out[:, 0::2] = torch.sin(pe[:, 0::2])
    out[:, 1::2] = torch.cos(pe[:, 1::2])
    return out.to(torch.float32)


# --------------------------------------------------------------------------
# DistilBERT
# --------------------------------------------------------------------------

def distilbert_params(cfg, init, s):
    H, I, V, P = cfg["dim"], cfg["hidden_dim"], cfg["vocab_size"], cfg["max_position_embeddings"]
    L = len(cfg["id2label"])
    pos = sinusoidal(P, H) if cfg["sinusoidal_pos_embds"] else init.normal((P, H), 0.5)
    p = [("distilbert.embeddings.word_embeddings.weight", init.normal((V, H), 0.5)),
         ("distilbert.embeddings.position_embeddings.weight", pos)]
    p += ln_params(init, "distilbert.embeddings.LayerNorm", H)
    for i in range(cfg["n_layers"]):
        pre = "distilbert.transformer.layer.%d." % i
        for n in ["q_lin", "k_lin", "v_lin", "out_lin"]:
            p += lin_params(init, pre + "attention." + n, H, H, s)
        p += ln_params(init, pre + "sa_layer_norm", H)
        p += lin_params(init, pre + "ffn.lin1", I, H, s)
        p += lin_params(init, pre + "ffn.lin2", H, I, s)
        p += ln_params(init, pre + "output_layer_norm", H)
    p += lin_params(init, "pre_classifier", H, H, s)
    p += lin_params(init, "classifier", L, H, s)
    return p


def distilbert_forward(cfg, W, input_ids, attention_mask=None, dtype=torch.float32, variant=None):
    """Logits [B, num_labels] of DistilBertForSequenceClassification."""
    W = {k: v.to(dtype) for k, v in W.items()}
    H, nh = cfg["dim"], cfg["n_heads"]
    dh = H // nh
    eps = 1e-12
    B, T = input_ids.shape
    act = cfg["activation"]
    if variant == "ffn_other_act":
        act = "relu" if act == "gelu" else "gelu"

    def lin(x, n):
        return x @ W[n + ".weight"].T + W[n + ".bias"]

    def ln(x, n):
        return layer_norm(x, W[n + ".weight"], W[n + ".bias"], eps)

    if attention_mask is None:
        attention_mask = torch.ones(B, T, dtype=torch.long)
    x = W["distilbert.embeddings.word_embeddings.weight"][input_ids]
    if variant != "no_position":
        x = x + W["distilbert.embeddings.position_embeddings.weight"][torch.arange(T)].unsqueeze(0)
    x = ln(x, "distilbert.embeddings.LayerNorm")
    masked = (attention_mask == 0).view(B, 1, 1, T)
    for i in range(cfg["n_layers"]):
        pre = "distilbert.transformer.layer.%d." % i
        q = lin(x, pre + "attention.q_lin").view(B, T, nh, dh).transpose(1, 2)
        k = lin(x, pre + "attention.k_lin").view(B, T, nh, dh).transpose(1, 2)
        v = lin(x, pre + "attention.v_lin").view(B, T, nh, dh).transpose(1, 2)
        q = q / math.sqrt(dh)
        scores = q @ k.transpose(2, 3)
        if variant != "no_mask":
            scores = scores.masked_fill(masked.expand_as(scores), torch.finfo(dtype).min)
        w = torch.softmax(scores, dim=-1)
        ctx = (w @ v).transpose(1, 2).reshape(B, T, H)
        sa = ln(lin(ctx, pre + "attention.out_lin") + x, pre + "sa_layer_norm")
        h = lin(sa, pre + "ffn.lin1")
        h = gelu(h) if act == "gelu" else torch.relu(h)
        x = ln(lin(h, pre + "ffn.lin2") + sa, pre + "output_layer_norm")
    pooled = lin(x[:, 0], "pre_classifier")
    pooled = gelu(pooled) if variant == "head_gelu" else torch.relu(pooled)
    return lin(pooled, "classifier")


def distilbert_config(c):
    labels = c["labels"]
    return {
        "activation": c["activation"],
        "architectures": ["DistilBertForSequenceClassification"],
        "attention_dropout": 0.1,
        "dim": c["hidden"],
        "dropout": 0.1,
        "hidden_dim": c["inter"],
        "id2label": {str(i): l for i, l in enumerate(labels)},
        "initializer_range": 0.02,
        "label2id": {l: i for i, l in enumerate(labels)},
        "max_position_embeddings": 32,
        "model_type": "distilbert",
        "n_heads": c["heads"],
        "n_layers": c["layers"],
        "pad_token_id": 0,
        "qa_dropout": 0.1,
        "seq_classif_dropout": 0.2,
        "sinusoidal_pos_embds": c["sinusoidal"],
        "tie_weights_": True,
        "torch_dtype": TORCH_DTYPE_NAME[c["dtype"]],
        "transformers_version": "4.44.0",
        "vocab_size": c["vocab"],
    }


# --------------------------------------------------------------------------
# RoBERTa / XLM-RoBERTa
# --------------------------------------------------------------------------

def roberta_params(cfg, init, s):
    H, I, V, P = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["max_position_embeddings"]
    L = len(cfg["id2label"])
    p = [("roberta.embeddings.word_embeddings.weight", init.normal((V, H), 0.5)),
         ("roberta.embeddings.position_embeddings.weight", init.normal((P, H), 0.5)),
         ("roberta.embeddings.token_type_embeddings.weight", init.normal((cfg["type_vocab_size"], H), 0.5))]
    p += ln_params(init, "roberta.embeddings.LayerNorm", H)
    for i in range(cfg["num_hidden_layers"]):
        pre = "roberta.encoder.layer.%d." % i
        for n in ["query", "key", "value"]:
            p += lin_params(init, pre + "attention.self." + n, H, H, s)
        p += lin_params(init, pre + "attention.output.dense", H, H, s)
        p += ln_params(init, pre + "attention.output.LayerNorm", H)
        p += lin_params(init, pre + "intermediate.dense", I, H, s)
        p += lin_params(init, pre + "output.dense", H, I, s)
        p += ln_params(init, pre + "output.LayerNorm", H)
    p += lin_params(init, "classifier.dense", H, H, s)
    p += lin_params(init, "classifier.out_proj", L, H, s)
    return p


def roberta_positions(input_ids, pad):
    """HF create_position_ids_from_input_ids (past_key_values_length 0)."""
    mask = input_ids.ne(pad).int()
    return (torch.cumsum(mask, dim=1).type_as(mask) * mask).long() + pad


def roberta_forward(cfg, W, input_ids, attention_mask=None, dtype=torch.float32, variant=None):
    """Logits [B, num_labels] of RobertaForSequenceClassification."""
    W = {k: v.to(dtype) for k, v in W.items()}
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    dh = H // nh
    eps = cfg["layer_norm_eps"]
    pad = cfg["pad_token_id"]
    B, T = input_ids.shape

    def lin(x, n):
        return x @ W[n + ".weight"].T + W[n + ".bias"]

    def ln(x, n):
        return layer_norm(x, W[n + ".weight"], W[n + ".bias"], eps)

    if attention_mask is None:
        attention_mask = torch.ones(B, T, dtype=torch.long)
    ext = (1.0 - attention_mask.to(dtype)).view(B, 1, 1, T) * torch.finfo(dtype).min
    pos = roberta_positions(input_ids, pad)
    if variant == "positions_from_0":
        pos = torch.arange(T).unsqueeze(0).expand(B, T)
    elif variant == "positions_from_pad":
        pos = pos - 1
    x = (W["roberta.embeddings.word_embeddings.weight"][input_ids]
         + W["roberta.embeddings.token_type_embeddings.weight"][torch.zeros_like(input_ids)]
         + W["roberta.embeddings.position_embeddings.weight"][pos])
    x = ln(x, "roberta.embeddings.LayerNorm")
    for i in range(cfg["num_hidden_layers"]):
        pre = "roberta.encoder.layer.%d." % i
        q = lin(x, pre + "attention.self.query").view(B, T, nh, dh).transpose(1, 2)
        k = lin(x, pre + "attention.self.key").view(B, T, nh, dh).transpose(1, 2)
        v = lin(x, pre + "attention.self.value").view(B, T, nh, dh).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
        if variant != "no_mask":
            scores = scores + ext
        a = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(B, T, H)
        x = ln(lin(a, pre + "attention.output.dense") + x, pre + "attention.output.LayerNorm")
        h = gelu(lin(x, pre + "intermediate.dense"))
        x = ln(lin(h, pre + "output.dense") + x, pre + "output.LayerNorm")
    feat = x.mean(1) if variant == "mean_pool" else x[:, 0]
    h = lin(feat, "classifier.dense")
    if variant != "no_tanh":
        h = torch.tanh(h)
    return lin(h, "classifier.out_proj")


def roberta_config(c):
    labels = c["labels"]
    arch = {"roberta": "RobertaForSequenceClassification",
            "xlm-roberta": "XLMRobertaForSequenceClassification"}[c["model_type"]]
    return {
        "architectures": [arch],
        "attention_probs_dropout_prob": 0.1,
        "bos_token_id": 0,
        "classifier_dropout": None,
        "eos_token_id": 2,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": c["hidden"],
        "id2label": {str(i): l for i, l in enumerate(labels)},
        "initializer_range": 0.02,
        "intermediate_size": c["inter"],
        "label2id": {l: i for i, l in enumerate(labels)},
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": 34,
        "model_type": c["model_type"],
        "num_attention_heads": c["heads"],
        "num_hidden_layers": c["layers"],
        "pad_token_id": 1,
        "position_embedding_type": "absolute",
        "torch_dtype": TORCH_DTYPE_NAME[c["dtype"]],
        "transformers_version": "4.44.0",
        "type_vocab_size": 1,
        "use_cache": True,
        "vocab_size": c["vocab"],
    }


# --------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------

CASES = [
    dict(name="distilbert-f32", family="distilbert", seed=4001, hidden=32, inter=64, layers=2, heads=4,
         vocab=100, labels=["negative", "neutral", "positive"], dtype="F32", shards=None, batch=True,
         activation="gelu", sinusoidal=False, proj_std=0.2, lengths=[5, 7, 9]),
    dict(name="distilbert-f16", family="distilbert", seed=4002, hidden=48, inter=96, layers=3, heads=6,
         vocab=120, labels=["NEGATIVE", "POSITIVE"], dtype="F16", shards=None, batch=False,
         activation="relu", sinusoidal=True, proj_std=0.2, lengths=[6, 8, 9]),
    dict(name="distilbert-bf16-sharded", family="distilbert", seed=4003, hidden=64, inter=128, layers=3, heads=8,
         vocab=100, labels=["NEGATIVE", "POSITIVE"], dtype="BF16", shards=3, batch=False,
         activation="gelu", sinusoidal=False, proj_std=0.15, lengths=[5, 8, 9]),
    dict(name="roberta-f32", family="roberta", model_type="roberta", seed=4101, hidden=32, inter=64, layers=2,
         heads=4, vocab=100, labels=["negative", "neutral", "positive"], dtype="F32", shards=None, batch=True,
         proj_std=0.2, lengths=[5, 7, 9]),
    dict(name="roberta-f16", family="roberta", model_type="roberta", seed=4102, hidden=48, inter=96, layers=3,
         heads=6, vocab=120, labels=["NEGATIVE", "POSITIVE"], dtype="F16", shards=None, batch=False,
         proj_std=0.2, lengths=[6, 8, 9]),
    dict(name="xlm-roberta-bf16-sharded", family="roberta", model_type="xlm-roberta", seed=4103, hidden=64,
         inter=128, layers=3, heads=8, vocab=100, labels=["NEGATIVE", "POSITIVE"], dtype="BF16", shards=3,
         batch=False, proj_std=0.15, lengths=[5, 8, 9]),
]


def save(outdir, raw, st_dtype, shards):
    """Single model.safetensors, or `shards` files cut at equal tensor counts
    (which splits layers across files), with model.safetensors.index.json."""
    if not shards:
        path = os.path.join(outdir, "model.safetensors")
        write_safetensors(path, raw, st_dtype)
        return read_safetensors(path)
    per = (len(raw) + shards - 1) // shards
    total, weight_map, loaded = 0, {}, {}
    for s in range(shards):
        part = raw[s * per:(s + 1) * per]
        check(len(part) > 0, "empty shard")
        fname = "model-%05d-of-%05d.safetensors" % (s + 1, shards)
        total += write_safetensors(os.path.join(outdir, fname), part, st_dtype)
        for n, _ in part:
            weight_map[n] = fname
        loaded.update(read_safetensors(os.path.join(outdir, fname)))
    write_json(os.path.join(outdir, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
    return loaded


def run(c, outroot, gen):
    print("== %s" % c["name"])
    fam = c["family"]
    if fam == "distilbert":
        cfg = distilbert_config(c)
        raw = distilbert_params(cfg, Init(c["seed"]), c["proj_std"])
        fwd = distilbert_forward
        cls_id, sep_id, pad = 2, 3, 0          # [CLS] [SEP] [PAD] of a BERT vocab
    else:
        cfg = roberta_config(c)
        raw = roberta_params(cfg, Init(c["seed"]), c["proj_std"])
        fwd = roberta_forward
        cls_id, sep_id, pad = 0, 2, 1          # <s> </s> <pad>
    init = Init(c["seed"] + 500)
    W = dict(round_to(raw, c["dtype"]))
    outdir = os.path.join(outroot, c["name"])
    os.makedirs(outdir, exist_ok=True)
    write_json(os.path.join(outdir, "config.json"), cfg, indent=2)
    loaded = save(outdir, raw, c["dtype"], c["shards"])
    check(set(loaded) == set(W), "safetensors names differ")
    for n in W:
        check(torch.equal(loaded[n], W[n]), "safetensors round trip differs for " + n)

    inputs = [[cls_id] + init.ints(L - 2, 5, c["vocab"]) + [sep_id] for L in c["lengths"]]
    logits, noise = [], 0.0
    for ids in inputs:
        t = torch.tensor([ids])
        y = fwd(cfg, W, t)
        noise = max(noise, maxdiff(y, fwd(cfg, W, t, dtype=torch.float64)))
        logits.append(y)
    allp = torch.cat(logits)
    print("    logits %s, f32 vs f64 max diff %.2g" % (f32list(allp), noise))
    check(float(allp.std()) > 0.05, "logits too flat")
    check(maxdiff(logits[0], logits[1]) > 0.01 and maxdiff(logits[1], logits[2]) > 0.01,
          "logits not input dependent")

    t = torch.tensor([inputs[-1]])
    base = logits[-1]
    if fam == "distilbert":
        sensitivity("no_position", base, fwd(cfg, W, t, variant="no_position"), noise)
        # GELU and ReLU differ only below ~+2, so these move logits less.
        sensitivity("head_gelu", base, fwd(cfg, W, t, variant="head_gelu"), noise, factor=100, min_rel=0.002)
        sensitivity("ffn_other_act", base, fwd(cfg, W, t, variant="ffn_other_act"), noise, factor=100,
                    min_rel=0.002)
    else:
        for v in ["positions_from_0", "positions_from_pad", "no_tanh", "mean_pool"]:
            sensitivity(v, base, fwd(cfg, W, t, variant=v), noise)

    exp = {
        "generator": gen.replace("tools/refgen/refgen.py", "tools/refgen/encoders.py"),
        "case": c["name"],
        "compute_dtype": "float32",
        "max_abs_diff_vs_float64": float("%.3g" % noise),
        "inputs": inputs,
        "logits": [f32list(y) for y in logits],
    }
    if c["batch"]:
        seqs = [inputs[0], inputs[1]]
        T = max(len(s) for s in seqs)
        ids = [s + [pad] * (T - len(s)) for s in seqs]
        mask = [[1] * len(s) + [0] * (T - len(s)) for s in seqs]
        yb = fwd(cfg, W, torch.tensor(ids), torch.tensor(mask))
        for b in range(len(seqs)):
            check(maxdiff(yb[b:b + 1], logits[b]) < 1e-5, "batch row %d differs" % b)
        sensitivity("no_mask", yb[0:1], fwd(cfg, W, torch.tensor(ids), torch.tensor(mask), variant="no_mask")[0:1],
                    noise)
        if fam == "roberta":
            got = roberta_positions(torch.tensor(ids), pad)[0].tolist()
            want = list(range(pad + 1, pad + 1 + len(seqs[0]))) + [pad] * (T - len(seqs[0]))
            check(got == want, "roberta positions %s, want %s" % (got, want))
        exp["batch"] = {
            "pad_token_id": pad,
            "input_ids": ids,
            "attention_mask": mask,
            "logits": [f32list(yb[b:b + 1]) for b in range(len(seqs))],
        }
        print("    batch ok (T=%d, lengths %s)" % (T, [len(s) for s in seqs]))
    write_json(os.path.join(outdir, "expected.json"), exp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output root, e.g. core/testdata/reference")
    ap.add_argument("--only", help="comma-separated case names")
    args = ap.parse_args()
    gen = generator_string()
    print(gen)
    only = set(args.only.split(",")) if args.only else None
    for c in CASES:
        if only is None or c["name"] in only:
            run(c, args.out, gen)
    print("all self-checks passed")


if __name__ == "__main__":
    main()
