#!/usr/bin/env bash
# make cluster-test: a real one-node Slurm on localhost runs an emitted
# sweep (recipes/quickstart-sweep.toml, small max_steps), submitted from
# another folder; then one array task is killed mid-training and only the
# missing point is resubmitted (--emit slurm --missing); it resumes from
# its checkpoint and the report is complete.
#
# Installs slurm-wlm and munge with apt when missing. Skips, saying why,
# without root, apt or the fixtures (SURGEON_REQUIRE_CLUSTER=1 makes that
# a failure). Everything is bounded in time (CLUSTER_TEST_TIMEOUT seconds,
# default 900) and the daemons are stopped by PID at the end, also on
# failure. KEEP_CLUSTER_DIR=1 keeps the state folder for a post-mortem.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
SURGEON=${SURGEON:-$root/bin/surgeon}
fixtures=${SURGEON_FIXTURES:-$root/../shared/fixtures}
deadline=$((SECONDS + ${CLUSTER_TEST_TIMEOUT:-900}))
start=$SECONDS

say() { echo "cluster-test: $*"; }
skip() {
  if [ "${SURGEON_REQUIRE_CLUSTER:-0}" = 1 ]; then say "FAIL: $*" >&2; exit 1; fi
  say "SKIP: $*"; exit 0
}
fail() { say "FAIL: $*" >&2; exit 1; }

[ -x "$SURGEON" ] || fail "no $SURGEON: run make build first"
[ -f "$fixtures/sms-spam-collection/SMSSpamCollection" ] || skip "no fixtures in $fixtures"
[ "$(id -u)" = 0 ] || skip "needs root (slurmd runs as root and apt installs slurm-wlm)"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || skip "slurm-wlm and munge are not installed and there is no apt-get"
  say "installing slurm-wlm and munge from apt"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null; } ||
    skip "apt-get install slurm-wlm munge failed"
fi

