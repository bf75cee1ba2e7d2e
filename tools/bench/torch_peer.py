#!/usr/bin/python3
"""PyTorch peer of surgeon's Go benchmarks (tools/bench/gobench).

Run with Debian's interpreter, which has python3-torch (1.13):

    /usr/bin/python3 tools/bench/torch_peer.py info
    /usr/bin/python3 tools/bench/torch_peer.py sgemm [--big]
    /usr/bin/python3 tools/bench/torch_peer.py bert-step [--steps 3]
    /usr/bin/python3 tools/bench/torch_peer.py stories-train HF_DIR [--steps 5]
    /usr/bin/python3 tools/bench/torch_peer.py stories-forward HF_DIR
    /usr/bin/python3 tools/bench/torch_peer.py scale-train HF_DIR [--steps 2]
    /usr/bin/python3 tools/bench/torch_peer.py all HF_DIR

Each measurement prints lines

    RESULT <measurement> <value> <unit>

(with "@Nt" after the measurement's name when SURGEON_BENCH_THREADS sets a
thread count other than the peer's 2, and "@TAG" with SURGEON_BENCH_TAG).

OpenBLAS picks its kernels from the CPU's family and model; on a virtual
CPU that it does not recognise it falls back to a slow generic one
("Prescott", no AVX). run.sh therefore sets OPENBLAS_CORETYPE from the CPU
flags (SkylakeX with AVX-512, Haswell with AVX2 + FMA); `info` reports the
kernel in use.

and `all` runs each measurement in its own subprocess, so that peak RSS
(resource.getrusage ru_maxrss, the kernel's VmHWM) covers one model only.
tools/bench/run.sh interleaves these runs with the Go benchmarks.

The shapes match the Go side:
  * sgemm: C[m,n] = A[m,k] B[k,n] for (m,k,n) = (1024,768,3072),
    (1024,768,8), (1024,8,768); "NN" is torch.mm(a, b) with b [k,n], "NT"
    is torch.mm(a, w.t()) with w [n,k] (the layout of F.linear); numpy's
    a @ b as well (numpy may link another BLAS).
  * bert-step: a BERT-base-shaped encoder (12 layers, hidden 768, 12 heads,
    FFN 3072, vocab 30522, 512 positions, 2 labels), random N(0, 0.02)
    weights, written as plain nn.Modules (Hugging Face's BertModel
    computation, eager attention, exact GELU, no dropout); LoRA as PEFT's
    LoraLayer (r=8, lora_alpha=16, no dropout, A kaiming-uniform, B zero)
    on query and value; the classifier trainable (modules_to_save); AdamW
    over those parameters; batch 8 x 128; one step = forward, loss,
    backward, optimizer.step, zero_grad.
  * stories-train: stories260K as LlamaForCausalLM (the folder written by
    `surgeon convert stories260K.gguf --to hf`), LoRA r=8 alpha=16 on q_proj
    and v_proj, AdamW, batch 32 x 64, next-token loss over every position
    but the last.
  * stories-forward: the same model, no LoRA, torch.no_grad(), batches
    1x64, 8x64 and 32x64 (core/checkpoint BenchmarkForwardStories).
"""

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.join(HERE, "..", "refgen"))
import refgen  # noqa: E402  (read_safetensors; it sets one thread, undone below)

THREADS = int(os.environ.get("SURGEON_BENCH_THREADS", "2"))
torch.set_num_threads(THREADS)
torch.use_deterministic_algorithms(False)

LR, BETAS, EPS, WD = 1e-4, (0.9, 0.999), 1e-8, 0.01


TAG = os.environ.get("SURGEON_BENCH_TAG", "")


