// Expected token ids for surgeon's tokenizer.json tests, computed by an
// independent implementation: transformers.js' tokenizers (npm
// @lenml/tokenizers, pinned in package.json / package-lock.json).
//
//   cd tools/tokref && npm ci && node gen.mjs [--fixtures ../../../shared/fixtures] [--out ../../core/tokenizer/testdata/tokref]
//
// Writes texts.json.gz (the texts, each with the set it belongs to) and one
// NAME.json.gz per fixture tokenizer: {"ids": [[...]], "special": [[...]]},
// the ids of every text without and with special tokens
// (add_special_tokens false / true; special is null for the texts not
// computed), in the order of texts.json.gz.
// bench.mjs measures transformers.js' speed for `make bench`.
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { fileURLToPath } from "node:url";
import { TokenizerLoader } from "@lenml/tokenizers";

const here = path.dirname(fileURLToPath(import.meta.url));
const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
};
const fixtures = path.resolve(arg("--fixtures", path.join(here, "../../../shared/fixtures")));
const out = path.resolve(arg("--out", path.join(here, "../../core/tokenizer/testdata/tokref")));

// The fixture tokenizers: folder (relative to fixtures) by name.
export const tokenizers = {
  llama3: "tokenizers/llama3",
  qwen3: "tokenizers/qwen3",
  gemma3: "tokenizers/gemma3",
  llama2: "tokenizers/llama2",
  "bert-base-uncased": "tokenizers/bert-base-uncased",
  gpt2: "peft-lora-gpt2-smartreview/gpt2-tokenizer",
};

export function load(fixtures, dir) {
  const json = JSON.parse(fs.readFileSync(path.join(fixtures, dir, "tokenizer.json"), "utf8"));
  const cfgFile = path.join(fixtures, dir, "tokenizer_config.json");
  const cfg = fs.existsSync(cfgFile) ? JSON.parse(fs.readFileSync(cfgFile, "utf8")) : {};
  return TokenizerLoader.fromPreTrained({ tokenizerJSON: json, tokenizerConfig: cfg });
}

// Shakespeare: 300 chunks spread over the play text, each a run of lines
// (a speech), some long.
function shakespeare() {
  const text = fs.readFileSync(path.join(fixtures, "tinyshakespeare/input.txt"), "utf8");
  const paras = text.split("\n\n");
  const n = 300;
  const step = Math.floor(paras.length / n);
  const chunks = [];
  for (let i = 0; i < n; i++) {
    let c = paras[i * step];
    if (i % 10 === 0) c = paras.slice(i * step, i * step + 8).join("\n\n"); // a few long chunks
    chunks.push(c);
  }
  return chunks;
}

// Fortunes: entries of the fortunes file and every 15th of the others.
function fortunes() {
  const out = [];
  for (const f of ["fortunes", "computers", "literature", "people", "science", "wisdom", "work"]) {
    const entries = fs.readFileSync(path.join(fixtures, "fortunes", f), "latin1").split(/\n%\n/);
    const every = f === "fortunes" ? 3 : 15;
    entries.forEach((e, i) => {
      if (i % every === 0 && e.trim() !== "") out.push(e);
    });
  }
  return out;
}

