#!/usr/bin/python3
"""Independent PyTorch reference for Hugging Face PEFT LoRA / DoRA adapters.

Writes random LoRA-family adapters, in the layout Hugging Face PEFT uses, for
the base checkpoints that tools/refgen/refgen.py generates under
core/testdata/reference/. For each adapter it also writes the logits of the
adapted model and the merged weights. Both come from a plain-PyTorch
implementation of PEFT's formulas. The Go tests read these fixtures and never
need Python.

Run from the repository root after refgen.py (Debian's system interpreter,
which has torch):

    /usr/bin/python3 tools/refgen/peftgen.py --out core/testdata/reference/peft

The base checkpoints are read from the parent of --out (override with
--base-root). `transformers`, `peft` and `safetensors` aren't used. The models
and the hand-written safetensors reader/writer come from refgen.py, which is
imported as a module.

PEFT semantics implemented (eval mode, lora_dropout 0):
    scaling s        = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora.
                       rank_pattern / alpha_pattern override r / alpha for the
                       first key k for which re.match(r"(.*\\.)?(k)$", name).
    target_modules   list: name == t or name.endswith("." + t);
                     str : re.fullmatch(target_modules, name).
    LoRA             y = W x + b + s * B (A x);   merged W' = W + s * B @ A
    DoRA             V = W + s * B @ A,  n = ||V|| per output row (L2 over in),
                     y = (m / n) * (W x + s * B A x) + b;  merged W' = (m/n)[:,None] * V
    modules_to_save  the module's weights are replaced by the adapter's copy.
Base weights are the F16/BF16-rounded values from the base files upcast to
float32. Everything is computed in float32, and a float64 run records the
noise floor.

Output, one folder per case (see core/testdata/reference/peft/README.md):
    adapter_config.json        as PEFT's save_pretrained writes it (sorted keys, indent 2)
    adapter_model.safetensors  F32, keys base_model.model.<module>.lora_A.weight, ...
    expected.json              {"generator", "case", "base", "compute_dtype",
                                "max_abs_diff_vs_float64", "inputs", "logits",
                                "scales", "ranks"}
    merged.safetensors         F32, adapted / replaced tensors under their base names

Before writing, the script checks its own output:
    (a) the merged-weights model matches the on-the-fly adapter within 1e-5;
    (b) with lora_B zeroed (and, for DoRA, m = ||W||), the adapter model
        reproduces the base expected.json logits on the base inputs;
    (c) the adapter changes the logits by more than 1e-2;
    plus safetensors round trips and sensitivity to plausible mistakes (wrong
    rsLoRA scaling, scaling ignored, ignored rank/alpha patterns, DoRA without magnitude or
    with the wrong norm, missed modules, classifier not replaced).
Everything is deterministic: fixed seeds, one thread, CPU.
"""

import argparse
import json
import math
import os
import re
import sys

import torch

sys.dont_write_bytecode = True  # no __pycache__ next to refgen.py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refgen as rg  # noqa: E402  (sets torch threads / determinism)

check = rg.check
maxdiff = rg.maxdiff
f32list = rg.f32list


# --------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------

