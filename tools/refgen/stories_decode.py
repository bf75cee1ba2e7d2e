"""Independent check of the GGUF -> Hugging Face conversion of stories260K.

Run (Debian's python3-torch, and python3-sentencepiece for the text):
    bin/surgeon convert ../shared/fixtures/stories260K-gguf/stories260K.gguf --to hf -o /tmp/stories-hf
    /usr/bin/python3 tools/refgen/stories_decode.py /tmp/stories-hf > core/testdata/reference/stories260K-greedy.json

Loads the converted folder (config.json + model.safetensors) with
refgen.py's plain-PyTorch Llama (rotate-half rotary embeddings, as Hugging
Face's LlamaForCausalLM), decodes 40 tokens greedily from BOS, and writes
the token ids; with sentencepiece installed it also decodes them with the
converted tokenizer.model. A wrong q/k permutation in the converter decodes
gibberish here.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refgen  # noqa: E402

folder = sys.argv[1]
cfg = json.load(open(os.path.join(folder, "config.json")))
W = refgen.read_safetensors(os.path.join(folder, "model.safetensors"))
ids = [cfg.get("bos_token_id", 1)]
for _ in range(40):
    logits = refgen.llama_forward(cfg, W, torch.tensor([ids]))
    ids.append(int(logits[0, -1].argmax()))
out = {"generator": refgen.generator_string() + ", tools/refgen/stories_decode.py", "ids": ids}
try:
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=os.path.join(folder, "tokenizer.model"))
    out["text"] = sp.decode(ids[1:])
except ImportError:
    pass
print(json.dumps(out))
