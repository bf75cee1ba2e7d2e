// Tokenization with llama.cpp (node-llama-cpp, prebuilt CPU binaries) as an
// independent peer for the tokenizers surgeon writes into GGUF files:
//
//   node tokenize.mjs MODEL.gguf TEXTS.json
//
// TEXTS.json is a JSON array of strings; prints {"ids": [[...], ...]}: each
// text's ids as llama.cpp tokenizes it, special tokens in the text parsed,
// nothing added around it.
import {readFileSync} from "node:fs";
import {getLlama} from "node-llama-cpp";

const [modelPath, textsPath] = process.argv.slice(2);
if (!modelPath || !textsPath) {
    console.error("usage: node tokenize.mjs MODEL.gguf TEXTS.json");
    process.exit(2);
}
const texts = JSON.parse(readFileSync(textsPath, "utf8"));
const llama = await getLlama({gpu: false, build: "never", logLevel: "error", maxThreads: 2});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const ids = texts.map((t) => Array.from(model.tokenize(t, true)));
console.log(JSON.stringify({ids}));
await model.dispose();
await llama.dispose();
