#!/usr/bin/env bash
# `make bench`: surgeon's Go benchmarks side by side with a PyTorch peer on
# the same shapes, in one run, one process at a time (never concurrently),
# then a Markdown table of ratios; then the repository's other Go benchmarks.
#
#   tools/bench/run.sh            # everything (about 7 minutes on an idle machine)
#   tools/bench/run.sh --quick    # one round, no other Go benchmarks
#   tools/bench/run.sh --only sgemm,stories,bert,io,other   # a subset
#
# Environment:
#   SURGEON_BENCH_DIR        work folder (default /tmp/surgeon-bench-run)
#   SURGEON_BENCH_ROUNDS     rounds of the cheap comparisons (default 3; best kept)
#   SURGEON_BENCH_SGEMM_ROUNDS rounds of the Sgemm comparison on every shape
#                            (default 2), two samples a side in each:
#                            surgeon's benchmark twice, OpenBLAS through torch
#                            and through numpy
#   SURGEON_BENCH_BIG_ROUNDS further rounds on the large shape alone (default
#                            6), alternating the two sides every few seconds.
#                            On a virtual machine whose cores share their
#                            physical cores with other tenants a 2-thread
#                            product swings by up to 40% from one ten-second
#                            stretch to the next, on both sides alike; the best
#                            of many short interleaved samples is what each
#                            side's code can do.
#   SURGEON_BENCH_BERT_ROUNDS rounds of the BERT-base step (default 1)
#   SURGEON_BENCH_IDLE_WAIT  seconds to wait, before each measurement, for
#                            other processes to leave the CPUs (default 0)
#   SURGEON_BENCH_BYTES      size of the safetensors read benchmark's files,
#                            one F16 and one BF16 (default 1 GiB each,
#                            written once under $TMPDIR)
#   SURGEON_BENCH_PYTHON     interpreter with torch (default /usr/bin/python3)
#   SURGEON_BENCH_OPENBLAS_CORETYPE  OpenBLAS kernels for the peer (default:
#                            SkylakeX with AVX-512, Haswell with AVX2 + FMA;
#                            "auto" leaves OpenBLAS's own detection, which on
#                            a virtual CPU it does not know falls back to the
#                            slow generic Prescott kernels)
#
# Every measurement records how much CPU other processes used while it ran
# (from /proc/stat less the measured process's own time): the table shows
# it, because a busy machine makes the ratios meaningless (PyTorch's OpenMP
# threads suffer most from contention).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
quick=0
only=sgemm,stories,bert,io,other
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1; only=sgemm,stories,bert,io ;;
	--only) only=$2; shift ;;
	*) echo "usage: $0 [--quick] [--only sgemm,stories,bert,io,other]" >&2; exit 2 ;;
	esac
	shift
done
want() { case ",$only," in *",$1,"*) return 0 ;; esac; return 1; }
work=${SURGEON_BENCH_DIR:-/tmp/surgeon-bench-run}
rounds=${SURGEON_BENCH_ROUNDS:-3}
sgemm_rounds=${SURGEON_BENCH_SGEMM_ROUNDS:-2}
big_rounds=${SURGEON_BENCH_BIG_ROUNDS:-6}
bert_rounds=${SURGEON_BENCH_BERT_ROUNDS:-1}
idle_wait=${SURGEON_BENCH_IDLE_WAIT:-0}
py=${SURGEON_BENCH_PYTHON:-/usr/bin/python3}
stories=$root/../shared/fixtures/stories260K-gguf/stories260K.gguf
[ "$quick" = 1 ] && rounds=1 && sgemm_rounds=1 && big_rounds=0
mkdir -p "$work"
results=$work/results.tsv
: >"$results"
log=$work/log.txt
: >"$log"
hz=$(getconf CLK_TCK)
ncpu=$(nproc)
start=$(date +%s)

say() { echo "== $*" | tee -a "$log" >&2; }

# --- prerequisites -----------------------------------------------------------
need_apt=()
"$py" -c 'import torch' 2>/dev/null || need_apt+=(python3-torch)
dpkg -s libopenblas0-pthread >/dev/null 2>&1 || need_apt+=(libopenblas0-pthread)
if [ ${#need_apt[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		say "installing ${need_apt[*]} with apt"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >>"$log" 2>&1
	else
		say "missing ${need_apt[*]}: install them (apt-get install ${need_apt[*]}); the PyTorch side may fail or be slow"
	fi
fi
have_time=1
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() { for f in "$@"; do case $flags in *" $f "*) ;; *) return 1 ;; esac; done; }
coretype=${SURGEON_BENCH_OPENBLAS_CORETYPE:-}
if [ -z "$coretype" ]; then
	if has avx512f avx512bw avx512vl avx512dq; then coretype=SkylakeX
	elif has avx2 fma; then coretype=Haswell
	else coretype=auto; fi
fi
[ "$coretype" = auto ] || export OPENBLAS_CORETYPE=$coretype
[ -x /usr/bin/time ] || have_time=0

