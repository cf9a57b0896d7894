#!/usr/bin/env bash
# Profiles the Palaver server during one palaver-bench scenario and draws a flame graph.
#
#   bench/profile.sh <name> <seconds> <palaver-bench arguments...>
#   bench/profile.sh fanout 10 fanout --targets palaver --rate 6 --duration-secs 30
#
# Starts the scenario (release binaries in $T, default target/release), waits until the
# Palaver server it starts has its clients connected (the bench's "registered" line, then
# WAIT seconds, default 12), samples the server with perf at 499 Hz with DWARF call graphs
# (release builds have no frame pointers) for <seconds>, and writes
# bench/results/flame-<name>.svg (inferno: `cargo install inferno`; the folded stacks go
# to /tmp). Needs perf (Debian: linux-perf) and perf_event_paranoid <= 2 or root.
#
# Several nodes (--palaver-nodes N): NODE=<k> samples node k (default 0), NODE=all samples
# every node into one profile. The bench prints each node as "palaver node <k>: pid <pid>,
# <addr>"; that is where the pid comes from. EXTRA_PIDS=<pid,pid,...> adds other processes
# to the same profile, e.g. the database and Redis behind the nodes, to see what a commit
# and a publish cost on their side: EXTRA_PIDS=$(pgrep -d, -x redis-server),$(pgrep -d, -x postgres)
# (other users' processes need root or perf_event_paranoid <= 0).
#
#   NODE=1 bench/profile.sh rooms-2n-node1 8 rooms --targets palaver --palaver-nodes 2 \
#     --database-url postgres://postgres@127.0.0.1:5432/postgres \
#     --redis-url redis://127.0.0.1:6379 --duration-secs 20
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1 secs=$2
shift 2
T=${T:-target/release}
WAIT=${WAIT:-12}
NODE=${NODE:-0}
log=$(mktemp)
"$T/palaver-bench" "$@" --palaver-bin "$T/palaver" --out "bench/results/profile-$name.json" >"$log" 2>&1 &
bench=$!
until grep -q "registered" "$log"; do
  kill -0 "$bench" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 1
done
sleep "$WAIT"
if [ "$NODE" = all ]; then
  pid=$(sed -n 's/^ *palaver node [0-9]*: pid \([0-9]*\),.*/\1/p' "$log" | paste -sd,)
else
  pid=$(sed -n "s/^ *palaver node $NODE: pid \([0-9]*\),.*/\1/p" "$log" | tail -1)
fi
[ -n "$pid" ] || { echo "no palaver node $NODE in the bench's output:"; cat "$log"; kill "$bench"; exit 1; }
[ -z "${EXTRA_PIDS:-}" ] || pid="$pid,$EXTRA_PIDS"
echo "profiling palaver node $NODE: pid $pid"
perf record -F 499 -g --call-graph dwarf,16384 -p "$pid" -o "/tmp/perf-$name.data" -- sleep "$secs"
wait "$bench" || true
grep -E "^(fanout|rooms|storm|capacity) " "$log" || tail -5 "$log"
perf script -i "/tmp/perf-$name.data" 2>/dev/null | inferno-collapse-perf >"/tmp/flame-$name.folded"
inferno-flamegraph --title "palaver: $name ($*)" <"/tmp/flame-$name.folded" >"bench/results/flame-$name.svg"
echo "bench/results/flame-$name.svg"