T=$(mktemp -d /tmp/surgeon-cluster.XXXXXX)
cleanup() {
  rc=$?
  trap - EXIT INT TERM
  if [ $rc != 0 ]; then
    say "state folder $T; last lines of the daemon logs:" >&2
    tail -n 15 "$T"/slurm/slurmctld.log "$T"/slurm/slurmd.log 2>/dev/null >&2 || true
    for f in "$T"/sweep*/logs/slurm-*.out; do [ -f "$f" ] && { echo "== $f" >&2; tail -n 5 "$f" >&2; }; done
  fi
  "$root/tools/cluster/slurm.sh" stop "$T/slurm" || true
  # Nothing of ours may outlive the test: report (and end) any process
  # still running from the state folder.
  left=$(pgrep -f "$T" || true)
  if [ -n "$left" ]; then
    say "processes left running, killing them: $(echo $left)" >&2
    kill -KILL $left 2>/dev/null || true
    [ $rc = 0 ] && rc=1
  fi
  if [ "${KEEP_CLUSTER_DIR:-0}" = 1 ] || [ $rc != 0 ]; then say "kept $T"; else rm -rf "$T"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting slurmctld and slurmd in $T/slurm"
SLURM_CONF=$("$root/tools/cluster/slurm.sh" start "$T/slurm") || fail "the cluster did not start"
export SLURM_CONF
sinfo

# Models come from the offline mirror through the hub (hf://); the cache
# the jobs share is in the state folder.
export SURGEON_HF_MIRROR=$fixtures/hf-mirror SURGEON_CACHE=$T/cache
recipe=recipes/quickstart-sweep.toml
mkdir -p "$T/elsewhere"

# wait_job ID: until squeue no longer lists the job, within the deadline.
wait_job() {
  local id=$1
  local q
  # (Outputs are read whole before testing them: with pipefail, a reader
  # that stops early would fail the pipeline with SIGPIPE.)
  while q=$(squeue -h -j "$id" 2>/dev/null) && [ -n "$q" ]; do
    [ $SECONDS -lt $deadline ] || fail "job $id still queued or running at the deadline: $q"
    sleep 1
  done
}
# states ID: "TASK STATE" for each array task of job ID, from the job
# completion records: there is no accounting daemon here, so sacct reads
# them with --completion, but it does not know array task ids in them,
# so they are read from the same file (jobcomp/filetxt).
states() {
  grep -E "ArrayJobId=$1 " "$T/slurm/jobcomp.txt" | sed -E 's/.*JobState=([A-Z_]+).* ArrayTaskId=([0-9]+).*/\2 \1/' | sort -n
}
# count_points SETS...: the number of points of the sweep (--list's first
# line says "...: N points in DIR"; read whole, so no SIGPIPE).
count_points() {
  local list
  list=$("$SURGEON" sweep "$recipe" "$@" --list)
  sed -nE '1s/.*: ([0-9]+) points.*/\1/p' <<<"$list"
}
# check_status DIR WANT: surgeon sweep status says WANT (its summary).
check_status() {
  local out
  out=$("$SURGEON" sweep status "$1")
  echo "$out"
  [[ "${out%%$'\n'*}" == *": $2" ]] || fail "sweep status of $1: want \"$2\""
}

say "1. the sweep, emitted from the repository root and submitted from $T/elsewhere"
sets=(--set train.max_steps=12 --set data.max_examples=400)
"$SURGEON" sweep "$recipe" "${sets[@]}" --out "$T/sweep1" --emit slurm --parallel 2 -o "$T/sweep1.sbatch"
cat "$T/sweep1.sbatch"
n=$(count_points "${sets[@]}")
[ "$n" -ge 6 ] || fail "the sweep has $n points, want at least 6"
# --export=NONE: the script must carry everything a task needs.
job=$(cd "$T/elsewhere" && sbatch --parsable --export=NONE "$T/sweep1.sbatch")
say "job $job: $n array tasks"
wait_job "$job"
acct=$(sacct --completion -o JobID,JobName,State,Start,End 2>/dev/null || true)
sed -n "1,$((n + 2))p" <<<"$acct"
bad=$(states "$job" | grep -vc ' COMPLETED$' || true)
got=$(states "$job" | grep -c ' COMPLETED$' || true)
[ "$bad" = 0 ] && [ "$got" = "$n" ] || fail "job $job: $got of $n tasks completed"
check_status "$T/sweep1" "$n/$n done"
"$SURGEON" sweep report "$T/sweep1" | tail -n 25
grep -q "$n points, $n done" "$T/sweep1/report.md" || fail "report.md of $T/sweep1 is not complete"
for f in loss-vs-step.png eval-vs-epoch.png; do
  [ -s "$T/sweep1/$f" ] || fail "no $f in the report"
done

say "2. a task killed mid-training (scancel --signal=KILL), then only the missing point resubmitted"
sets2=(--set data.max_examples=1000 --set train.checkpoint_every=4 --set 'sweep.seeds=[1]')
"$SURGEON" sweep "$recipe" "${sets2[@]}" --out "$T/sweep2" --emit slurm --parallel 2 -o "$T/sweep2.sbatch"
n2=$(count_points "${sets2[@]}")
job2=$(cd "$T/elsewhere" && sbatch --parsable --export=NONE "$T/sweep2.sbatch")
victim="r=1,seed=1" # index 0
ckpt="$T/sweep2/points/$victim.checkpoint"
say "job $job2: $n2 tasks; waiting for task 0 ($victim) to checkpoint"
while :; do
  [ $SECONDS -lt $deadline ] || fail "task 0 never checkpointed"
  [ -e "$T/sweep2/points/$victim/report.json" ] && fail "task 0 finished before it could be killed"
  if [ -f "$ckpt/state.gob" ] && [ "$(wc -l < "$ckpt/metrics.csv" 2>/dev/null || echo 0)" -gt 10 ]; then break; fi
  sleep 0.2
done
scancel --signal=KILL "${job2}_0"
say "killed task ${job2}_0 after step $(tail -1 "$ckpt/metrics.csv" | cut -d, -f1)"
wait_job "$job2"
states "$job2"
check_status "$T/sweep2" "$((n2 - 1))/$n2 done, 1 failed"
"$SURGEON" sweep status "$T/sweep2" | grep -E "^0 .*interrupted" || fail "status does not show task 0 interrupted"

"$SURGEON" sweep "$recipe" "${sets2[@]}" --out "$T/sweep2" --emit slurm --missing -o "$T/missing.sbatch"
grep -q '^#SBATCH --array=0$' "$T/missing.sbatch" || fail "the resubmission is not only point 0: $(grep array "$T/missing.sbatch")"
job3=$(cd "$T/elsewhere" && sbatch --parsable --export=NONE "$T/missing.sbatch")
say "job $job3: the missing point"
wait_job "$job3"
[ "$(states "$job3")" = "0 COMPLETED" ] || fail "job $job3: $(states "$job3")"
check_status "$T/sweep2" "$n2/$n2 done"
grep -q '"resumed": true' "$T/sweep2/points/$victim/report.json" || fail "$victim did not resume from its checkpoint"
grep -q "== attempt 2" "$T/sweep2/logs/$victim.log" || fail "no second attempt in the log of $victim"
"$SURGEON" sweep report "$T/sweep2" | grep -E "points, .* done"
grep -q "$n2 points, $n2 done" "$T/sweep2/report.md" || fail "report.md of $T/sweep2 is not complete"
again=$("$SURGEON" sweep "$recipe" "${sets2[@]}" --out "$T/sweep2" --emit slurm --missing)
grep -q "nothing to submit" <<<"$again" || fail "--missing of a complete sweep should submit nothing: $again"

say "PASS in $((SECONDS - start)) s"