// Edge cases of our own.
function own() {
  return [
    "",
    " ",
    "  ",
    "hello",
    " hello",
    "hello ",
    "Hello, world!",
    "hello   world",
    "hello \t world",
    "a\tb\t\tc",
    "line one\nline two\n\nline four\n",
    "\n\n\n",
    " \n \n",
    "trailing spaces   ",
    "   leading spaces",
    "windows\r\nline\r\nends\r\n",
    "mixed \u00a0nbsp and\u2003em space",
    "caf\u00e9 vs cafe\u0301 (precomposed and combining)",
    "na\u00efve r\u00e9sum\u00e9 \u00fcber co\u00f6perate",
    "A\u0300\u0301\u0302 stacked marks e\u0308\u0304",
    "\u00c5ngstr\u00f6m \u212b \u00c5",
    "\uff21\uff22\uff23 fullwidth \uff11\uff12\uff13",
    "\ufb01nance \u2460 \u00bd ligatures and compat",
    "\u4eca\u5929\u5929\u6c14\u5f88\u597d\uff0c\u6211\u4eec\u53bb\u516c\u56ed\u5427\u3002",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3068\u30ab\u30bf\u30ab\u30ca",
    "\ud55c\uad6d\uc5b4 \ubb38\uc7a5\uc785\ub2c8\ub2e4.",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645\u060c \u0643\u064a\u0641 \u062d\u0627\u0644\u0643\u061f",
    "\u0627\u0644\u0644\u064f\u0651\u063a\u064e\u0629\u064f \u0627\u0644\u0639\u064e\u0631\u064e\u0628\u0650\u064a\u064e\u0651\u0629\u064f (with harakat)",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e, \u092f\u0939 \u0939\u093f\u0928\u094d\u0926\u0940 \u0939\u0948\u0964",
    "\u0915\u094d\u0937\u0924\u094d\u0930\u093f\u092f \u0936\u094d\u0930\u0940 \u0926\u094d\u0935\u093e\u0930",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u0421\u0426\u0415\u041d\u0410 \u03a3\u039f\u03a6\u039f\u03a3 \u03b1\u03b2\u03b3",
    "emoji \ud83d\ude00\ud83d\ude03 and \ud83d\udc4d\ud83c\udffd skin tone",
    "family \ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67\u200d\ud83d\udc66 ZWJ \ud83c\udff3\ufe0f\u200d\ud83c\udf08 flag \ud83c\uddeb\ud83c\uddf7",
    "\u2764\ufe0f\u200d\ud83d\udd25 \ud83e\uddd1\u200d\ud83d\udcbb keycap 1\ufe0f\u20e3",
    "func main() {\n\tfmt.Println(\"hi\")\n}\n",
    "def f(x):\n    return x**2  # square\n\n\nclass A:\n        pass",
    "if (a && b || !c) { x += y->z; } // C-ish",
    "<div class=\"x\">&amp; &lt;tag&gt;</div>",
    "SELECT * FROM t WHERE id = 42;",
    "https://example.com/path?q=1&r=two#frag user@example.org",
    "0 1 12 123 1234 12345 123456789 3.14159 -2.5e10 1,000,000",
    "\u0661\u0662\u0663 \u0967\u0968\u0969 \u00b2\u00b3 \u2167 digits of other scripts",
    "year 2024, phone +1-555-0100, 10:45pm, 50%",
    "I'm sure he's gonna say they'll've done it, y'all'd",
    "I'M SURE HE'S DONE IT, WE'RE HERE, YOU'VE SEEN",
    "don't won't can't shouldn't o'clock rock'n'roll",
    "quotes \u201csmart\u201d \u2018single\u2019 \u00abguillemets\u00bb \u2014 dash \u2013 en \u2026",
    "<|endoftext|>",
    "before<|endoftext|>after",
    "text <|begin_of_text|> and <|end_of_text|> inside",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<s>hello</s> <unk> <pad>",
    "<bos>hi<eos> <start_of_turn>user\nhello<end_of_turn>",
    "[CLS] bert [SEP] tokens [MASK] inside [PAD] [UNK]",
    "<think>reasoning</think><tool_call>{}</tool_call>",
    "Supercalifragilisticexpialidocious",
    "pneumonoultramicroscopicsilicovolcanoconiosis and antidisestablishmentarianism",
    "a".repeat(300),
    "ab".repeat(200),
    "x".repeat(50) + " " + "y".repeat(150),
    "\u00e9".repeat(120),
    "\u6f22".repeat(100),
    "http://" + "verylongdomainname".repeat(10) + ".com",
    "CamelCaseIdentifierWithManyParts snake_case_identifier kebab-case-identifier",
    "MiXeD cAsE tExT ALLCAPS lowercase",
    "\u0130stanbul \u0049\u0307 dotted I, stra\u00dfe STRASSE, \u1e9e capital sharp s",
    "tabs\tand\u000bvertical\u000cform feeds",
    "!!! ??? ... --- *** ### $$$ %%% ^^^ &&& ((( )))",
    "   \t\n  mixed whitespace run  \t\n",
    "end with newline\n",
    "\u2581already has metaspace\u2581chars",
    "under_score __dunder__ ___",
    "\u00a9 \u00ae \u2122 \u00b0C \u20ac100 \u00a35 \u00a5",
  ];
}

function main() {
  const sets = [
    ["own", own()],
    ["shakespeare", shakespeare()],
    ["fortunes", fortunes()],
  ];
  const texts = [];
  for (const [set, list] of sets) for (const text of list) texts.push({ set, text });
  fs.mkdirSync(out, { recursive: true });
  const write = (name, v) =>
    fs.writeFileSync(path.join(out, name), zlib.gzipSync(JSON.stringify(v), { level: 9 }));
  write("texts.json.gz", texts);
  for (const [name, dir] of Object.entries(tokenizers)) {
    const tok = load(fixtures, dir);
    const ids = [];
    const special = [];
    texts.forEach(({ set, text }, i) => {
      ids.push(tok.encode(text, { add_special_tokens: false }));
      // With special tokens: every text of our own set and every 5th of
      // the others (null: not computed), to keep the files small.
      special.push(set === "own" || i % 5 === 0 ? tok.encode(text, { add_special_tokens: true }) : null);
    });
    write(`${name}.json.gz`, { ids, special });
    const n = ids.reduce((a, x) => a + x.length, 0);
    console.log(`${name}: ${texts.length} texts, ${n} tokens`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