def result(name, value, unit):
    """Prints one measurement; names get "@Nt" when not run on 2 threads,
    and "@TAG" with SURGEON_BENCH_TAG."""
    if THREADS != 2:
        name += "@%dt" % THREADS
    if TAG:
        name += "@" + TAG
    print("RESULT %s %.6g %s" % (name, value, unit), flush=True)


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def blas_name():
    """The BLAS library torch actually loaded (from /proc/self/maps)."""
    torch.mm(torch.ones(4, 4), torch.ones(4, 4))
    np.ones((4, 4)) @ np.ones((4, 4))
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            p = line.split()[-1]
            base = os.path.basename(p)
            if any(s in base for s in ("blas", "mkl", "blis", "lapack")):
                libs.add(os.path.realpath(p))
    return sorted(libs)


# --------------------------------------------------------------------------
# sgemm
# --------------------------------------------------------------------------

SHAPES = [(1024, 768, 3072), (1024, 768, 8), (1024, 8, 768)]


def timeit(fn, min_time=1.0, min_iters=5):
    for _ in range(3):
        fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_time and n >= min_iters:
            return dt / n


def cmd_sgemm(args):
    g = torch.Generator().manual_seed(1)
    for m, k, n in SHAPES[:1] if args.big else SHAPES:
        flop = 2.0 * m * n * k
        a = torch.randn(m, k, generator=g)
        b = torch.randn(k, n, generator=g)
        w = torch.randn(n, k, generator=g)
        c = torch.empty(m, n)
        shape = "%dx%dx%d" % (m, k, n)
        t = timeit(lambda: torch.mm(a, b, out=c), args.min_time)
        result("sgemm/NN/%s/torch" % shape, flop / t / 1e9, "GFLOP/s")
        t = timeit(lambda: torch.mm(a, w.t(), out=c), args.min_time)
        result("sgemm/NT/%s/torch" % shape, flop / t / 1e9, "GFLOP/s")
        an, bn, wn = a.numpy(), b.numpy(), w.numpy()
        cn = np.empty((m, n), dtype=np.float32)
        t = timeit(lambda: np.matmul(an, bn, out=cn), args.min_time)
        result("sgemm/NN/%s/numpy" % shape, flop / t / 1e9, "GFLOP/s")
        t = timeit(lambda: np.matmul(an, wn.T, out=cn), args.min_time)
        result("sgemm/NT/%s/numpy" % shape, flop / t / 1e9, "GFLOP/s")


# --------------------------------------------------------------------------
# LoRA (PEFT's LoraLayer for nn.Linear)
# --------------------------------------------------------------------------

class LoRALinear(nn.Module):
    """y = base(x) + (x A^T B^T) * alpha/r, base frozen (peft.tuners.lora.Linear)."""

    def __init__(self, base, r=8, alpha=16):
        super().__init__()
        self.base_layer = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.scaling = alpha / r

    def forward(self, x):
        return self.base_layer(x) + self.lora_B(self.lora_A(x)) * self.scaling


def adamw(params):
    return torch.optim.AdamW(params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WD)


# --------------------------------------------------------------------------
# BERT (BertForSequenceClassification computation, as tools/refgen/refgen.py)
# --------------------------------------------------------------------------

class BertLayer(nn.Module):
    def __init__(self, h, heads, ffn, eps):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(h, h)
        self.key = nn.Linear(h, h)
        self.value = nn.Linear(h, h)
        self.attn_out = nn.Linear(h, h)
        self.attn_norm = nn.LayerNorm(h, eps=eps)
        self.intermediate = nn.Linear(h, ffn)
        self.output = nn.Linear(ffn, h)
        self.out_norm = nn.LayerNorm(h, eps=eps)

    def forward(self, x, ext_mask):
        B, T, H = x.shape
        nh, hd = self.heads, H // self.heads

        def split(t):
            return t.view(B, T, nh, hd).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd) + ext_mask
        a = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(B, T, H)
        x = self.attn_norm(self.attn_out(a) + x)
        f = F.gelu(self.intermediate(x))
        return self.out_norm(self.output(f) + x)


