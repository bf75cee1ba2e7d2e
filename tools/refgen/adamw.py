"""Reference values for surgeon's AdamW, gradient clipping and schedules.

Run: /usr/bin/python3 tools/refgen/adamw.py > core/train/testdata/adamw.json
(Debian's python3-torch). Writes parameters after each of 5 steps of
torch.optim.AdamW with gradient clipping, and the learning rates of
transformers-style linear and cosine warm-up schedules (computed with
torch.optim.lr_scheduler.LambdaLR and the same lambdas transformers uses).
"""
import json
import math

import torch

torch.manual_seed(0)
p = torch.nn.Parameter(torch.randn(3, 4))
q = torch.nn.Parameter(torch.randn(5))
init = [p.detach().clone().tolist(), q.detach().clone().tolist()]
grads = [[torch.randn(3, 4).tolist(), torch.randn(5).tolist()] for _ in range(5)]
opt = torch.optim.AdamW([p, q], lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
steps = []
norms = []
for g in grads:
    opt.zero_grad()
    p.grad = torch.tensor(g[0])
    q.grad = torch.tensor(g[1])
    norms.append(float(torch.nn.utils.clip_grad_norm_([p, q], 1.0)))
    opt.step()
    steps.append([p.detach().clone().tolist(), q.detach().clone().tolist()])


def lrs(kind, warmup, total):
    def linear(s):
        if s < warmup:
            return s / max(1, warmup)
        return max(0.0, (total - s) / max(1, total - warmup))

    def cosine(s):
        if s < warmup:
            return s / max(1, warmup)
        prog = (s - warmup) / max(1, total - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * prog)))

    o = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    sch = torch.optim.lr_scheduler.LambdaLR(o, linear if kind == "linear" else cosine)
    out = []
    for _ in range(total):
        out.append(o.param_groups[0]["lr"])
        o.step()
        sch.step()
    return out


print(json.dumps({"generator": "torch " + torch.__version__, "init": init, "grads": grads, "steps": steps,
                  "norms": norms, "lr": 0.01, "weight_decay": 0.1, "max_norm": 1.0,
                  "linear": lrs("linear", 3, 10), "cosine": lrs("cosine", 3, 10), "base": 0.5}))