# --- build -------------------------------------------------------------------
say "building"
make build >>"$log" 2>&1 || { say "make build failed (see $log)"; exit 1; }
go test -c -o "$work/gobench.test" ./tools/bench/gobench || exit 1
go test -c -o "$work/checkpoint.test" ./core/checkpoint || exit 1
go test -c -o "$work/safetensors.test" ./formats/safetensors || exit 1
hf=$work/stories-hf
if [ -f "$stories" ]; then
	rm -rf "$hf"
	bin/surgeon convert "$stories" --to hf -o "$hf" >>"$log" 2>&1 || { say "convert failed"; exit 1; }
else
	say "stories260K fixture missing at $stories: stories rows will be empty"
fi

# --- measuring ---------------------------------------------------------------
busy_jiffies() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }

# others_now samples the CPU used by everything for one second (nothing of
# ours runs meanwhile) and prints it in cores.
others_now() {
	local a b
	a=$(busy_jiffies); sleep 1; b=$(busy_jiffies)
	echo "scale=2; ($b - $a) / $hz" | bc -l
}

wait_idle() {
	[ "$idle_wait" -gt 0 ] && [ "${nowait:-0}" = 0 ] || return 0
	local t0=$SECONDS o
	while :; do
		o=$(others_now)
		if [ "$(echo "$o < 0.3" | bc -l)" = 1 ]; then return 0; fi
		if [ $((SECONDS - t0)) -ge "$idle_wait" ]; then
			say "machine still busy ($o cores used by others) after ${idle_wait}s; measuring anyway"
			return 0
		fi
	done
}

# measure SIDE ROUND DIR CMD... runs CMD in DIR, appends its RESULT / Benchmark
# lines to the results file with the CPU others used meanwhile.
measure() {
	local side=$1 round=$2 dir=$3
	shift 3
	wait_idle
	local out=$work/out.txt tf=$work/time.txt j0 j1 t0 t1 others=0
	j0=$(busy_jiffies); t0=$(date +%s.%N)
	if [ "$have_time" = 1 ]; then
		(cd "$dir" && /usr/bin/time -f '%U %S' -o "$tf" "$@") >"$out" 2>>"$log"
	else
		(cd "$dir" && "$@") >"$out" 2>>"$log"
	fi
	local rc=$?
	t1=$(date +%s.%N); j1=$(busy_jiffies)
	if [ "$have_time" = 1 ] && [ -s "$tf" ]; then
		local u s
		read -r u s < <(tail -1 "$tf")
		others=$(awk -v j="$((j1 - j0))" -v hz="$hz" -v u="$u" -v s="$s" -v w="$(echo "$t1 - $t0" | bc -l)" \
			'BEGIN { o = (j / hz - (u + s)) / w; if (o < 0) o = 0; printf "%.2f", o }')
	fi
	cat "$out" >>"$log"
	[ $rc = 0 ] || say "FAILED ($rc): $*"
	say "   (other processes used $others cores meanwhile)"
	awk -v side="$side" -v round="$round" -v others="$others" '
		/^RESULT / { printf "%s\t%s\t%s\t%s\t%s\t%s\n", round, side, $2, $3, $4, others; next }
		/^Benchmark/ {
			name = $1; sub(/-[0-9]+$/, "", name)
			for (i = 3; i + 1 <= NF; i += 2) printf "%s\t%s\t%s\t%s\t%s\t%s\n", round, side, name, $i, $(i+1), others
		}' "$out" >>"$results"
	grep -E '^(RESULT|Benchmark|INFO)' "$out" | sed "s/^/   [$side] /" >&2
}

gb=$root/tools/bench/gobench
say "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $ncpu CPUs, $(go version | cut -d' ' -f3-), load average $(cut -d' ' -f1-3 /proc/loadavg)"
nowait=1 measure torch 0 "$root" "$py" tools/bench/torch_peer.py info

# sgemm_side ROUND [--big]: one round of the Sgemm comparison, surgeon's
# side then PyTorch's, every shape or (--big) the large one only.
sgemm_side() {
	local r=$1 big=${2:-} pattern='^BenchmarkSgemm$'
	[ -n "$big" ] && pattern='^BenchmarkSgemm$/^(NN|NT|NN-avx2|NT-avx2)$/^1024x768x3072$'
	measure go "$r" "$gb" "$work/gobench.test" -test.run XXX -test.bench "$pattern" -test.benchtime 1s -test.count 2
	measure torch "$r" "$root" "$py" tools/bench/torch_peer.py sgemm $big
	if [ "$coretype" = SkylakeX ]; then
		# OpenBLAS held to AVX2 + FMA, for the rows that compare the
		# AVX2 kernels of both sides.
		OPENBLAS_CORETYPE=Haswell SURGEON_BENCH_TAG=avx2 measure torch "$r" "$root" "$py" tools/bench/torch_peer.py sgemm $big
	fi
}