CASES = [
    dict(name="llama-lora-qv", base="llama-gqa-f32", seed=3001, task="CAUSAL_LM",
         r=4, alpha=8, target_modules=["q_proj", "v_proj"],
         use_rslora=False, use_dora=False, rank_pattern={}, alpha_pattern={},
         modules_to_save=None, lengths=[4, 6, 8], a_std=0.15, b_std=0.1),
    dict(name="llama-rslora-all", base="llama-gqa-f32", seed=3002, task="CAUSAL_LM",
         r=8, alpha=16,
         target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
         use_rslora=True, use_dora=False, rank_pattern={"down_proj": 2},
         alpha_pattern={"layers.1.self_attn.q_proj": 32},
         modules_to_save=None, lengths=[5, 7, 8], a_std=0.1, b_std=0.05),
    dict(name="llama-dora-qkvo", base="llama-mha-tied-f16", seed=3003, task="CAUSAL_LM",
         r=4, alpha=8,
         target_modules=r"model\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|o_proj)",
         use_rslora=False, use_dora=True, rank_pattern={}, alpha_pattern={},
         modules_to_save=None, lengths=[4, 5, 8], a_std=0.15, b_std=0.12),
    dict(name="llama-lora-sharded", base="llama-bf16-sharded", seed=3004, task="CAUSAL_LM",
         r=2, alpha=4, target_modules=["gate_proj", "up_proj"],
         use_rslora=False, use_dora=False, rank_pattern={}, alpha_pattern={},
         modules_to_save=None, lengths=[4, 7, 8], a_std=0.15, b_std=0.15),
    dict(name="bert-lora-qv-head", base="bert-f32", seed=3005, task="SEQ_CLS",
         r=4, alpha=8, target_modules=["query", "value"],
         use_rslora=False, use_dora=False, rank_pattern={}, alpha_pattern={},
         modules_to_save=["classifier"], lengths=[4, 6, 8], a_std=0.15, b_std=0.15),
    dict(name="bert-dora-dense", base="bert-f16", seed=3006, task="SEQ_CLS",
         r=2, alpha=4, target_modules=["dense"],
         use_rslora=False, use_dora=True, rank_pattern={}, alpha_pattern={},
         modules_to_save=None, lengths=[4, 7, 8], a_std=0.15, b_std=0.15),
]


# --------------------------------------------------------------------------
# base checkpoints
# --------------------------------------------------------------------------

def load_base(root, name):
    d = os.path.join(root, name)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(d, "expected.json")) as f:
        exp = json.load(f)
    idx = os.path.join(d, "model.safetensors.index.json")
    W = {}
    if os.path.exists(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        for fn in files:
            W.update(rg.read_safetensors(os.path.join(d, fn)))
    else:
        W = rg.read_safetensors(os.path.join(d, "model.safetensors"))
    arch = cfg["model_type"]
    check(arch in ("llama", "bert"), "unknown base arch " + arch)
    return cfg, W, exp, arch


def linear_modules(cfg, arch):
    """Names of the nn.Linear modules of the HF model, in module order."""
    names = []
    if arch == "llama":
        for i in range(cfg["num_hidden_layers"]):
            pre = "model.layers.%d." % i
            names += [pre + "self_attn." + p for p in ("q_proj", "k_proj", "v_proj", "o_proj")]
            names += [pre + "mlp." + p for p in ("gate_proj", "up_proj", "down_proj")]
        if not cfg["tie_word_embeddings"]:
            names.append("lm_head")
    else:
        for i in range(cfg["num_hidden_layers"]):
            pre = "bert.encoder.layer.%d." % i
            names += [pre + "attention.self." + p for p in ("query", "key", "value")]
            names += [pre + "attention.output.dense", pre + "intermediate.dense", pre + "output.dense"]
        names += ["bert.pooler.dense", "classifier"]
    return names


def forward(arch, cfg, W, ids, dtype=torch.float32):
    t = torch.tensor([ids])
    if arch == "llama":
        return rg.llama_forward(cfg, W, t, dtype=dtype)[0]      # [T, vocab]
    return rg.bert_forward(cfg, W, t, dtype=dtype)               # [1, labels]


# --------------------------------------------------------------------------
# PEFT semantics
# --------------------------------------------------------------------------

def target_match(target_modules, name):
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, name) is not None
    return any(name == t or name.endswith("." + t) for t in target_modules)


def pattern_key(keys, name):
    for k in keys:
        if re.match(r"(.*\.)?(%s)$" % k, name):
            return k
    return None


def rank_alpha(c, name):
    r, alpha = c["r"], c["alpha"]
    k = pattern_key(list(c["rank_pattern"]), name)
    if k is not None:
        r = c["rank_pattern"][k]
    k = pattern_key(list(c["alpha_pattern"]), name)
    if k is not None:
        alpha = c["alpha_pattern"][k]
    return r, alpha


def scaling(alpha, r, rslora):
    return alpha / math.sqrt(r) if rslora else alpha / r


def row_norm(V):
    return torch.linalg.norm(V, dim=1)


