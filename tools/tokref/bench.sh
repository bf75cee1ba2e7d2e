#!/usr/bin/env bash
# surgeon's tokenizer.json speed next to transformers.js, in the same run:
# llama3 on tinyshakespeare/input.txt (Go: BenchmarkHFEncodeShakespeare,
# node: bench.mjs, each the best of 3 cold-cache rounds), and the load time
# of gemma3's 33 MB tokenizer.json (BenchmarkHFLoadGemma3).
# Usage: tools/tokref/bench.sh   (needs node and ../shared/fixtures; runs npm ci once)
set -euo pipefail
cd "$(dirname "$0")"
GO=${GO:-go}
[ -d node_modules/@lenml/tokenizers ] || npm ci --silent
go_out=$(cd ../.. && "$GO" test -run '^$' -bench 'BenchmarkHF(EncodeShakespeare|LoadGemma3)$' -benchtime 3x -count 1 ./core/tokenizer)
echo "$go_out" | grep '^Benchmark'
js_out=$(node bench.mjs --rounds 3)
echo "$js_out"
go_tps=$(echo "$go_out" | awk '/EncodeShakespeare/ { for (i = 1; i <= NF; i++) if ($(i+1) == "tokens/s") print $i }')
js_tps=$(echo "$js_out" | sed -E 's/.* ([0-9]+) tokens\/s.*/\1/')
awk -v g="$go_tps" -v j="$js_tps" 'BEGIN { printf "llama3 tinyshakespeare: surgeon %.0f tokens/s, transformers.js %.0f tokens/s: %.1fx\n", g, j, g / j }'
