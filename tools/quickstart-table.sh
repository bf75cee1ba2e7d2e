#!/usr/bin/env bash
# Runs the quickstart task as LoRA r = 1, 4, 8, 16 (lora_alpha = 2r), head-only
# and full fine-tuning, one after the other, and prints a Markdown table of
# trainable parameters, test accuracy, wall time and tokens/s from each
# run's report.json. Usage: tools/quickstart-table.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/table}
export SURGEON_HF_MIRROR=${SURGEON_HF_MIRROR:-../shared/fixtures/hf-mirror}
mkdir -p "$out"
run() { # name recipe sets...
  local name=$1 recipe=$2; shift 2
  echo "== $name" >&2
  bin/surgeon apply "$recipe" --set output.dir="$PWD/$out/$name" --set output.overwrite=true "$@" > "$out/$name.log" 2>&1
}
for r in 1 4 8 16; do
  run "lora-r$r" recipes/quickstart.toml --set targets.0.config.r=$r --set targets.0.config.lora_alpha=$((2 * r))
done
run head recipes/quickstart-head.toml
run full recipes/quickstart-full.toml
printf '| method | trainable params | %% of model | test accuracy | test F1 (macro) | wall time (s) | tokens/s |\n|---|---|---|---|---|---|---|\n'
for name in lora-r1 lora-r4 lora-r8 lora-r16 head full; do
  python3 - "$out/$name/report.json" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
a = r["metrics_after"]
print(f"| {sys.argv[2]} | {r['trainable_params']:,} | {r['trainable_percent']:.2f} | {100*a['accuracy']:.2f}% | {a['f1']:.4f} | {r['wall_seconds']:.0f} | {r['tokens_per_second']:.0f} |")
PY
done