class LoraWeight:
    """Stands in for W[name] in refgen's forward functions, which only use
    weights as `x @ W[name].T` (and `.to(dtype)`). `x @ lw.T` computes the
    adapted layer on the fly; the merged weight is never formed."""

    def __init__(self, W, A, B, s, m=None, variant=None):
        self.W, self.A, self.B, self.s, self.m, self.variant = W, A, B, s, m, variant

    def to(self, dtype):
        return LoraWeight(self.W.to(dtype), self.A.to(dtype), self.B.to(dtype), self.s,
                          None if self.m is None else self.m.to(dtype), self.variant)

    @property
    def T(self):
        return _LoraT(self)


class _LoraT:
    def __init__(self, lw):
        self.lw = lw

    def __rmatmul__(self, x):
        lw = self.lw
        base = x @ lw.W.T
        lora = (x @ lw.A.T) @ lw.B.T
        if lw.m is None or lw.variant == "dora_no_magnitude":
            return base + lw.s * lora
        if lw.variant == "dora_norm_of_W":
            n = row_norm(lw.W)
        elif lw.variant == "dora_norm_dim0":
            n = torch.linalg.norm(lw.W + lw.s * (lw.B @ lw.A), dim=0)
        else:
            n = row_norm(lw.W + lw.s * (lw.B @ lw.A))
        return (lw.m / n) * (base + lw.s * lora)


def merged_weight(W, A, B, s, m=None):
    V = W + s * (B @ A)
    if m is None:
        return V
    return (m / row_norm(V))[:, None] * V


def adapted_weights(Wb, mods, replace, variant=None, zero_b=False):
    """Base weight dict with adapted modules swapped for LoraWeight objects."""
    W = dict(Wb)
    for name, md in mods.items():
        w = Wb[name + ".weight"]
        B = torch.zeros_like(md["B"]) if zero_b else md["B"]
        m = md["m"]
        if m is not None and zero_b:
            m = row_norm(w)  # PEFT's DoRA init
        s = md["s"]
        if variant == "no_scaling":
            s = 1.0
        elif variant == "scale_alpha_over_r":
            s = md["alpha"] / md["r"]
        elif variant == "ignore_rank_pattern":
            s = scaling(md["alpha"], md["r_cfg"], md["rslora"])
        elif variant == "ignore_alpha_pattern":
            s = scaling(md["alpha_cfg"], md["r"], md["rslora"])
        if variant == "skip_pooler" and name == "bert.pooler.dense":
            continue
        W[name + ".weight"] = LoraWeight(w, md["A"], B, s, m, variant)
    if not zero_b and variant != "no_modules_to_save":
        W.update(replace)
    return W


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------

def adapter_config(c):
    """Key set and layout of PEFT's LoraConfig.save_pretrained (json.dumps(indent=2,
    sort_keys=True), no trailing newline)."""
    return {
        "alpha_pattern": dict(c["alpha_pattern"]),
        "auto_mapping": None,
        "base_model_name_or_path": "../../" + c["base"],
        "bias": "none",
        "exclude_modules": None,
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layer_replication": None,
        "layers_pattern": None,
        "layers_to_transform": None,
        "loftq_config": {},
        "lora_alpha": c["alpha"],
        "lora_bias": False,
        "lora_dropout": 0.0,
        "megatron_config": None,
        "megatron_core": "megatron.core",
        "modules_to_save": None if c["modules_to_save"] is None else list(c["modules_to_save"]),
        "peft_type": "LORA",
        "r": c["r"],
        "rank_pattern": dict(c["rank_pattern"]),
        "revision": None,
        "target_modules": c["target_modules"] if isinstance(c["target_modules"], str)
        else list(c["target_modules"]),
        "task_type": c["task"],
        "use_dora": c["use_dora"],
        "use_rslora": c["use_rslora"],
    }


def write_sorted_safetensors(path, tensors):
    """F32, keys in sorted order (as safetensors.torch.save_file lays them out)."""
    tensors = sorted(tensors.items())
    rg.write_safetensors(path, tensors, "F32")
    back = rg.read_safetensors(path)
    check(list(back) == [n for n, _ in tensors], "safetensors key order " + path)
    for n, t in tensors:
        check(torch.equal(back[n], t.to(torch.float32)), "safetensors round trip %s %s" % (path, n))


