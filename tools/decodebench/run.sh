#!/usr/bin/env bash
# Decoding speed of surgeon against llama.cpp on the same GGUF files, in one
# run: a random Llama of about 110M parameters (hidden 768, 12 layers of
# 12 heads, intermediate 2048, vocabulary 16000) written by
# tools/mkllama -gguf in F32 and Q8_0; for 1 and 2 threads, 512-token
# prompt processing and greedy decoding tokens/s of `surgeon generate
# --timings` (GOMAXPROCS threads) and of tools/llamacpp/bench.mjs
# (llama.cpp threads), and their ratios.
#
#   tools/decodebench/run.sh [OUT_DIR]      (make bench-decode)
#
# Needs node and tools/llamacpp/node_modules (cd tools/llamacpp && npm ci).
# Prints a table and writes OUT_DIR/results.jsonl (default /tmp/decodebench).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-/tmp/decodebench}
prompt=${PROMPT_TOKENS:-512}
decode=${DECODE_TOKENS:-64}
vocab=16000
mkdir -p "$out"
go build -o "$out/surgeon" ./cmd/surgeon
for typ in f32 q8_0; do
	[ -f "$out/$typ.gguf" ] || go run ./tools/mkllama -gguf "$out/$typ.gguf" -type "$typ" \
		-hidden 768 -inter 2048 -layers 12 -heads 12 -vocab $vocab
done
# The prompt ids bench.mjs uses: 1, then (i*7919+13) % (vocab-3) + 3.
ids=$(awk -v n="$prompt" -v v="$vocab" 'BEGIN { s = "1"; for (i = 1; i < n; i++) s = s "," ((i*7919+13) % (v-3) + 3); print s }')
: >"$out/results.jsonl"
printf '%-5s %-7s %12s %12s %7s %12s %12s %7s\n' type threads pp_surgeon pp_llamacpp ratio tg_surgeon tg_llamacpp ratio
for typ in f32 q8_0; do
	for threads in 1 2; do
		# surgeon: the prompt in one cached step, then decode tokens one by one.
		s=$(GOMAXPROCS=$threads "$out/surgeon" generate "$out/$typ.gguf" --tokens "$ids" -n $((decode + 1)) --timings --json 2>&1 >/dev/null | tail -1)
		l=$(cd tools/llamacpp && node bench.mjs "$out/$typ.gguf" "$threads" "$prompt" "$decode")
		echo "{\"type\":\"$typ\",\"threads\":$threads,\"surgeon\":$s,\"llamacpp\":$l}" >>"$out/results.jsonl"
		python3 - "$typ" "$threads" "$s" "$l" <<'PY'
import json, sys
typ, threads, s, l = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
pp_s, pp_l = s["prompt_tokens_per_second"], l["prompt_tokens_per_second"]
tg_s, tg_l = s["decode_tokens_per_second"], l["decode_tokens_per_second"]
print(f"{typ:<5} {threads:<7} {pp_s:12.1f} {pp_l:12.1f} {pp_s/pp_l:6.2f}x {tg_s:12.1f} {tg_l:12.1f} {tg_s/tg_l:6.2f}x")
PY
	done
done
