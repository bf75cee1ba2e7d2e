#!/usr/bin/python3
"""Independent PyTorch references for the decoder families' sequence
classifiers: Qwen3ForSequenceClassification, MistralForSequenceClassification,
GemmaForSequenceClassification, Phi3ForSequenceClassification and
Gemma2ForSequenceClassification.

Written in plain PyTorch from the semantics of transformers' modeling files
(eval mode; in transformers >= 4.52 all five are GenericForSequenceClassification
in modeling_layers.py over <Family>Model); no transformers code is used. The
trunks are the causal-LM references of families.py (Qwen3), decoders.py
(Mistral, Gemma, Phi-3) and gemma2.py (Gemma 2); this file adds the head:

    logits = score(last_hidden_state)            # nn.Linear, no bias
    pooled = logits[b, last_non_pad_token[b]]

with transformers' current pooling (>= 4.48, "rightmost token that is not
equal to pad_token_id", for left and right padding alike):

  * pad_token_id set: last_non_pad_token = argmax(arange(T) * (ids != pad)),
    the rightmost position whose id is not the pad id, whatever the
    attention mask says; 0 when every id is the pad id (argmax of zeros);
  * pad_token_id null: the last position (-1); transformers refuses
    batches of more than one sequence.

Before 4.48 transformers pooled at (argmax(ids == pad) - 1) % T, the token
before the first pad id; the two agree unless the pad id also occurs inside
the text. The attention mask only masks keys in the trunk. Gemma 2's
classifier does not apply final_logit_softcapping (Gemma2ForCausalLM caps
its LM logits; the score head is on Gemma2Model's output, uncapped).

    /usr/bin/python3 tools/refgen/classifiers.py --out core/testdata/reference

Each case's batch has right-padded rows: one with the pad id inside the
text, one whose text ends with the pad id (pooled one token earlier than
the last unmasked one) and one with no pad id at all (pooled at T - 1);
and a left-padded row (pooled at T - 1).

Self-checks before writing: the pooling index equals transformers' tensor
expression on edge rows; the classifier logits equal the causal-LM
reference run with score as its LM head, read at the pooled positions;
batch rows equal unpadded single runs; float32 vs float64 noise; and that
pooling the first token, the last unmasked token, transformers' pre-4.48
index, a window off by one (Mistral), Gemma's plain w norms, no q/k norms
(Qwen3), swapped k/v (Phi-3), capping the score logits or dropping the
attention cap (Gemma 2) each move the logits far beyond float32 noise.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decoders  # noqa: E402
import families  # noqa: E402
import gemma2  # noqa: E402
from refgen import (Init, check, f32list, generator_string, maxdiff,  # noqa: E402
                    round_to, save_weights, sensitivity, write_json)


# --------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------

def pool_index(ids, pad):
    """Per row, the position transformers' current pooling reads."""
    if pad is None:
        check(len(ids) == 1, "transformers refuses batches > 1 without pad_token_id")
        return [len(ids[0]) - 1]
    out = []
    for row in ids:
        real = [i for i, t in enumerate(row) if t != pad]
        out.append(real[-1] if real else 0)
    return out


def pool_index_torch(ids, pad):
    """The same, as transformers writes it on tensors (the cross-check)."""
    ids = torch.tensor(ids)
    non_pad = (ids != pad).to(torch.int32)
    return (torch.arange(ids.shape[-1], dtype=torch.int32) * non_pad).argmax(-1).tolist()


def pool_index_legacy(ids, pad):
    """transformers < 4.48: the token before the first pad id, modulo T."""
    ids = torch.tensor(ids)
    return ((torch.eq(ids, pad).int().argmax(-1) - 1) % ids.shape[-1]).tolist()


def check_pooling():
    rows = {
        "no pad": ([[5, 6, 7]], [2]),
        "right padded": ([[5, 6, 0, 0]], [1]),
        "left padded": ([[0, 0, 5, 6]], [3]),
        "pad inside the text": ([[5, 0, 6, 0]], [2]),
        "text ends with the pad id": ([[5, 6, 0]], [1]),
        "only the first is real": ([[5, 0, 0]], [0]),
        "all pad": ([[0, 0, 0]], [0]),
    }
    for name, (ids, want) in rows.items():
        got, got_t = pool_index(ids, 0), pool_index_torch(ids, 0)
        check(got == want and got_t == want, "pooling %s: %s and %s, want %s" % (name, got, got_t, want))
    check(pool_index([[5, 6, 0]], None) == [2], "pooling without pad_token_id is not the last token")
    # The pre-4.48 index differs only when the pad id is inside the text.
    check(pool_index_legacy([[5, 6, 0, 0]], 0) == [1] and pool_index_legacy([[5, 6, 7]], 0) == [2],
          "legacy pooling")
    check(pool_index_legacy([[5, 0, 6, 0]], 0) == [0], "legacy pooling, pad inside the text")
    print("pooling index == transformers' (arange * (ids != pad)).argmax(-1) on %d edge rows" % len(rows))


