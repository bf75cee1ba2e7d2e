#!/bin/sh
# gen.sh regenerates formats/gguf/testdata/ggmlref from ggml's own reference
# quantizers and dequantizers (ggml-quants.c), compiled with gcc next to the
# harness ggmlref.c. ggml's source comes from llama.cpp's git bundle inside
# the npm package node-llama-cpp (pinned); nothing of it is committed.
#
#   tools/ggmlref/gen.sh            # npm-installs the package into a scratch folder
#   LLAMA_BUNDLE=/path/to/gitRelease.bundle tools/ggmlref/gen.sh
#
# Needs npm (unless LLAMA_BUNDLE is set), git and gcc. The outputs are
# committed; Go tests need none of these tools.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/formats/gguf/testdata/ggmlref"
version=3.21.1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

bundle=${LLAMA_BUNDLE:-}
if [ -z "$bundle" ]; then
	(cd "$work" && npm init -y >/dev/null && npm i -E --ignore-scripts --no-audit --no-fund "node-llama-cpp@$version" >/dev/null)
	bundle="$work/node_modules/node-llama-cpp/llama/gitRelease.bundle"
fi
git clone -q "$bundle" "$work/llama.cpp" 2>/dev/null
src="$work/llama.cpp/ggml/src"

# -ffp-contract=off: no fused multiply-adds, so every float operation rounds
# as written (the Go side does the same); no -march, so no SIMD paths.
gcc -std=c11 -O2 -ffp-contract=off -DNDEBUG \
	-I"$work/llama.cpp/ggml/include" -I"$src" \
	"$root/tools/ggmlref/ggmlref.c" "$src/ggml-quants.c" -lm -o "$work/ggmlref"

mkdir -p "$out"
"$work/ggmlref" "$out"
(cd "$work/llama.cpp" && git log -1 --format='llama.cpp %H' ) > "$out/SOURCE"
echo "node-llama-cpp $version, gcc $(gcc -dumpfullversion)" >> "$out/SOURCE"
echo "wrote $out"
