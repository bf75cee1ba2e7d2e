"""The real PEFT LoRA of ../shared/fixtures/peft-lora-gpt2-smartreview on a
random GPT-2 base of its shapes: expected logits (base, adapter attached)
and merged-weight checksums, for surgery/attach's TestGPT2PEFTFixture.

The base is never written: its weights come from hashweights(), a
counter-based hash that the Go test implements identically, so the test
rebuilds the same base from the seed. Run through gpt2.py:

    /usr/bin/python3 tools/refgen/gpt2.py --peft ../shared/fixtures/peft-lora-gpt2-smartreview \\
        --peft-out core/testdata/reference/gpt2-smartreview-peft.json

hashweights(name, n, seed, amp, mean): for element i (0-based) of the
tensor called name (row-major over its saved shape),

    key = fnv1a64(name) + seed                              (mod 2^64)
    z   = splitmix64(key + (i+1) * 0x9E3779B97F4A7C15)      (mod 2^64)
    u   = (z >> 40) / 2^24                                  in [0, 1)
    w   = float32(float32(2u - 1) * amp) + mean             (float32 ops)

with splitmix64's finaliser z ^= z>>30; z *= 0xBF58476D1CE4E5B9;
z ^= z>>27; z *= 0x94D049BB133111EB; z ^= z>>31. amp and mean per tensor
come from RULES (by name suffix).
"""

import hashlib
import json
import os

import numpy as np
import torch

from refgen import check, f32list, maxdiff, read_safetensors, write_json

SEED = 20240601
GOLDEN = 0x9E3779B97F4A7C15
M64 = (1 << 64) - 1

CONFIG = {
    "activation_function": "gelu_new",
    "architectures": ["GPT2LMHeadModel"],
    "bos_token_id": 1,
    "eos_token_id": 1,
    "layer_norm_epsilon": 1e-05,
    "model_type": "gpt2",
    "n_embd": 768,
    "n_head": 12,
    "n_inner": None,
    "n_layer": 12,
    "n_positions": 64,
    "vocab_size": 512,
}

# (name suffix, amplitude, mean), first match wins.
RULES = [
    ("wte.weight", 0.1, 0.0),
    ("wpe.weight", 0.05, 0.0),
    ("attn.c_attn.weight", 0.1, 0.0),
    ("attn.c_proj.weight", 0.05, 0.0),
    ("mlp.c_fc.weight", 0.06, 0.0),
    ("mlp.c_proj.weight", 0.03, 0.0),
    ("ln_1.weight", 0.1, 1.0),
    ("ln_2.weight", 0.1, 1.0),
    ("ln_f.weight", 0.1, 1.0),
    ("bias", 0.05, 0.0),
]

INPUTS = [[1, 17, 300, 42, 99, 256], [1, 5, 480, 77, 3, 250, 11, 400, 63]]


def fnv1a64(s):
    h = 0xcbf29ce484222325
    for b in s.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001b3) & M64
    return h


def hashweights(name, n, seed, amp, mean):
    key = np.uint64((fnv1a64(name) + seed) & M64)
    with np.errstate(over="ignore"):
        z = key + np.arange(1, n + 1, dtype=np.uint64) * np.uint64(GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float64) / float(1 << 24)
    x = (2.0 * u - 1.0).astype(np.float32)  # exact: 25-bit integers over 2^24
    return (x * np.float32(amp)).astype(np.float32) + np.float32(mean)


def rule(name):
    for suffix, amp, mean in RULES:
        if name.endswith(suffix):
            return amp, mean
    raise ValueError(name)


def base_shapes(cfg):
    E, V, P, I = cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"], cfg["n_inner"] or 4 * cfg["n_embd"]
    s = [("transformer.wte.weight", (V, E)), ("transformer.wpe.weight", (P, E))]
    for i in range(cfg["n_layer"]):
        p = "transformer.h.%d." % i
        s += [(p + "ln_1.weight", (E,)), (p + "ln_1.bias", (E,)),
              (p + "attn.c_attn.weight", (E, 3 * E)), (p + "attn.c_attn.bias", (3 * E,)),
              (p + "attn.c_proj.weight", (E, E)), (p + "attn.c_proj.bias", (E,)),
              (p + "ln_2.weight", (E,)), (p + "ln_2.bias", (E,)),
              (p + "mlp.c_fc.weight", (E, I)), (p + "mlp.c_fc.bias", (I,)),
              (p + "mlp.c_proj.weight", (I, E)), (p + "mlp.c_proj.bias", (E,))]
    s += [("transformer.ln_f.weight", (E,)), ("transformer.ln_f.bias", (E,))]
    return s


