#!/usr/bin/env bash
# `make bench-scale`: memory and speed at real model sizes (issue 14), on
# random weights written by tools/bigmodel and deleted afterwards.
#
#   tools/bench/scale.sh              # TinyLlama-1.1B shape, then Llama-2-7B shape
#   tools/bench/scale.sh --no-7b      # TinyLlama only (needs ~7 GB of disk instead of ~35 GB)
#
# For each model: streamed `merge` of a LoRA r=16 on q_proj,v_proj (BF16
# out) and streamed `convert` (BF16 -> BF16, sharded), each with its wall
# time, its peak RSS, and the ratio of its throughput to `cp -r` followed
# by `sync` of the same folder (surgeon syncs its output before renaming
# it into place, so the copy is timed to disk as well); the bound the
# issue sets on peak RSS (twice the largest tensor in F32, plus 300 MiB);
# `forward` of 16 tokens on TinyLlama (start to first logits, peak RSS).
#
# Environment: SURGEON_SCALE_DIR work folder (default /tmp/surgeon-scale).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
big=1
[ "${1:-}" = "--no-7b" ] && big=0
work=${SURGEON_SCALE_DIR:-/tmp/surgeon-scale}
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
make -s build >/dev/null
go build -o "$work/bigmodel" ./tools/bigmodel
surgeon=$root/bin/surgeon
report=$work/report.md
out=${SURGEON_SCALE_REPORT:-$root/bin/scale-report.md}

# measure NAME CMD...: runs CMD under GNU time; sets secs and rss_mib.
measure() {
	local name=$1; shift
	sync
	/usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/$name.log" 2>&1 || { cat "$work/$name.log"; exit 1; }
	read -r secs kb <"$work/time"
	rss_mib=$((kb / 1024))
}

row() { printf '| %s | %s | %s | %s | %s |\n' "$@" | tee -a "$report"; }

{
	echo "# surgeon bench-scale ($(date -u +%Y-%m-%dT%H:%MZ))"
	echo
	echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) threads; $(go version | cut -d' ' -f3-)"
	echo "- random Llama weights from tools/bigmodel (BF16 safetensors, 2 GiB shards); LoRA r=16 on q_proj, v_proj"
	echo
	echo "| model | step | wall s | peak RSS MiB | vs cp+sync / bound |"
	echo "|---|---|---|---|---|"
} >"$report"

run_shape() {
	local shape=$1 largest=$2
	local m=$work/$shape
	"$work/bigmodel" -shape "$shape" -o "$m" -adapter "$m-lora" -r 16
	local bytes
	bytes=$(du -sb "$m" | cut -f1)
	local bound=$(((2 * largest + (300 << 20)) >> 20))
	measure cp sh -c "cp -r '$m' '$work/copy' && sync"
	local cp_secs=$secs
	rm -rf "$work/copy"
	row "$shape ($((bytes >> 20)) MiB)" "cp -r + sync" "$cp_secs" "-" "1.00"
	measure merge "$surgeon" merge "$m" --adapter "$m-lora" --dtype BF16 -o "$work/merged"
	grep -q "(streamed)" "$work/merge.log" || { echo "merge did not stream"; cat "$work/merge.log"; exit 1; }
	row "$shape" "merge (streamed)" "$secs" "$rss_mib" "$(awk -v a="$cp_secs" -v b="$secs" 'BEGIN{printf "%.2fx", a/b}') / RSS bound $bound MiB: $([ "$rss_mib" -le "$bound" ] && echo met || echo NOT met)"
	rm -rf "$work/merged"
	measure convert "$surgeon" convert "$m" --to safetensors --dtype BF16 --max-shard-bytes $((2 << 30)) -q -o "$work/converted"
	row "$shape" "convert BF16->BF16 (streamed)" "$secs" "$rss_mib" "$(awk -v a="$cp_secs" -v b="$secs" 'BEGIN{printf "%.2fx", a/b}') / RSS bound $bound MiB: $([ "$rss_mib" -le "$bound" ] && echo met || echo NOT met)"
	rm -rf "$work/converted"
	if [ "$shape" = tinyllama ]; then
		measure forward "$surgeon" forward "$m" --tokens 1,450,4996,373,263,931,29892,727,471,263,2217,7826,4257,365,2354,29889 --top 1
		row "$shape" "forward 16 tokens (start to first logits)" "$secs" "$rss_mib" "-"
	fi
	rm -rf "$m" "$m-lora"
}

run_shape tinyllama $((32000 * 2048 * 4))
if [ $big = 1 ]; then
	run_shape llama7b $((32000 * 4096 * 4))
fi
cp "$report" "$out"
echo
echo "report: $out"