# --------------------------------------------------------------------------
# families
# --------------------------------------------------------------------------

ARCH = {"qwen3": "Qwen3", "mistral": "Mistral", "gemma": "Gemma", "phi3": "Phi3", "gemma2": "Gemma2"}


def make_config(c):
    fam = c["family"]
    if fam == "qwen3":
        cfg = families.family_config(dict(c, labels=None))
    elif fam == "gemma2":
        cfg = gemma2.g2_config(c)
    else:
        cfg = decoders.dec_config(c)
    cfg["architectures"] = [ARCH[fam] + "ForSequenceClassification"]
    cfg["id2label"] = {str(i): l for i, l in enumerate(c["labels"])}
    cfg["label2id"] = {l: i for i, l in enumerate(c["labels"])}
    return cfg


def make_params(c, cfg, init):
    """The trunk's parameters (drawn as a tied model: no lm_head) and score."""
    fam = c["family"]
    fcfg = dict(cfg, head_dim=c["head_dim"], tie_word_embeddings=True)
    if fam == "qwen3":
        raw = families.family_params(fcfg, init, fam, c["proj_std"], c["embed_std"], None)
    elif fam == "gemma2":
        raw = gemma2.g2_params(fcfg, init, c["proj_std"], c["embed_std"], None)
    else:
        raw = decoders.dec_params(fcfg, init, fam, c["proj_std"], c["embed_std"], None)
    raw.append(("score.weight", init.normal((len(c["labels"]), c["hidden"]), c["score_std"])))
    return raw


def causal_lm(c, cfg, W, head, ids, mask=None, dtype=torch.float32, variant=None):
    """The family's causal-LM reference [B, T, rows(head)] with `head` as an
    untied lm_head and no final soft-cap."""
    fam = c["family"]
    W = {n: t for n, t in W.items() if n != "score.weight"}
    W["lm_head.weight"] = head
    fcfg = dict(cfg, head_dim=c["head_dim"], tie_word_embeddings=False)
    if fam == "gemma2":
        fcfg["final_logit_softcapping"] = None
        return gemma2.g2_forward(fcfg, W, ids, mask, dtype=dtype, variant=variant)
    if fam == "qwen3":
        return families.family_forward(fcfg, W, fam, ids, mask, dtype=dtype, variant=variant)
    return decoders.dec_forward(fcfg, W, fam, ids, mask, dtype=dtype, variant=variant)


def cls_forward(c, cfg, W, input_ids, attention_mask=None, dtype=torch.float32, variant=None):
    """Pooled logits [B, labels] of <Family>ForSequenceClassification.

    The trunk's last hidden state is the causal-LM reference with an
    identity LM head (exact: x @ I == x)."""
    ids = input_ids.tolist()
    B, T = input_ids.shape
    eye = torch.eye(c["hidden"], dtype=torch.float32)
    trunk_variant = None if variant in POOL_VARIANTS + ("final_cap",) else variant
    h = causal_lm(c, cfg, W, eye, input_ids, attention_mask, dtype, trunk_variant)  # [B, T, H]
    logits = h @ W["score.weight"].to(dtype).T
    pad = cfg.get("pad_token_id")
    if variant == "pool_first":
        idx = [0] * B
    elif variant == "pool_mask":
        idx = (attention_mask.sum(-1) - 1).tolist() if attention_mask is not None else [T - 1] * B
    elif variant == "pool_legacy":
        idx = pool_index_legacy(ids, pad)
    else:
        idx = pool_index(ids, pad)
    y = logits[torch.arange(B), torch.tensor(idx)]
    if variant == "final_cap":
        fc = cfg["final_logit_softcapping"]
        y = torch.tanh(y / fc) * fc
    return y


POOL_VARIANTS = ("pool_first", "pool_mask", "pool_legacy")


