// Prompt-processing and decoding speed of llama.cpp (node-llama-cpp,
// prebuilt CPU binaries) on a GGUF file, for tools/decodebench:
//
//   node bench.mjs MODEL.gguf THREADS PROMPT_TOKENS DECODE_TOKENS
//
// evaluates PROMPT_TOKENS ids (BOS then a fixed pseudo-random sequence, as
// tools/decodebench passes to surgeon) in one batch, then decodes
// DECODE_TOKENS greedily one at a time, and prints {"threads",
// "prompt_tokens", "prompt_seconds", "prompt_tokens_per_second",
// "decode_tokens", "decode_seconds", "decode_tokens_per_second"}.
import {getLlama} from "node-llama-cpp";

const [modelPath, threadsStr, promptStr, decodeStr] = process.argv.slice(2);
if (!modelPath || !threadsStr || !promptStr || !decodeStr) {
    console.error("usage: node bench.mjs MODEL.gguf THREADS PROMPT_TOKENS DECODE_TOKENS");
    process.exit(2);
}
const threads = Number(threadsStr), nPrompt = Number(promptStr), nDecode = Number(decodeStr);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const context = await model.createContext({threads, contextSize: nPrompt + nDecode + 16, batchSize: nPrompt, sequences: 1});
const seq = context.getSequence();
const vocab = model.tokens.count ?? 16000;
// The same ids as tools/decodebench/prompt.sh: 1, then (i*7919+13) % (vocab-3) + 3.
const prompt = [1];
for (let i = 1; i < nPrompt; i++) prompt.push((i * 7919 + 13) % (vocab - 3) + 3);

// Warm-up: a short evaluation, so first-call costs are not counted.
await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, 8));
await seq.clearHistory();

let t0 = performance.now();
await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, nPrompt - 1));
const promptSeconds = (performance.now() - t0) / 1000;

t0 = performance.now();
let n = 0;
for await (const token of seq.evaluate([prompt[nPrompt - 1]], {temperature: 0})) {
    if (++n >= nDecode) break;
}
const decodeSeconds = (performance.now() - t0) / 1000;
console.log(JSON.stringify({
    threads,
    prompt_tokens: nPrompt - 1, prompt_seconds: promptSeconds, prompt_tokens_per_second: (nPrompt - 1) / promptSeconds,
    decode_tokens: n, decode_seconds: decodeSeconds, decode_tokens_per_second: n / decodeSeconds,
}));
await context.dispose();
await model.dispose();
await llama.dispose();
