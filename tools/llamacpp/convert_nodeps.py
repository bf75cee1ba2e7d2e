# Runs llama.cpp's own convert_hf_to_gguf.py on a Hugging Face folder
# without a tokenizer and without the transformers, sentencepiece and tqdm
# packages (only torch and numpy), so tests can read what llama.cpp's
# converter writes for each architecture:
#
#   python3 convert_nodeps.py LLAMA_CPP_SRC MODEL_DIR OUT.gguf
#
# LLAMA_CPP_SRC is a checkout of llama.cpp (node-llama-cpp carries one as
# llama/gitRelease.bundle). The file has no tokenizer.ggml.* metadata.
import os
import runpy
import sys
import types

src, model_dir, out = sys.argv[1:4]

# transformers: the converter falls back to config.json when AutoConfig fails.
tf = types.ModuleType("transformers")


class AutoConfig:
    @staticmethod
    def from_pretrained(*args, **kwargs):
        raise RuntimeError("transformers is not installed")


tf.AutoConfig = AutoConfig
sys.modules["transformers"] = tf


class _Bar:
    def __init__(self, *args, **kwargs):
        pass

    def update(self, *args, **kwargs):
        pass

    def close(self):
        pass


tq = types.ModuleType("tqdm")
tq.tqdm = _Bar
sys.modules["tqdm"] = tq

import torch  # noqa: E402

# Older torch builds lack these dtypes, which the converter only names.
for name in ["float8_e4m3fn", "float8_e5m2", "uint16", "uint32", "uint64"]:
    if not hasattr(torch, name):
        setattr(torch, name, torch.float32)

sys.path.insert(0, os.path.join(src, "gguf-py"))
sys.path.insert(0, src)
import conversion.base as base  # noqa: E402

_prepare = base.TextModel.prepare_metadata


def _prepare_without_vocab(self, vocab_only):
    self.set_vocab = lambda: None  # the folders have no tokenizer
    return _prepare(self, vocab_only)


base.TextModel.prepare_metadata = _prepare_without_vocab
sys.argv = ["convert_hf_to_gguf.py", model_dir, "--outtype", "f32", "--outfile", out]
runpy.run_path(os.path.join(src, "convert_hf_to_gguf.py"), run_name="__main__")
