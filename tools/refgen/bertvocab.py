#!/usr/bin/python3
"""Writes vocab.txt for the reference BERT checkpoints.

core/testdata/reference/bert-f32 (vocab_size 100) and bert-f16 (vocab_size
120) are random models; their vocabularies only have to make text tokenize
sensibly, with ids inside the embedding table, so that recipes can train them
on real sentences.  Adding them changes no expected logits.

Run from the repository root, with the shared fixtures beside it:

    python3 tools/refgen/bertvocab.py \\
        --data ../shared/fixtures/uci-sentiment-labelled-sentences \\
        --out core/testdata/reference

Each vocabulary is, in id order (exactly vocab_size lines):

    [PAD] [UNK] [CLS] [SEP] [MASK]           ids 0-4, as expected.json uses them
    a ... z, 0 ... 9                         single characters
    the ASCII punctuation of the sentences, most frequent first
    ##a ... ##z, ##0 ... ##9                 continuations, so any word of
                                             letters and digits tokenizes
    whole words filling the rest: the words the task asked for first, then
    the most frequent words of the sentences

Ties are broken alphabetically, so the output depends only on the data.  The
script ends by printing the [UNK] rate of each vocabulary over the sentences,
tokenized with its port of transformers' BertTokenizer (basic tokenizer +
WordPiece, do_lower_case=True), which is also the reference the Go tokenizer
was checked against.
"""

import argparse
import collections
import json
import os
import string
import sys
import unicodedata

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PUNCT = ".,!?'-"  # always in, in this order
WORDS = ["the", "and", "is", "it", "good", "bad", "not", "great"]
SIZES = {"bert-f32": 100, "bert-f16": 120}


# --- port of transformers' BertTokenizer (tokenization_bert.py, 4.44) ------


def _is_whitespace(c):
    if c in " \t\n\r":
        return True
    return unicodedata.category(c) == "Zs"


def _is_control(c):
    if c in "\t\n\r":
        return False
    return unicodedata.category(c).startswith("C")


def _is_punctuation(c):
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")


def _is_chinese_char(cp):
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def basic_tokenize(text, lower=True):
    """BasicTokenizer.tokenize with BERT's defaults."""
    out = []
    for c in text:
        cp = ord(c)
        if cp == 0 or cp == 0xFFFD or _is_control(c):
            continue
        if _is_whitespace(c):
            out.append(" ")
        elif _is_chinese_char(cp):
            out += [" ", c, " "]
        else:
            out.append(c)
    text = unicodedata.normalize("NFC", "".join(out))
    words = []
    for tok in text.split():
        if lower:
            tok = tok.lower()
            tok = "".join(c for c in unicodedata.normalize("NFD", tok) if unicodedata.category(c) != "Mn")
        cur = []
        for c in tok:
            if _is_punctuation(c):
                if cur:
                    words.append("".join(cur))
                    cur = []
                words.append(c)
            else:
                cur.append(c)
        if cur:
            words.append("".join(cur))
    return " ".join(words).split()


def wordpiece(word, vocab, max_chars=100):
    """WordpieceTokenizer.tokenize of one word."""
    chars = list(word)
    if len(chars) > max_chars:
        return ["[UNK]"]
    start, pieces = 0, []
    while start < len(chars):
        end, cur = len(chars), None
        while start < end:
            sub = "".join(chars[start:end])
            if start > 0:
                sub = "##" + sub
            if sub in vocab:
                cur = sub
                break
            end -= 1
        if cur is None:
            return ["[UNK]"]
        pieces.append(cur)
        start = end
    return pieces


def tokenize(text, vocab, lower=True):
    """BertTokenizer.tokenize, for text without special tokens."""
    return [p for w in basic_tokenize(text, lower) for p in wordpiece(w, vocab)]


# --- vocabulary ---------------------------------------------------------------


def build(size, words, chars):
    """The vocabulary of size tokens, from word and character counts."""
    vocab = list(SPECIALS)
    vocab += list(string.ascii_lowercase) + list(string.digits)
    punct = list(PUNCT)
    others = sorted((c for c in chars if c in string.punctuation and c not in punct), key=lambda c: (-chars[c], c))
    vocab += punct + others
    vocab += ["##" + c for c in string.ascii_lowercase + string.digits]
    for w in WORDS + sorted(words, key=lambda w: (-words[w], w)):
        if len(vocab) == size:
            break
        if len(w) > 1 and w.isalpha() and w not in vocab:
            vocab.append(w)
    if len(vocab) != size:
        sys.exit(f"vocabulary of {len(vocab)} tokens, want {size}")
    return vocab


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder of the UCI sentiment-labelled sentences (*.json)")
    ap.add_argument("--out", required=True, help="core/testdata/reference")
    args = ap.parse_args()

    texts = []
    for name in sorted(os.listdir(args.data)):
        if name.endswith(".json"):
            with open(os.path.join(args.data, name), encoding="utf-8") as f:
                texts += [ex["text"] for ex in json.load(f)]
    ascii_texts = [t for t in texts if t.isascii()]
    words, chars = collections.Counter(), collections.Counter()
    for t in ascii_texts:
        ws = basic_tokenize(t)
        words.update(ws)
        chars.update(c for w in ws for c in w)

    for case, size in SIZES.items():
        vocab = build(size, words, chars)
        with open(os.path.join(args.out, case, "vocab.txt"), "w", encoding="utf-8", newline="\n") as f:
            f.write("".join(tok + "\n" for tok in vocab))
        index = set(vocab)
        for what, ts in (("ASCII", ascii_texts), ("all", texts)):
            toks = [tokenize(t, index) for t in ts]
            n = sum(len(x) for x in toks)
            unk = sum(x.count("[UNK]") for x in toks)
            with_unk = sum("[UNK]" in x for x in toks)
            print(
                f"{case}: {what} {len(ts)} sentences, {n} tokens ({n / len(ts):.1f} a sentence), "
                f"[UNK] {unk} ({100 * unk / n:.2f}%), sentences with [UNK] {with_unk}"
            )


if __name__ == "__main__":
    main()