def checksums(w, base):
    """float64 checksums of a merged [in, out] weight and of its change."""
    w64, d = w.to(torch.float64), (w - base).to(torch.float64)
    i = torch.arange(w.shape[0], dtype=torch.float64).view(-1, 1)
    j = torch.arange(w.shape[1], dtype=torch.float64).view(1, -1)
    sig = torch.remainder(i * 31 + j * 17, 97) - 48  # position signature: catches transposes
    return {"sum": float(w64.sum()), "sum_sq": float((w64 * w64).sum()),
            "delta_abs_sum": float(d.abs().sum()), "delta_signed": float((d * sig).sum())}


def run(fixture, out, gen):
    import gpt2  # noqa: E402 (the reference forward)
    print("== PEFT fixture %s" % fixture)
    with open(os.path.join(fixture, "adapter_config.json")) as f:
        acfg = json.load(f)
    check(acfg["fan_in_fan_out"] is True and acfg["peft_type"] == "LORA", "not a fan_in_fan_out LoRA")
    scale = acfg["lora_alpha"] / acfg["r"]
    path = os.path.join(fixture, "adapter_model.safetensors")
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    T = read_safetensors(path)
    pre = "base_model.model."
    lora = {}
    for n, t in T.items():
        mod = n[len(pre):].rsplit(".lora_", 1)[0]
        a = T[pre + mod + ".lora_A.weight"]
        b = T[pre + mod + ".lora_B.weight"]
        lora[mod] = (a, b, scale)
    check(len(lora) == 12, "want 12 adapted modules, got %d" % len(lora))

    cfg = dict(CONFIG)
    W = {}
    for name, shape in base_shapes(cfg):
        amp, mean = rule(name)
        n = int(np.prod(shape))
        W[name] = torch.from_numpy(hashweights(name, n, SEED, amp, mean).reshape(shape))
    first = W["transformer.wte.weight"].flatten()[:4].tolist()
    print("    base: %d tensors, wte[0,:4] = %s" % (len(W), first))

    base_logits = gpt2.gpt2_forward(cfg, W, torch.tensor([INPUTS[0]]))[0]
    logits, noise, moved = [], 0.0, 0.0
    merged = dict(W)
    for mod, (a, b, s) in lora.items():
        # PEFT's merge with fan_in_fan_out: W [in, out] += transpose(B @ A) * scale
        merged[mod + ".weight"] = W[mod + ".weight"] + (b @ a).T * s
    for ids in INPUTS:
        t = torch.tensor([ids])
        y = gpt2.gpt2_forward(cfg, W, t, lora=lora)[0]
        y64 = gpt2.gpt2_forward(cfg, W, t, lora=lora, dtype=torch.float64)[0]
        noise = max(noise, maxdiff(y, y64))
        ym = gpt2.gpt2_forward(cfg, merged, t)[0]
        d = maxdiff(y, ym)
        check(d < 1e-5 * max(1.0, float(y.abs().max())), "merged and unmerged adapter differ by %g" % d)
        logits.append(y)
    moved = maxdiff(logits[0], base_logits)
    print("    logits std %.3f, max|.| %.3f, f32 vs f64 %.2g, the adapter moves them by %.3g"
          % (float(torch.cat(logits).std()), float(torch.cat(logits).abs().max()), noise, moved))
    check(moved > 1e-2, "the adapter hardly changes the logits")
    # A wrong scale (alpha instead of alpha/r) must be far outside the tolerance.
    lora1 = {k: (a, b, acfg["lora_alpha"]) for k, (a, b, _) in lora.items()}
    d = maxdiff(gpt2.gpt2_forward(cfg, W, torch.tensor([INPUTS[0]]), lora=lora1)[0], logits[0])
    check(d > 1e3 * max(noise, 1e-6), "scale mistake indistinguishable (%g)" % d)
    print("    variant scale=alpha max|diff|=%.3g" % d)

    exp = {
        "generator": gen + ", tools/refgen/gpt2peft.py",
        "seed": SEED,
        "rules": [list(r) for r in RULES],
        "config": cfg,
        "adapter_sha256": sha,
        "scale": scale,
        "max_abs_diff_vs_float64": float("%.3g" % noise),
        "inputs": INPUTS,
        "base_logits": f32list(base_logits),
        "logits": [f32list(y) for y in logits],
        "probe": {"transformer.wte.weight": f32list(W["transformer.wte.weight"].flatten()[:8]),
                  "transformer.h.3.attn.c_attn.weight": f32list(W["transformer.h.3.attn.c_attn.weight"][5, :8])},
        "merged": {mod + ".weight": checksums(merged[mod + ".weight"], W[mod + ".weight"]) for mod in sorted(lora)},
    }
    write_json(out, exp)
    print("    wrote %s" % out)
