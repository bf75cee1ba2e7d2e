// Greedy decoding with llama.cpp (node-llama-cpp, prebuilt CPU binaries) as
// an independent peer for surgeon's GGUF files:
//
//   node greedy.mjs MODEL.gguf N ID,ID,... [LORA.gguf]
//
// prints {"ids": [...]}: the N token ids llama.cpp picks greedily after the
// given prompt ids, with an optional LoRA adapter GGUF applied.
import {getLlama} from "node-llama-cpp";

const [modelPath, nStr, prompt, loraPath] = process.argv.slice(2);
if (!modelPath || !nStr || !prompt) {
    console.error("usage: node greedy.mjs MODEL.gguf N ID,ID,... [LORA.gguf]");
    process.exit(2);
}
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const opts = {threads: 2, contextSize: 256, batchSize: 256, sequences: 1};
if (loraPath) opts.lora = {adapters: [{filePath: loraPath, scale: 1}]};
const context = await model.createContext(opts);
const seq = context.getSequence();
const ids = [];
const n = Number(nStr);
for await (const token of seq.evaluate(prompt.split(",").map(Number), {temperature: 0})) {
    ids.push(token);
    if (ids.length >= n) break;
}
console.log(JSON.stringify({ids}));
await context.dispose();
await model.dispose();
await llama.dispose();