for r in $(seq 1 "$(( sgemm_rounds > rounds ? sgemm_rounds : rounds ))"); do
	if want sgemm && [ "$r" -le "$sgemm_rounds" ]; then
		say "round $r/$sgemm_rounds: Sgemm, every shape"
		sgemm_side "$r"
	fi
	[ "$r" -le "$rounds" ] || continue
	if want stories && [ -d "$hf" ]; then
		# PyTorch also on one thread: on a model this small its two OpenMP
		# threads can cost more than they bring.
		say "round $r/$rounds: stories260K LoRA training"
		measure go "$r" "$gb" "$work/gobench.test" -test.run XXX -test.bench '^BenchmarkLoRATrainStories$' -test.benchtime 10x
		measure torch "$r" "$root" "$py" tools/bench/torch_peer.py stories-train "$hf"
		SURGEON_BENCH_THREADS=1 measure torch "$r" "$root" "$py" tools/bench/torch_peer.py stories-train "$hf"
		say "round $r/$rounds: stories260K forward"
		measure go "$r" "$root/core/checkpoint" "$work/checkpoint.test" -test.run XXX -test.bench '^BenchmarkForwardStories$' -test.benchtime 2s
		measure torch "$r" "$root" "$py" tools/bench/torch_peer.py stories-forward "$hf"
		SURGEON_BENCH_THREADS=1 measure torch "$r" "$root" "$py" tools/bench/torch_peer.py stories-forward "$hf"
	fi
done
want sgemm || big_rounds=0
for r in $(seq 1 "$big_rounds"); do
	say "round $r/$big_rounds: Sgemm 1024x768x3072, the two sides alternating"
	sgemm_side "big$r" --big
done
want bert || bert_rounds=0
for r in $(seq 1 "$bert_rounds"); do
	say "round $r/$bert_rounds: BERT-base LoRA step (fresh process each side)"
	measure go "$r" "$gb" "$work/gobench.test" -test.run XXX -test.bench '^BenchmarkLoRAStepBERTBase$' -test.benchtime 3x
	measure torch "$r" "$root" "$py" tools/bench/torch_peer.py bert-step --steps 3
done

want io && {
# Rounds alternate the Go benchmark and cat on the same files, so both see
# the same machine; the first round writes the files.
for r in $(seq 1 "$rounds"); do
	say "round $r/$rounds: safetensors F16/BF16 -> F32 read vs cat"
	measure go "$r" "$root/formats/safetensors" "$work/safetensors.test" -test.run XXX -test.bench '^BenchmarkReadToF32$' -test.benchtime 3x
	for dt in F16 BF16; do
		stfile=${TMPDIR:-/tmp}/surgeon-bench/$(echo "$dt" | tr A-Z a-z)-llama-${SURGEON_BENCH_BYTES:-1073741824}.safetensors
		[ -f "$stfile" ] || continue
		size=$(stat -c %s "$stfile")
		[ "$r" = 1 ] && printf '1\tcat\tfile-size/%s\t%s\tB\t0\n' "$dt" "$size" >>"$results"
		# shellcheck disable=SC2016
		measure cat "$r" "$root" bash -c 't0=$(date +%s.%N); cat "$1" >/dev/null; t1=$(date +%s.%N)
			echo "RESULT cat/$3 $(echo "$2 / ($t1 - $t0) / 1000000000" | bc -l) GB/s"' _ "$stfile" "$size" "$dt"
	done
done
}

if want other; then
	say "the repository's other Go benchmarks (-benchtime 3x)"
	pkgs=$(go list ./... | grep -v '/tools/bench/gobench$')
	wait_idle
	# shellcheck disable=SC2086
	go test -run XXX -bench . -benchtime 3x $pkgs >"$work/other.txt" 2>>"$log"
	cat "$work/other.txt" >>"$log"
	awk '/^pkg: /{pkg=$2; sub(/^github.com\/surgeon-ml\/surgeon\//, "", pkg)}
		/^Benchmark/ { name=$1; sub(/-[0-9]+$/, "", name)
			for (i = 3; i + 1 <= NF; i += 2) printf "1\tother\t%s %s\t%s\t%s\t0\n", pkg, name, $i, $(i+1) }' \
		"$work/other.txt" >>"$results"
	grep -E '^(FAIL|ok|---)' "$work/other.txt" | grep -v '^ok' | sed 's/^/   /' >&2
fi

# --- report ------------------------------------------------------------------
echo
echo "# surgeon vs PyTorch $(grep -m1 '^INFO torch' "$log" | cut -d' ' -f3 | tr -d ,) ($(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo '+dirty'))"
echo
grep '^INFO' "$log" | sed 's/^INFO /- /'
echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $ncpu threads on each side; $(go version | cut -d' ' -f3-)"
echo "- best of $rounds round(s) ($sgemm_rounds for Sgemm on every shape and $big_rounds more on the large one, two samples a side in each; $bert_rounds for BERT); ratio = surgeon / PyTorch in the row's unit; \"other load\" = cores used by other processes during the runs kept (0 = clean)"
echo "- total time $(( $(date +%s) - start )) s; full log $log"
echo
"$py" tools/bench/table.py "$results"
