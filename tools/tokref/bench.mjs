// Throughput of transformers.js (npm @lenml/tokenizers) tokenizing
// tinyshakespeare/input.txt with the llama3 tokenizer, the peer of Go's
// BenchmarkHFEncodeShakespeare (core/tokenizer). A fresh tokenizer each
// round (cold cache, as a fresh process has); the best of ROUNDS rounds.
//   node bench.mjs [--fixtures ../../../shared/fixtures] [--rounds 3]
// Prints one line: "transformers.js llama3 shakespeare: N tokens, S s, T tokens/s, M MB/s".
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { load, tokenizers } from "./gen.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
};
const fixtures = path.resolve(arg("--fixtures", path.join(here, "../../../shared/fixtures")));
const rounds = Number(arg("--rounds", "3"));
const text = fs.readFileSync(path.join(fixtures, "tinyshakespeare/input.txt"), "utf8");
let best = Infinity;
let n = 0;
for (let r = 0; r < rounds; r++) {
  const tok = load(fixtures, tokenizers.llama3);
  const t0 = process.hrtime.bigint();
  n = tok.encode(text, { add_special_tokens: false }).length;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  best = Math.min(best, s);
}
const mb = Buffer.byteLength(text) / 1e6;
console.log(
  `transformers.js llama3 shakespeare: ${n} tokens, ${best.toFixed(3)} s, ${Math.round(n / best)} tokens/s, ${(mb / best).toFixed(2)} MB/s`
);
