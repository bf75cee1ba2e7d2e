#!/usr/bin/python3
"""Independent PyTorch reference for the Go Llama / BERT implementations.

Generates small, random, Hugging Face-style checkpoints (config.json +
safetensors weights) together with the logits a plain-PyTorch implementation
of the published architectures produces for a few token sequences.  The Go
tests read these fixtures and never need Python.

Run from the repository root (Debian's system interpreter, which has torch):

    /usr/bin/python3 tools/refgen/refgen.py --out core/testdata/reference

Only torch and numpy are used: Hugging Face `transformers` and `safetensors`
are not required.  The models are written from the architecture definitions
(LlamaForCausalLM, BertForSequenceClassification, eval mode) and safetensors
files are written by hand:

    8-byte little-endian header length N
    N bytes of JSON: {"__metadata__": {"format": "pt"},
                      name: {"dtype": "F32"|"F16"|"BF16", "shape": [...],
                             "data_offsets": [begin, end]}, ...}
                     (padded with spaces to a multiple of 8)
    raw little-endian tensor data, in header order.

Everything is deterministic (fixed seeds, single thread, CPU).  Weights stored
as F16 / BF16 are rounded first; the reference then computes in float32 from
the rounded values, exactly as a loader that upcasts would.

Output, one folder per case:
    config.json     Hugging Face config keys
    *.safetensors   weights (plus model.safetensors.index.json when sharded)
    expected.json   {"generator", "case", "compute_dtype",
                     "max_abs_diff_vs_float64", "inputs", "logits",
                     optional "batch"} -- see core/testdata/reference/README.md

Before writing, the script checks its own reference: safetensors round trip,
causality (logits of a prefix == first rows of the longer run), masked batch
rows == unpadded single runs, and that plausible implementation mistakes
(wrong RoPE convention, wrong GQA head grouping, tanh GELU, ...) change the
logits by much more than the float32 noise, so the fixtures are sensitive.
"""

import argparse
import json
import math
import os
import platform
import struct
import subprocess
import sys

import numpy as np
import torch

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

DTYPES = {
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
}
TORCH_DTYPE_NAME = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}
ELEM_SIZE = {"F32": 4, "F16": 2, "BF16": 2}


# --------------------------------------------------------------------------
# safetensors (hand-written)
# --------------------------------------------------------------------------

def tensor_bytes(t, st_dtype):
    t = t.detach().contiguous().to(DTYPES[st_dtype])
    if st_dtype == "BF16":
        arr = t.view(torch.int16).numpy().astype("<i2")
    elif st_dtype == "F16":
        arr = t.numpy().astype("<f2")
    else:
        arr = t.numpy().astype("<f4")
    return arr.tobytes(order="C")


def write_safetensors(path, tensors, st_dtype):
    """tensors: list of (name, torch tensor); written in this order."""
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    off = 0
    for name, t in tensors:
        b = tensor_bytes(t, st_dtype)
        header[name] = {
            "dtype": st_dtype,
            "shape": list(t.shape),
            "data_offsets": [off, off + len(b)],
        }
        blobs.append(b)
        off += len(b)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    return off