CASES = [
    dict(name="qwen3-cls-f32", family="qwen3", seed=8001, hidden=48, inter=128, layers=2, heads=4, kv=2,
         head_dim=32, vocab=96, theta=1000000, tied=False, dtype="F32", shards=None,
         embed_std=1.0, proj_std=0.15, score_std=0.5, lengths=[5, 7, 9],
         labels=["negative", "neutral", "positive"]),
    # Window 3, shorter than every sequence; head_dim 16 != hidden/heads.
    dict(name="mistral-cls-window3-f16", family="mistral", seed=8002, hidden=48, inter=128, layers=2, heads=4,
         kv=2, head_dim=16, vocab=96, theta=1000000, tied=False, dtype="F16", shards=None, window=3,
         embed_std=0.5, proj_std=0.2, score_std=0.5, lengths=[5, 7, 9], labels=["NEGATIVE", "POSITIVE"]),
    dict(name="gemma-cls-bf16-sharded", family="gemma", seed=8003, hidden=56, inter=112, layers=3, heads=4, kv=1,
         head_dim=32, vocab=80, theta=10000, tied=True, dtype="BF16", shards=3,
         embed_std=0.15, proj_std=0.25, score_std=0.5, lengths=[5, 8, 9],
         labels=["negative", "neutral", "positive"]),
    dict(name="phi3-cls-f32", family="phi3", seed=8004, hidden=64, inter=160, layers=2, heads=4, kv=2,
         head_dim=16, vocab=96, theta=10000, tied=False, dtype="F32", shards=None, window=None,
         embed_std=1.0, proj_std=0.15, score_std=0.5, lengths=[5, 7, 9],
         labels=["ham", "spam", "other", "unsure"]),
    # Soft-capped attention (cap 2) and a final cap (3) that the score head
    # must not apply; window 3 on layers 0 and 2.
    dict(name="gemma2-cls-softcap-f32", family="gemma2", seed=8005, hidden=48, inter=128, layers=3, heads=4, kv=2,
         head_dim=16, vocab=96, theta=10000, tied=True, dtype="F32", shards=None,
         window=3, qpas=24, attn_cap=2.0, final_cap=3.0,
         embed_std=0.15, proj_std=0.3, score_std=0.8, lengths=[5, 7, 9],
         labels=["negative", "neutral", "positive"]),
]


def batch_rows(c, cfg, init, inputs):
    """Right-padded rows: inputs[0]; a text with the pad id inside it; a
    text ending with the pad id; inputs[2] (no pad id at all); then
    inputs[1] left-padded (positions stay 0..T-1, as transformers' forward
    without position_ids has them)."""
    pad, bos, V = cfg["pad_token_id"], cfg["bos_token_id"], c["vocab"]
    inside = [bos] + init.ints(2, 3, V) + [pad] + init.ints(3, 3, V)
    ending = [bos] + init.ints(4, 3, V) + [pad]
    seqs = [inputs[0], inside, ending, inputs[2], inputs[1]]
    T = max(len(s) for s in seqs)
    ids = [s + [pad] * (T - len(s)) for s in seqs[:-1]]
    mask = [[1] * len(s) + [0] * (T - len(s)) for s in seqs[:-1]]
    left = seqs[-1]
    ids.append([pad] * (T - len(left)) + left)
    mask.append([0] * (T - len(left)) + [1] * len(left))
    want = [len(inputs[0]) - 1, len(inside) - 1, len(ending) - 2, T - 1, T - 1]
    check(pool_index(ids, pad) == want, "batch pooling %s, want %s" % (pool_index(ids, pad), want))
    check(pool_index_legacy(ids, pad)[1] == 2, "legacy pooling of the row with the pad id inside")
    return seqs, ids, mask