def sensitivity(name, ref, other, noise):
    d = max(maxdiff(a, b) for a, b in zip(ref, other))
    rel = d / max(float(a.abs().max()) for a in ref)
    print("    variant %-22s max|diff|=%.3g (rel %.3g)" % (name, d, rel))
    check(d > 1000 * max(noise, 1e-6) and d > 1e-3,
          "variant %s is not distinguishable (diff %g, noise %g)" % (name, d, noise))


def run_case(c, base_root, outroot, gen):
    print("== %s (base %s)" % (c["name"], c["base"]))
    cfg, Wb, bexp, arch = load_base(base_root, c["base"])
    init = rg.Init(c["seed"])
    names = linear_modules(cfg, arch)
    saved = set(c["modules_to_save"] or [])
    targets = [n for n in names if target_match(c["target_modules"], n)
               and n.split(".")[-1] not in saved and n not in saved]
    check(len(targets) > 0, "no target modules")

    mods = {}
    adapter = {}
    merged = {}
    for name in targets:
        w = Wb[name + ".weight"]
        out_f, in_f = w.shape
        r, alpha = rank_alpha(c, name)
        s = scaling(alpha, r, c["use_rslora"])
        A = init.normal((r, in_f), c["a_std"])
        B = init.normal((out_f, r), c["b_std"])
        m = None
        if c["use_dora"]:
            factor = 0.8 + 0.4 * torch.rand(out_f, generator=init.g)
            m = row_norm(w + s * (B @ A)) * factor
        mods[name] = dict(A=A, B=B, m=m, s=s, r=r, alpha=alpha, r_cfg=c["r"],
                          alpha_cfg=c["alpha"], rslora=c["use_rslora"])
        pre = "base_model.model." + name
        adapter[pre + ".lora_A.weight"] = A
        adapter[pre + ".lora_B.weight"] = B
        if m is not None:
            adapter[pre + ".lora_magnitude_vector.weight"] = m
        merged[name + ".weight"] = merged_weight(w, A, B, s, m)
        rel = float(torch.linalg.norm(s * (B @ A)) / torch.linalg.norm(w))
        print("    %-36s r=%d alpha=%g s=%.4g |sBA|/|W|=%.2f" % (name, r, alpha, s, rel))

    replace = {}
    for mod in sorted(saved):
        if mod + ".weight" not in Wb:
            continue  # PEFT ignores modules_to_save entries that match nothing
        for suffix in (".weight", ".bias"):
            if mod + suffix in Wb:
                t = Wb[mod + suffix]
                std = 0.3 if suffix == ".weight" else 0.2
                replace[mod + suffix] = init.normal(tuple(t.shape), std)
    for k, t in replace.items():
        adapter["base_model.model." + k] = t
        merged[k] = t
    check(saved == set() or len(replace) > 0, "modules_to_save matched nothing")

    # inputs: same conventions as refgen.py
    inputs = []
    for L in c["lengths"]:
        if arch == "llama":
            inputs.append([cfg["bos_token_id"]] + init.ints(L - 1, 3, cfg["vocab_size"]))
        else:
            inputs.append([2] + init.ints(L - 2, 5, cfg["vocab_size"]) + [3])

    Wa = adapted_weights(Wb, mods, replace)
    Wm = dict(Wb)
    Wm.update(merged)
    logits, noise = [], 0.0
    for ids in inputs:
        y = forward(arch, cfg, Wa, ids)
        y64 = forward(arch, cfg, Wa, ids, dtype=torch.float64)
        noise = max(noise, maxdiff(y, y64))
        ym = forward(arch, cfg, Wm, ids)
        d = maxdiff(y, ym)
        check(d < 1e-5, "(a) merged vs on-the-fly differ by %g" % d)
        logits.append(y)
    print("    (a) merged == on-the-fly; f32 vs f64 max diff %.2g" % noise)

    # (b) zero lora_B (DoRA: m = ||W||) reproduces the base reference
    Wz = adapted_weights(Wb, mods, replace, zero_b=True)
    for ids, want in zip(bexp["inputs"], bexp["logits"]):
        y = forward(arch, cfg, Wz, ids)
        d = maxdiff(y, torch.tensor(want, dtype=torch.float64))
        check(d < 1e-5, "(b) zero-B model differs from base expected.json by %g" % d)
    print("    (b) lora_B = 0 reproduces %s/expected.json" % c["base"])

    # (c) the adapter matters
    base_logits = [forward(arch, cfg, Wb, ids) for ids in inputs]
    dc = max(maxdiff(a, b) for a, b in zip(logits, base_logits))
    print("    (c) adapter vs base max|diff| %.3g" % dc)
    check(dc > 1e-2, "(c) adapter does not change the logits (%g)" % dc)
    if arch == "llama":
        am = torch.cat(logits).argmax(-1)
        check(len(set(am.tolist())) > 2, "argmax nearly constant")

    # sensitivity to plausible implementation mistakes
    variants = ["no_scaling"]
    if c["use_rslora"]:
        variants.append("scale_alpha_over_r")
    if c["rank_pattern"]:
        variants.append("ignore_rank_pattern")
    if c["alpha_pattern"]:
        variants.append("ignore_alpha_pattern")
    if c["use_dora"]:
        variants += ["dora_no_magnitude", "dora_norm_of_W"]
        if any(Wb[n + ".weight"].shape[0] == Wb[n + ".weight"].shape[1] for n in targets):
            variants.append("dora_norm_dim0")
    if replace:
        variants.append("no_modules_to_save")
    if "bert.pooler.dense" in mods:
        variants.append("skip_pooler")
    for v in variants:
        Wv = adapted_weights(Wb, mods, replace, variant=v)
        if v == "dora_norm_dim0":  # only square modules can use the wrong axis
            for n in targets:
                if Wb[n + ".weight"].shape[0] != Wb[n + ".weight"].shape[1]:
                    Wv[n + ".weight"].variant = None
        sensitivity(v, logits, [forward(arch, cfg, Wv, ids) for ids in inputs], noise)

    # write
    outdir = os.path.join(outroot, c["name"])
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "adapter_config.json"), "w") as f:
        f.write(json.dumps(adapter_config(c), indent=2, sort_keys=True))
    write_sorted_safetensors(os.path.join(outdir, "adapter_model.safetensors"), adapter)
    write_sorted_safetensors(os.path.join(outdir, "merged.safetensors"), merged)
    exp = {
        "generator": gen,
        "case": c["name"],
        "base": c["base"],
        "compute_dtype": "float32",
        "max_abs_diff_vs_float64": float("%.3g" % noise),
        "inputs": inputs,
        "logits": [f32list(y) for y in logits],
        "scales": {n: float("%.9g" % mods[n]["s"]) for n in targets},
        "ranks": {n: mods[n]["r"] for n in targets},
    }
    rg.write_json(os.path.join(outdir, "expected.json"), exp)

    # the written files, read back, give the same answers
    ad = rg.read_safetensors(os.path.join(outdir, "adapter_model.safetensors"))
    mg = rg.read_safetensors(os.path.join(outdir, "merged.safetensors"))
    for n in targets:
        pre = "base_model.model." + n
        check(torch.equal(ad[pre + ".lora_A.weight"], mods[n]["A"]), "adapter A " + n)
        check(torch.equal(mg[n + ".weight"], merged[n + ".weight"]), "merged " + n)
    size = sum(os.path.getsize(os.path.join(outdir, f)) for f in os.listdir(outdir))
    print("    wrote %d adapted modules, %d bytes" % (len(targets), size))
    return size


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output root, e.g. core/testdata/reference/peft")
    ap.add_argument("--base-root", help="folder holding the base cases (default: parent of --out)")
    args = ap.parse_args()
    base_root = args.base_root or os.path.dirname(os.path.abspath(args.out))
    gen = rg.generator_string().replace("tools/refgen/refgen.py", "tools/refgen/peftgen.py")
    print(gen)
    total = 0
    for c in CASES:
        total += run_case(c, base_root, args.out, gen)
    print("total %d bytes" % total)
    check(total < 2_000_000, "fixtures too large")
    print("all self-checks passed")


if __name__ == "__main__":
    main()
