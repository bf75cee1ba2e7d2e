#!/usr/bin/env bash
# A one-node Slurm cluster on localhost, its state in a folder:
#   tools/cluster/slurm.sh start DIR    munged, slurmctld and slurmd, from slurm.conf.in;
#                                       prints the SLURM_CONF to export for the clients
#   tools/cluster/slurm.sh stop DIR     cancels every job, stops the daemons by PID
# Used by tools/cluster/test.sh (make cluster-test). Needs root, slurm-wlm and munge.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:?start or stop}
dir=${2:?state folder}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
export SLURM_CONF=$dir/slurm.conf

# stop_pid FILE NAME: TERM, then KILL after 10 s, the process whose PID is in FILE.
stop_pid() {
  local f=$1 name=$2 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "cluster: $name (PID $pid) still running after 10 s: killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$f"
}

case $cmd in
start)
  free_port() { # a free TCP port on localhost
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
      echo $((20000 + RANDOM % 20000))
  }
  host=$(hostname -s)
  mkdir -p "$dir/munge" "$dir/state" "$dir/spool"
  chmod 700 "$dir/munge"
  sed -e "s|@DIR@|$dir|g" -e "s|@HOST@|$host|g" -e "s|@CPUS@|$(nproc)|g" \
      -e "s|@CTLD_PORT@|$(free_port)|g" -e "s|@SLURMD_PORT@|$(free_port)|g" \
      "$here/slurm.conf.in" > "$SLURM_CONF"
  # A fresh munge key, readable by root only.
  if command -v mungekey >/dev/null; then
    mungekey --create --keyfile="$dir/munge/munge.key" --force >/dev/null
  else
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  fi
  chmod 600 "$dir/munge/munge.key"
  # --force: munged otherwise refuses to run as root or with a socket
  # folder under /tmp (whose sticky, world-writable parent it distrusts).
  munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"
  slurmctld -f "$SLURM_CONF" -i
  slurmd -f "$SLURM_CONF" -N "$host"
  # The node comes up idle within seconds.
  for _ in $(seq 150); do
    if [ "$(sinfo -h -N -o '%T' 2>/dev/null || true)" = idle ]; then
      echo "$SLURM_CONF"
      exit 0
    fi
    sleep 0.2
  done
  echo "cluster: the node did not come up in 30 s; sinfo says: $(sinfo -N 2>&1 | tail -1)" >&2
  tail -5 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
  exit 1
  ;;
stop)
  if [ -s "$dir/slurmctld.pid" ] && [ -f "$SLURM_CONF" ]; then
    timeout 10 scancel --full --signal=KILL --user="$(id -un)" 2>/dev/null || true
    timeout 10 scancel --user="$(id -un)" 2>/dev/null || true
  fi
  stop_pid "$dir/slurmd.pid" slurmd
  stop_pid "$dir/slurmctld.pid" slurmctld
  stop_pid "$dir/munge/munged.pid" munged
  ;;
*)
  echo "usage: $0 start|stop DIR" >&2
  exit 2
  ;;
esac