class Bert(nn.Module):
    def __init__(self, vocab=30522, h=768, layers=12, heads=12, ffn=3072,
                 positions=512, types=2, labels=2, eps=1e-12):
        super().__init__()
        self.word = nn.Embedding(vocab, h)
        self.position = nn.Embedding(positions, h)
        self.token_type = nn.Embedding(types, h)
        self.emb_norm = nn.LayerNorm(h, eps=eps)
        self.layers = nn.ModuleList(BertLayer(h, heads, ffn, eps) for _ in range(layers))
        self.pooler = nn.Linear(h, h)
        self.classifier = nn.Linear(h, labels)

    def forward(self, ids, attention_mask):
        B, T = ids.shape
        pos = torch.arange(T)
        x = self.word(ids) + self.position(pos).unsqueeze(0) + self.token_type(torch.zeros_like(ids))
        x = self.emb_norm(x)
        ext = (1.0 - attention_mask.to(x.dtype)).view(B, 1, 1, T) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, ext)
        return self.classifier(torch.tanh(self.pooler(x[:, 0])))


def cmd_bert_step(args):
    torch.manual_seed(7)
    m = Bert()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("weight") and "norm" not in name:
                p.normal_(0.0, 0.02)
            elif name.endswith("bias"):
                p.zero_()
    for p in m.parameters():
        p.requires_grad_(False)
    for layer in m.layers:
        layer.query = LoRALinear(layer.query)
        layer.value = LoRALinear(layer.value)
    for p in m.classifier.parameters():
        p.requires_grad_(True)
    params = [p for p in m.parameters() if p.requires_grad]
    opt = adamw(params)
    B, T = 8, 128
    ids = torch.tensor([[1000 + (i * 131 + t * 17) % 29000 for t in range(T)] for i in range(B)])
    mask = torch.ones(B, T, dtype=torch.long)
    labels = torch.tensor([i % 2 for i in range(B)])
    m.train()

    def step():
        loss = F.cross_entropy(m(ids, mask), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up, as the Go benchmark
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    result("bert-step/s", sum(times) / len(times), "s/step")
    result("bert-step/min", min(times), "s/step")
    result("bert-step/peak-rss", peak_rss_mib(), "MiB")
    result("bert-step/trainable-tensors", len(params), "tensors")


# --------------------------------------------------------------------------
# Llama (LlamaForCausalLM computation, as tools/refgen/refgen.py)
# --------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, w, eps):
        super().__init__()
        self.weight = nn.Parameter(w.clone())
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def linear_from(w):
    lin = nn.Linear(w.shape[1], w.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(w)
    return lin


class LlamaLayer(nn.Module):
    def __init__(self, cfg, W, pre):
        super().__init__()
        eps = cfg["rms_norm_eps"]
        self.nh = cfg["num_attention_heads"]
        self.nkv = cfg["num_key_value_heads"]
        self.hd = cfg.get("head_dim") or cfg["hidden_size"] // self.nh
        self.input_layernorm = RMSNorm(W[pre + "input_layernorm.weight"], eps)
        self.post_attention_layernorm = RMSNorm(W[pre + "post_attention_layernorm.weight"], eps)
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            setattr(self, n, linear_from(W[pre + "self_attn.%s.weight" % n]))
        for n in ("gate_proj", "up_proj", "down_proj"):
            setattr(self, n, linear_from(W[pre + "mlp.%s.weight" % n]))

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        nh, nkv, hd = self.nh, self.nkv, self.hd
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, nh, hd).transpose(1, 2)
        k = self.k_proj(h).view(B, T, nkv, hd).transpose(1, 2)
        v = self.v_proj(h).view(B, T, nkv, hd).transpose(1, 2)
        q = q * cos + refgen.rotate_half(q) * sin
        k = k * cos + refgen.rotate_half(k) * sin
        rep = nh // nkv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd) + mask
        a = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(B, T, nh * hd)
        x = x + self.o_proj(a)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self, cfg, W):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding.from_pretrained(W["model.embed_tokens.weight"].clone(), freeze=False)
        self.layers = nn.ModuleList(
            LlamaLayer(cfg, W, "model.layers.%d." % i) for i in range(cfg["num_hidden_layers"]))
        self.norm = RMSNorm(W["model.norm.weight"], cfg["rms_norm_eps"])
        head = W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
        self.lm_head = linear_from(head)

    def forward(self, ids):
        B, T = ids.shape
        hd = self.layers[0].hd
        inv = 1.0 / (self.cfg["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd))
        freqs = torch.outer(torch.arange(T).float(), inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        mask = torch.full((T, T), torch.finfo(torch.float32).min).triu(1).view(1, 1, T, T)
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.lm_head(self.norm(x))


def load_llama(folder):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    W = refgen.read_safetensors(os.path.join(folder, "model.safetensors"))
    return Llama(cfg, W)


def stories_batch(B, T):
    return torch.tensor([[(i * 31 + t * 7) % 512 for t in range(T)] for i in range(B)])


def cmd_stories_train(args):
    torch.manual_seed(1)
    m = load_llama(args.hf_dir)
    for p in m.parameters():
        p.requires_grad_(False)
    for layer in m.layers:
        layer.q_proj = LoRALinear(layer.q_proj)
        layer.v_proj = LoRALinear(layer.v_proj)
    params = [p for p in m.parameters() if p.requires_grad]
    opt = adamw(params)
    B, T = 32, 64
    ids = stories_batch(B, T)
    targets = torch.cat((ids[:, 1:], torch.full((B, 1), -100)), dim=1).reshape(-1)
    m.train()

    def step():
        logits = m(ids)
        loss = F.cross_entropy(logits.reshape(B * T, -1), targets, ignore_index=-100)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    n, t0 = 0, time.perf_counter()
    while n < args.steps or time.perf_counter() - t0 < args.min_time:
        step()
        n += 1
    dt = time.perf_counter() - t0
    result("stories-train/tokens", n * B * T / dt, "tokens/s")
    result("stories-train/s", dt / n, "s/step")
    result("stories-train/peak-rss", peak_rss_mib(), "MiB")


def cmd_scale_train(args):
    """A LoRA r=16 (alpha 32) step on q_proj and v_proj of a float32 Llama
    with the shapes of HF_DIR's config.json (random N(0, 0.02) weights: the
    values do not change the time), batch 4 x 256, as make bench-scale's
    surgeon run."""
    torch.manual_seed(1)
    cfg = json.load(open(os.path.join(args.hf_dir, "config.json")))
    cfg.setdefault("rope_theta", 10000.0)
    h, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = cfg["num_key_value_heads"] * (h // cfg["num_attention_heads"])
    W = {"model.embed_tokens.weight": torch.randn(v, h) * 0.02, "model.norm.weight": torch.ones(h),
         "lm_head.weight": torch.randn(v, h) * 0.02}
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        W[p + "input_layernorm.weight"] = torch.ones(h)
        W[p + "post_attention_layernorm.weight"] = torch.ones(h)
        for n, shape in (("q_proj", (h, h)), ("k_proj", (kv, h)), ("v_proj", (kv, h)), ("o_proj", (h, h))):
            W[p + "self_attn.%s.weight" % n] = torch.randn(*shape) * 0.02
        for n, shape in (("gate_proj", (f, h)), ("up_proj", (f, h)), ("down_proj", (h, f))):
            W[p + "mlp.%s.weight" % n] = torch.randn(*shape) * 0.02
    cfg["tie_word_embeddings"] = False
    m = Llama(cfg, W)
    del W
    for p_ in m.parameters():
        p_.requires_grad_(False)
    for layer in m.layers:
        layer.q_proj = LoRALinear(layer.q_proj, r=16, alpha=32)
        layer.v_proj = LoRALinear(layer.v_proj, r=16, alpha=32)
    params = [p_ for p_ in m.parameters() if p_.requires_grad]
    opt = adamw(params)
    B, T = 4, 256
    ids = torch.tensor([[(i * 31 + t * 7) % v for t in range(T)] for i in range(B)])
    targets = torch.cat((ids[:, 1:], torch.full((B, 1), -100)), dim=1).reshape(-1)
    m.train()

    def step():
        logits = m(ids)
        loss = F.cross_entropy(logits.reshape(B * T, -1), targets, ignore_index=-100)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    n, t0 = 0, time.perf_counter()
    while n < args.steps:
        step()
        n += 1
    dt = time.perf_counter() - t0
    result("scale-train/s", dt / n, "s/step")
    result("scale-train/peak-rss", peak_rss_mib(), "MiB")


def cmd_stories_forward(args):
    m = load_llama(args.hf_dir)
    m.eval()
    with torch.no_grad():
        for B in (1, 8, 32):
            ids = stories_batch(B, 64)
            t = timeit(lambda: m(ids), args.min_time)
            result("stories-forward/%dx64" % B, B * 64 / t, "tokens/s")


def openblas_core():
    """The kernel set OpenBLAS selects in this environment ("Core: ...")."""
    env = dict(os.environ, OPENBLAS_VERBOSE="2")
    p = subprocess.run([sys.executable, "-c", "import numpy; numpy.ones((2, 2)) @ numpy.ones((2, 2))"],
                       env=env, capture_output=True, text=True)
    for line in (p.stdout + p.stderr).splitlines():
        if line.startswith("Core:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def cmd_info(args):
    result("torch-threads", torch.get_num_threads(), "threads")
    print("INFO OpenBLAS kernels: %s (OPENBLAS_CORETYPE=%s)" % (
        openblas_core(), os.environ.get("OPENBLAS_CORETYPE", "unset: auto-detected")))
    print("INFO torch %s, numpy %s, python %s" % (torch.__version__, np.__version__, sys.version.split()[0]))
    print("INFO BLAS loaded: %s" % ", ".join(blas_name()))
    for line in torch.__config__.show().splitlines():
        if "BLAS_INFO" in line:
            info = [kv.strip().replace("- Build settings: ", "") for kv in line.split(",")
                    if "BLAS_INFO" in kv or "LAPACK_INFO" in kv]
            print("INFO torch build: %s (generic = the system libblas.so.3, i.e. whatever update-alternatives selects)" % ", ".join(info))


def cmd_all(args):
    base = [sys.executable, os.path.abspath(__file__)]
    for sub in (["info"], ["sgemm"], ["bert-step"], ["stories-train", args.hf_dir],
                ["stories-forward", args.hf_dir]):
        subprocess.run(base + sub, check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sp = ap.add_subparsers(dest="cmd", required=True)
    sp.add_parser("info")
    p = sp.add_parser("sgemm")
    p.add_argument("--min-time", type=float, default=1.0)
    p.add_argument("--big", action="store_true", help="only the first (large) shape")
    p = sp.add_parser("bert-step")
    p.add_argument("--steps", type=int, default=3)
    p = sp.add_parser("scale-train")
    p.add_argument("hf_dir")
    p.add_argument("--steps", type=int, default=2)
    for name in ("stories-train", "stories-forward", "all"):
        p = sp.add_parser(name)
        p.add_argument("hf_dir")
        p.add_argument("--steps", type=int, default=5)
        p.add_argument("--min-time", type=float, default=2.0)
    args = ap.parse_args()
    {"info": cmd_info, "sgemm": cmd_sgemm, "bert-step": cmd_bert_step,
     "stories-train": cmd_stories_train, "stories-forward": cmd_stories_forward,
     "scale-train": cmd_scale_train, "all": cmd_all}[args.cmd](args)


if __name__ == "__main__":
    main()