def read_safetensors(path):
    """Independent reader used to verify the writer round-trips."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    assert n % 8 == 0
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = data[8 + n:]
    out = {}
    end_max = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        end_max = max(end_max, e)
        raw = body[b:e]
        shape = info["shape"]
        if info["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)
            t = torch.from_numpy(arr.copy())
        elif info["dtype"] == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
            t = torch.from_numpy(arr.copy())
        elif info["dtype"] == "BF16":
            u16 = np.frombuffer(raw, dtype="<u2").astype(np.uint32)
            arr = (u16 << 16).view(np.float32)
            t = torch.from_numpy(arr.copy())
        else:
            raise ValueError(info["dtype"])
        out[name] = t.reshape(shape)
    assert end_max == len(body), (end_max, len(body))
    return out


# --------------------------------------------------------------------------
# deterministic random weights
# --------------------------------------------------------------------------

class Init:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def normal(self, shape, std, mean=0.0):
        return torch.randn(*shape, generator=self.g, dtype=torch.float32) * std + mean

    def ints(self, n, lo, hi):
        return torch.randint(lo, hi, (n,), generator=self.g).tolist()


def round_to(params, st_dtype):
    """Round to storage dtype, return float32 copies (what a loader sees)."""
    return [(n, t.to(DTYPES[st_dtype]).to(torch.float32)) for n, t in params]


# --------------------------------------------------------------------------
# Llama (LlamaForCausalLM)
# --------------------------------------------------------------------------

def llama_params(cfg, init):
    H = cfg["hidden_size"]
    I = cfg["intermediate_size"]
    V = cfg["vocab_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg["num_key_value_heads"]
    hd = H // nh
    p = [("model.embed_tokens.weight", init.normal((V, H), cfg["_embed_std"]))]
    s = cfg["_proj_std"]
    for i in range(cfg["num_hidden_layers"]):
        pre = "model.layers.%d." % i
        p += [
            (pre + "input_layernorm.weight", init.normal((H,), 0.1, 1.0)),
            (pre + "self_attn.q_proj.weight", init.normal((nh * hd, H), s)),
            (pre + "self_attn.k_proj.weight", init.normal((nkv * hd, H), s)),
            (pre + "self_attn.v_proj.weight", init.normal((nkv * hd, H), s)),
            (pre + "self_attn.o_proj.weight", init.normal((H, nh * hd), s)),
            (pre + "post_attention_layernorm.weight", init.normal((H,), 0.1, 1.0)),
            (pre + "mlp.gate_proj.weight", init.normal((I, H), s)),
            (pre + "mlp.up_proj.weight", init.normal((I, H), s)),
            (pre + "mlp.down_proj.weight", init.normal((H, I), s)),
        ]
    p.append(("model.norm.weight", init.normal((H,), 0.1, 1.0)))
    if not cfg["tie_word_embeddings"]:
        p.append(("lm_head.weight", init.normal((V, H), cfg["_head_std"])))
    return p


def rms_norm(x, w, eps):
    xf = x.to(torch.float32) if x.dtype != torch.float64 else x
    var = xf.pow(2).mean(-1, keepdim=True)
    return w * (xf * torch.rsqrt(var + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def llama_forward(cfg, W, input_ids, attention_mask=None, dtype=torch.float32,
                  variant=None):
    """input_ids: LongTensor [B, T]; attention_mask: [B, T] of 0/1 or None.

    Returns logits [B, T, V].  Positions are 0..T-1 (right padding).
    `variant` deliberately introduces a common implementation mistake; it is
    only used by the sensitivity self-check.
    """
    W = {k: v.to(dtype) for k, v in W.items()}
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg["num_key_value_heads"]
    hd = H // nh
    rep = nh // nkv
    eps = cfg["rms_norm_eps"]
    B, T = input_ids.shape

    # rotary tables (HF default rope)
    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).to(dtype) / hd))
    pos = torch.arange(T, dtype=dtype)
    freqs = torch.outer(pos, inv_freq)                     # [T, hd/2]
    emb = torch.cat((freqs, freqs), dim=-1)                # [T, hd]
    cos, sin = emb.cos(), emb.sin()

    def rope(x):  # x [B, heads, T, hd]
        if variant == "rope_interleaved":
            x2 = x.reshape(*x.shape[:-1], hd // 2, 2)
            c = freqs.cos()
            s = freqs.sin()
            a, b = x2[..., 0], x2[..., 1]
            return torch.stack((a * c - b * s, a * s + b * c), dim=-1).reshape(x.shape)
        return x * cos + rotate_half(x) * sin

    # additive mask [B, 1, T, T]: causal + key padding
    minval = torch.finfo(dtype).min
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    allowed = causal.view(1, 1, T, T).expand(B, 1, T, T)
    if attention_mask is not None:
        allowed = allowed & attention_mask.bool().view(B, 1, 1, T)
    if variant == "no_causal":
        allowed = torch.ones_like(allowed)
    mask = torch.zeros(B, 1, T, T, dtype=dtype).masked_fill(~allowed, minval)

    x = W["model.embed_tokens.weight"][input_ids]          # [B, T, H]
    for i in range(cfg["num_hidden_layers"]):
        pre = "model.layers.%d." % i
        h = rms_norm(x, W[pre + "input_layernorm.weight"], eps)
        q = (h @ W[pre + "self_attn.q_proj.weight"].T).view(B, T, nh, hd).transpose(1, 2)
        k = (h @ W[pre + "self_attn.k_proj.weight"].T).view(B, T, nkv, hd).transpose(1, 2)
        v = (h @ W[pre + "self_attn.v_proj.weight"].T).view(B, T, nkv, hd).transpose(1, 2)
        if variant != "no_rope":
            q, k = rope(q), rope(k)
        if variant == "gqa_tiled":
            k = k.repeat(1, rep, 1, 1)
            v = v.repeat(1, rep, 1, 1)
        else:  # HF repeat_kv: kv head j serves query heads j*rep .. j*rep+rep-1
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd) + mask
        probs = torch.softmax(scores, dim=-1)
        a = (probs @ v).transpose(1, 2).reshape(B, T, nh * hd)
        x = x + a @ W[pre + "self_attn.o_proj.weight"].T
        h = rms_norm(x, W[pre + "post_attention_layernorm.weight"], eps)
        g = h @ W[pre + "mlp.gate_proj.weight"].T
        u = h @ W[pre + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ W[pre + "mlp.down_proj.weight"].T
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
    return x @ head.T


def llama_config(hidden, inter, layers, heads, kv, vocab, theta, tied, st_dtype):
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": hidden // heads,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "max_position_embeddings": 64,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv,
        "pad_token_id": 0,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": float(theta),
        "tie_word_embeddings": tied,
        "torch_dtype": TORCH_DTYPE_NAME[st_dtype],
        "transformers_version": "4.44.0",
        "use_cache": True,
        "vocab_size": vocab,
    }


# --------------------------------------------------------------------------
# BERT (BertForSequenceClassification, eval mode)
# --------------------------------------------------------------------------

def bert_params(cfg, init):
    H = cfg["hidden_size"]
    I = cfg["intermediate_size"]
    V = cfg["vocab_size"]
    P = cfg["max_position_embeddings"]
    L = len(cfg["id2label"])
    s = cfg["_proj_std"]
    bs = 0.1

    def ln(prefix):
        return [(prefix + ".weight", init.normal((H,), 0.1, 1.0)),
                (prefix + ".bias", init.normal((H,), 0.1))]

    def lin(prefix, o, i):
        return [(prefix + ".weight", init.normal((o, i), s)),
                (prefix + ".bias", init.normal((o,), bs))]

    p = [
        ("bert.embeddings.word_embeddings.weight", init.normal((V, H), 0.5)),
        ("bert.embeddings.position_embeddings.weight", init.normal((P, H), 0.5)),
        ("bert.embeddings.token_type_embeddings.weight", init.normal((cfg["type_vocab_size"], H), 0.5)),
    ]
    p += ln("bert.embeddings.LayerNorm")
    for i in range(cfg["num_hidden_layers"]):
        pre = "bert.encoder.layer.%d." % i
        p += lin(pre + "attention.self.query", H, H)
        p += lin(pre + "attention.self.key", H, H)
        p += lin(pre + "attention.self.value", H, H)
        p += lin(pre + "attention.output.dense", H, H)
        p += ln(pre + "attention.output.LayerNorm")
        p += lin(pre + "intermediate.dense", I, H)
        p += lin(pre + "output.dense", H, I)
        p += ln(pre + "output.LayerNorm")
    p += lin("bert.pooler.dense", H, H)
    p += lin("classifier", L, H)
    return p


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = (x - mu).pow(2).mean(-1, keepdim=True)  # biased variance
    return (x - mu) / torch.sqrt(var + eps) * w + b


def bert_forward(cfg, W, input_ids, attention_mask=None, dtype=torch.float32,
                 variant=None):
    """Returns classification logits [B, num_labels]."""
    W = {k: v.to(dtype) for k, v in W.items()}
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    hd = H // nh
    eps = cfg["layer_norm_eps"]
    B, T = input_ids.shape

    def lin(x, name):
        return x @ W[name + ".weight"].T + W[name + ".bias"]

    def lnorm(x, name):
        return layer_norm(x, W[name + ".weight"], W[name + ".bias"], eps)

    def gelu(x):
        if variant == "gelu_tanh":
            return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))

    if attention_mask is None:
        attention_mask = torch.ones(B, T, dtype=torch.long)
    ext = (1.0 - attention_mask.to(dtype)).view(B, 1, 1, T) * torch.finfo(dtype).min

    pos = torch.arange(T)
    x = (W["bert.embeddings.word_embeddings.weight"][input_ids]
         + W["bert.embeddings.token_type_embeddings.weight"][torch.zeros_like(input_ids)])
    if variant != "no_position":
        x = x + W["bert.embeddings.position_embeddings.weight"][pos].unsqueeze(0)
    x = lnorm(x, "bert.embeddings.LayerNorm")
    for i in range(cfg["num_hidden_layers"]):
        pre = "bert.encoder.layer.%d." % i
        q = lin(x, pre + "attention.self.query").view(B, T, nh, hd).transpose(1, 2)
        k = lin(x, pre + "attention.self.key").view(B, T, nh, hd).transpose(1, 2)
        v = lin(x, pre + "attention.self.value").view(B, T, nh, hd).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
        if variant != "no_mask":
            scores = scores + ext
        probs = torch.softmax(scores, dim=-1)
        a = (probs @ v).transpose(1, 2).reshape(B, T, H)
        x = lnorm(lin(a, pre + "attention.output.dense") + x, pre + "attention.output.LayerNorm")
        h = gelu(lin(x, pre + "intermediate.dense"))
        x = lnorm(lin(h, pre + "output.dense") + x, pre + "output.LayerNorm")
    pooled = torch.tanh(lin(x[:, 0], "bert.pooler.dense"))
    if variant == "mean_pool":
        pooled = torch.tanh(lin(x.mean(1), "bert.pooler.dense"))
    return lin(pooled, "classifier")


def bert_config(hidden, inter, layers, heads, vocab, labels, st_dtype):
    return {
        "architectures": ["BertForSequenceClassification"],
        "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": None,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": hidden,
        "id2label": {str(i): l for i, l in enumerate(labels)},
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "label2id": {l: i for i, l in enumerate(labels)},
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 32,
        "model_type": "bert",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "torch_dtype": TORCH_DTYPE_NAME[st_dtype],
        "transformers_version": "4.44.0",
        "type_vocab_size": 2,
        "use_cache": True,
        "vocab_size": vocab,
    }


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def f32list(t):
    """Nested lists of floats with 9 significant digits (round-trips float32)."""
    a = t.detach().to(torch.float32).numpy()

    def conv(x):
        if x.ndim == 0:
            return float("%.9g" % float(x))
        return [conv(y) for y in x]
    return conv(a)


def generator_string():
    try:
        deb = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "python3-torch"],
                             capture_output=True, text=True).stdout.strip()
    except OSError:
        deb = ""
    s = "torch %s" % torch.__version__
    if deb:
        s += " (Debian python3-torch %s)" % deb
    s += ", numpy %s, python %s, tools/refgen/refgen.py" % (np.__version__, platform.python_version())
    return s


def check(cond, msg):
    if not cond:
        raise SystemExit("SELF-CHECK FAILED: " + msg)


def maxdiff(a, b):
    return float((a.to(torch.float64) - b.to(torch.float64)).abs().max())


def sensitivity(name, base, other, noise, factor=1000, min_rel=0.01):
    d = maxdiff(base, other)
    rel = d / float(base.abs().max())
    print("    variant %-18s max|diff|=%.3g (rel %.3g)" % (name, d, rel))
    check(d > factor * max(noise, 1e-6) and rel > min_rel,
          "variant %s is not distinguishable (diff %g, noise %g)" % (name, d, noise))


# --------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------

LLAMA_CASES = [
    # name, seed, hidden, inter, layers, heads, kv, vocab, theta, tied, dtype, shards
    dict(name="llama-gqa-f32", seed=1001, hidden=64, inter=160, layers=2, heads=4, kv=2,
         vocab=96, theta=10000, tied=False, dtype="F32", shards=None, batch=True,
         embed_std=1.0, proj_std=0.15, head_std=0.15, lengths=[5, 7, 9]),
    dict(name="llama-mha-tied-f16", seed=1002, hidden=32, inter=88, layers=2, heads=4, kv=4,
         vocab=128, theta=500000, tied=True, dtype="F16", shards=None, batch=False,
         embed_std=0.3, proj_std=0.2, head_std=None, lengths=[6, 8, 9]),
    dict(name="llama-bf16-sharded", seed=1003, hidden=64, inter=128, layers=3, heads=8, kv=2,
         vocab=80, theta=10000, tied=False, dtype="BF16", shards=3, batch=False,
         embed_std=1.0, proj_std=0.15, head_std=0.15, lengths=[5, 8, 9]),
]

BERT_CASES = [
    dict(name="bert-f32", seed=2001, hidden=32, inter=64, layers=2, heads=4, vocab=100,
         labels=["negative", "neutral", "positive"], dtype="F32", batch=True,
         proj_std=0.2, lengths=[5, 7, 9]),
    dict(name="bert-f16", seed=2002, hidden=48, inter=96, layers=3, heads=6, vocab=120,
         labels=["NEGATIVE", "POSITIVE"], dtype="F16", batch=False,
         proj_std=0.2, lengths=[6, 8, 9]),
]


def shard_plan(names, layers):
    """3 shards that deliberately split layer 1 and layer 2 across files."""
    plan = {}
    for n in names:
        if n.startswith("model.embed_tokens") or n.startswith("model.layers.0."):
            s = 1
        elif n.startswith("model.layers.1."):
            s = 1 if ".self_attn." in n else 2
        elif n.startswith("model.layers.2."):
            s = 2 if ".self_attn." in n else 3
        else:
            s = 3
        plan[n] = s
    return plan


def save_weights(outdir, params_raw, st_dtype, shards, layers):
    if not shards:
        path = os.path.join(outdir, "model.safetensors")
        write_safetensors(path, params_raw, st_dtype)
        return read_safetensors(path)
    plan = shard_plan([n for n, _ in params_raw], layers)
    total = 0
    weight_map = {}
    loaded = {}
    for s in range(1, shards + 1):
        fname = "model-%05d-of-%05d.safetensors" % (s, shards)
        part = [(n, t) for n, t in params_raw if plan[n] == s]
        check(len(part) > 0, "empty shard")
        total += write_safetensors(os.path.join(outdir, fname), part, st_dtype)
        for n, _ in part:
            weight_map[n] = fname
        loaded.update(read_safetensors(os.path.join(outdir, fname)))
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    with open(os.path.join(outdir, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    return loaded


def write_json(path, obj, indent=None):
    with open(path, "w") as f:
        json.dump(obj, f, indent=indent, separators=None if indent else (",", ":"))
        f.write("\n")


def run_llama(c, outroot, gen):
    print("== %s" % c["name"])
    cfg = llama_config(c["hidden"], c["inter"], c["layers"], c["heads"], c["kv"],
                       c["vocab"], c["theta"], c["tied"], c["dtype"])
    icfg = dict(cfg, _embed_std=c["embed_std"], _proj_std=c["proj_std"], _head_std=c["head_std"])
    init = Init(c["seed"])
    raw = llama_params(icfg, init)
    params = round_to(raw, c["dtype"])
    W = dict(params)
    outdir = os.path.join(outroot, c["name"])
    os.makedirs(outdir, exist_ok=True)
    write_json(os.path.join(outdir, "config.json"), cfg, indent=2)
    loaded = save_weights(outdir, raw, c["dtype"], c["shards"], c["layers"])
    check(set(loaded) == set(W), "safetensors names differ")
    for n in W:
        check(torch.equal(loaded[n], W[n]), "safetensors round trip differs for " + n)
    if c["tied"]:
        check("lm_head.weight" not in loaded, "lm_head present in tied model")

    inputs = []
    for L in c["lengths"]:
        inputs.append([cfg["bos_token_id"]] + init.ints(L - 1, 3, c["vocab"]))
    logits = []
    noise = 0.0
    for ids in inputs:
        t = torch.tensor([ids])
        y = llama_forward(cfg, W, t)[0]
        y64 = llama_forward(cfg, W, t, dtype=torch.float64)[0]
        noise = max(noise, maxdiff(y, y64))
        # causality: each prefix reproduces the first rows
        for p in range(1, len(ids)):
            yp = llama_forward(cfg, W, torch.tensor([ids[:p]]))[0]
            check(maxdiff(yp, y[:p]) < 1e-5, "causality violated at prefix %d" % p)
        logits.append(y)
    print("    logits std %.3f, max|.| %.3f, f32 vs f64 max diff %.2g"
          % (float(torch.cat(logits).std()), float(torch.cat(logits).abs().max()), noise))
    # argmax should not be constant
    am = torch.cat(logits).argmax(-1)
    check(len(set(am.tolist())) > 2, "argmax nearly constant")

    base = logits[-1]
    t = torch.tensor([inputs[-1]])
    variants = ["rope_interleaved", "no_rope", "no_causal"]
    if c["kv"] != c["heads"]:
        variants.append("gqa_tiled")
    for v in variants:
        sensitivity(v, base, llama_forward(cfg, W, t, variant=v)[0], noise)
    # wrong rope_theta
    cfg2 = dict(cfg, rope_theta=10000.0 if cfg["rope_theta"] != 10000.0 else 500000.0)
    sensitivity("rope_theta", base, llama_forward(cfg2, W, t)[0], noise)
    if not c["tied"]:
        # using embed_tokens as the output head must be detectable
        sensitivity("tied_head", base, llama_forward(dict(cfg, tie_word_embeddings=True), W, t)[0], noise)

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
        yb = llama_forward(cfg, W, torch.tensor(ids), torch.tensor(mask))
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


def run_bert(c, outroot, gen):
    print("== %s" % c["name"])
    cfg = bert_config(c["hidden"], c["inter"], c["layers"], c["heads"], c["vocab"],
                      c["labels"], c["dtype"])
    icfg = dict(cfg, _proj_std=c["proj_std"])
    init = Init(c["seed"])
    raw = bert_params(icfg, init)
    params = round_to(raw, c["dtype"])
    W = dict(params)
    outdir = os.path.join(outroot, c["name"])
    os.makedirs(outdir, exist_ok=True)
    write_json(os.path.join(outdir, "config.json"), cfg, indent=2)
    loaded = save_weights(outdir, raw, c["dtype"], None, c["layers"])
    check(set(loaded) == set(W), "safetensors names differ")
    for n in W:
        check(torch.equal(loaded[n], W[n]), "safetensors round trip differs for " + n)

    CLS, SEP = 2, 3
    inputs = []
    for L in c["lengths"]:
        inputs.append([CLS] + init.ints(L - 2, 5, c["vocab"]) + [SEP])
    logits = []
    noise = 0.0
    for ids in inputs:
        t = torch.tensor([ids])
        y = bert_forward(cfg, W, t)
        y64 = bert_forward(cfg, W, t, dtype=torch.float64)
        noise = max(noise, maxdiff(y, y64))
        logits.append(y)  # [1, num_labels]
    allp = torch.cat(logits)
    print("    logits %s, f32 vs f64 max diff %.2g" % (f32list(allp), noise))
    check(float(allp.std()) > 0.05, "logits too flat")
    # inputs must disagree with each other noticeably (input-dependent output)
    check(maxdiff(logits[0], logits[1]) > 0.01 and maxdiff(logits[1], logits[2]) > 0.01,
          "logits not input dependent")

    t = torch.tensor([inputs[-1]])
    base = logits[-1]
    for v in ["no_position", "mean_pool"]:
        sensitivity(v, base, bert_forward(cfg, W, t, variant=v), noise)
    # erf vs tanh GELU differ by < 5e-4 pointwise, so only a tight tolerance
    # (~1e-5) catches it; require a clear margin over float32 noise.
    sensitivity("gelu_tanh", base, bert_forward(cfg, W, t, variant="gelu_tanh"), noise,
                factor=50, min_rel=0)
    cfg2 = dict(cfg, layer_norm_eps=1e-5)
    d = maxdiff(base, bert_forward(cfg2, W, t))
    print("    variant %-18s max|diff|=%.3g (informational)" % ("layer_norm_eps=1e-5", d))

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
        yb = bert_forward(cfg, W, torch.tensor(ids), torch.tensor(mask))
        for b in range(len(seqs)):
            check(maxdiff(yb[b:b + 1], logits[b]) < 1e-5, "batch row %d differs" % b)
        sensitivity("no_mask", yb[0:1], bert_forward(cfg, W, torch.tensor(ids), torch.tensor(mask),
                                                     variant="no_mask")[0:1], noise)
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
    args = ap.parse_args()
    gen = generator_string()
    print(gen)
    for c in LLAMA_CASES:
        run_llama(c, args.out, gen)
    for c in BERT_CASES:
        run_bert(c, args.out, gen)
    print("all self-checks passed")


if __name__ == "__main__":
    main()
