#!/usr/bin/env bash
# Merge throughput (GB/s of weights written) against copying the same file,
# on stories260K and on a ~1 GB random Llama, plus plugin start-up and
# Describe/Plan round-trip times. Usage: tools/bench-merge.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/surgeon-bench-merge}
mkdir -p "$work"
work=$(cd "$work" && pwd)
export SURGEON_HF_MIRROR=${SURGEON_HF_MIRROR:-../shared/fixtures/hf-mirror}
[ -x bin/surgeon ] || make build >/dev/null

echo "== plugin start-up and round trips"
go test -run XXX -bench Startup -benchtime 20x ./plugins/host/ | grep -E '^Benchmark'

secs() { local s=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $s" | bc -l; }
rate() { echo "scale=3; $1 / $2 / 1000000000" | bc -l; }

bench() { # name model adapter
  local name=$1 model=$2 adapter=$3 out="$work/$1-merged"
  rm -rf "$out"
  local t_merge=$(secs bin/surgeon merge "$model" --adapter "$adapter" -o "$out")
  local bytes=$(stat -c %s "$out/model.safetensors")
  local src=$(ls "$model"/model.safetensors 2>/dev/null || echo "$out/model.safetensors")
  sync; local t_cp=$(secs cp "$src" "$work/$name-copy.safetensors")
  echo "$name: merge wrote $bytes bytes in ${t_merge}s = $(rate $bytes $t_merge) GB/s; cp of the same size: ${t_cp}s = $(rate $bytes $t_cp) GB/s; ratio merge/cp = $(echo "scale=3; $t_cp / $t_merge" | bc -l)"
}

echo "== merge throughput"
if [ ! -d "$work/stories-lora" ]; then
  bin/surgeon apply recipes/shakespeare.toml --set train.steps_per_epoch=2 --set eval.max_examples=2 \
    --set output.dir="$work/stories-run" --set output.overwrite=true >/dev/null
  cp -r "$work/stories-run/adapter" "$work/stories-lora"
fi
bin/surgeon convert ../shared/fixtures/stories260K-gguf/stories260K.gguf --to hf -o "$work/stories-hf" -q
bench stories260K "$work/stories-hf" "$work/stories-lora"
[ -d "$work/llama1g" ] || go run ./tools/mkllama -o "$work/llama1g" -adapter "$work/llama1g-lora"
bench llama-1.1GB "$work/llama1g" "$work/llama1g-lora"
