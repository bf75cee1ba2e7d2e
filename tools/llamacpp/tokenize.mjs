// Tokenization with llama.cpp (node-llama-cpp, prebuilt CPU binaries) as an
// independent peer for the tokenizers surgeon writes into GGUF files:
//
//   node tokenize.mjs TEXTS.json MODEL.gguf [MODEL.gguf ...]
//
// TEXTS.json is a JSON array of strings. For each model, in order, prints
// one line {"ids": [[...], ...]}: each text's ids as llama.cpp tokenizes
// it, special tokens in the text parsed, nothing added around it.
import {readFileSync} from "node:fs";
import {getLlama} from "node-llama-cpp";

const [textsPath, ...models] = process.argv.slice(2);
if (!textsPath || models.length === 0) {
    console.error("usage: node tokenize.mjs TEXTS.json MODEL.gguf [MODEL.gguf ...]");
    process.exit(2);
}
const texts = JSON.parse(readFileSync(textsPath, "utf8"));
const llama = await getLlama({gpu: false, build: "never", logLevel: "error", maxThreads: 2});
for (const modelPath of models) {
    const model = await llama.loadModel({modelPath, gpuLayers: 0});
    const ids = texts.map((t) => Array.from(model.tokenize(t, true)));
    console.log(JSON.stringify({ids}));
    await model.dispose();
}
await llama.dispose();