def run(c, outroot, gen):
    print("== %s" % c["name"])
    fam = c["family"]
    cfg = make_config(c)
    init = Init(c["seed"])
    raw = make_params(c, cfg, init)
    W = dict(round_to(raw, c["dtype"]))
    outdir = os.path.join(outroot, c["name"])
    os.makedirs(outdir, exist_ok=True)
    write_json(os.path.join(outdir, "config.json"), cfg, indent=2)
    loaded = save_weights(outdir, raw, c["dtype"], c["shards"], c["layers"])
    check(set(loaded) == set(W), "safetensors names differ")
    for n in W:
        check(torch.equal(loaded[n], W[n]), "safetensors round trip differs for " + n)
    check("lm_head.weight" not in W, "a classifier has no lm_head")

    inputs = [[cfg["bos_token_id"]] + init.ints(L - 1, 3, c["vocab"]) for L in c["lengths"]]
    logits, noise = [], 0.0
    for ids in inputs:
        t = torch.tensor([ids])
        y = cls_forward(c, cfg, W, t)
        y64 = cls_forward(c, cfg, W, t, dtype=torch.float64)
        noise = max(noise, maxdiff(y, y64))
        # score(hidden state of the pooled token) == the causal LM with
        # score as its head, read at the last position.
        lm = causal_lm(c, cfg, W, W["score.weight"], t)[0, -1:]
        check(maxdiff(y, lm) < 1e-5, "classifier != causal LM with score head (%g)" % maxdiff(y, lm))
        logits.append(y)
    allp = torch.cat(logits)
    print("    class logits %s, f32 vs f64 max diff %.2g" % ([round(float(v), 3) for v in allp[0]], noise))
    check(float(allp.std()) > 0.3, "logits too flat")
    check(maxdiff(logits[0], logits[1]) > 0.05 and maxdiff(logits[1], logits[2]) > 0.05,
          "logits not input dependent")

    t = torch.tensor([inputs[-1]])
    T = t.shape[1]
    base = logits[-1]
    sensitivity("pool_first", base, cls_forward(c, cfg, W, t, variant="pool_first"), noise)
    if fam == "mistral":
        check(cfg["sliding_window"] < T, "window not shorter than the sequence")
        for v in ["window_plus_one", "window_minus_one"]:
            sensitivity(v, base, cls_forward(c, cfg, W, t, variant=v), noise)
    if fam == "gemma":
        for v in ["plain_norm", "no_embed_scale"]:
            sensitivity(v, base, cls_forward(c, cfg, W, t, variant=v), noise)
    if fam == "qwen3":
        sensitivity("no_qknorm", base, cls_forward(c, cfg, W, t, variant="no_qknorm"), noise)
    if fam == "phi3":
        sensitivity("swap_kv", base, cls_forward(c, cfg, W, t, variant="swap_kv"), noise)
    if fam == "gemma2":
        check(cfg["sliding_window"] < T, "window not shorter than the sequence")
        check(float(allp.abs().max()) > cfg["final_logit_softcapping"], "logits too small for the cap to bite")
        for v in ["final_cap", "no_attn_cap", "windows_odd"]:
            sensitivity(v, base, cls_forward(c, cfg, W, t, variant=v), noise)

    seqs, ids, mask = batch_rows(c, cfg, init, inputs)
    ti, tm = torch.tensor(ids), torch.tensor(mask)
    yb = cls_forward(c, cfg, W, ti, tm)
    noise = max(noise, maxdiff(yb, cls_forward(c, cfg, W, ti, tm, dtype=torch.float64)))
    for b, s in enumerate(seqs):
        single = cls_forward(c, cfg, W, torch.tensor([s]))
        d = maxdiff(yb[b:b + 1], single)
        check(d < 1e-5 * max(1.0, float(single.abs().max())), "batch row %d differs from its single run (%g)" % (b, d))
    lm = causal_lm(c, cfg, W, W["score.weight"], ti, tm)
    pooled = lm[torch.arange(len(ids)), torch.tensor(pool_index(ids, cfg["pad_token_id"]))]
    check(maxdiff(yb, pooled) < 1e-5, "batch classifier != causal LM with score head at the pooled tokens")
    for v in POOL_VARIANTS:
        sensitivity(v, yb, cls_forward(c, cfg, W, ti, tm, variant=v), noise)

    exp = {
        "generator": gen,
        "case": c["name"],
        "compute_dtype": "float32",
        "max_abs_diff_vs_float64": float("%.3g" % noise),
        "inputs": inputs,
        "logits": [f32list(y) for y in logits],
        "batch": {"pad_token_id": cfg["pad_token_id"], "input_ids": ids, "attention_mask": mask,
                  "logits": [f32list(yb[b:b + 1]) for b in range(len(ids))]},
    }
    write_json(os.path.join(outdir, "expected.json"), exp)
    print("    batch ok (T=%d, lengths %s, pooled at %s)" % (len(ids[0]), [len(s) for s in seqs],
                                                         pool_index(ids, cfg["pad_token_id"])))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output root, e.g. core/testdata/reference")
    ap.add_argument("--only", default="", help="comma-separated families to write (default: all)")
    args = ap.parse_args()
    gen = generator_string().replace("tools/refgen/refgen.py", "tools/refgen/classifiers.py")
    print(gen)
    check_pooling()
    only = [f for f in args.only.split(",") if f]
    for c in CASES:
        if not only or c["family"] in only:
            run(c, args.out, gen)
    print("all self-checks passed")


if __name__ == "__main__":
    main()
