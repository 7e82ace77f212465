#!/usr/bin/env bash
# What a flood to a group no rule names costs the worker: one rule for
# 239.1.1.1:5000, 100 000 pps of 64-byte datagrams to 239.9.9.9:5000 for 5 s,
# then the worker's CPU ticks and its recv/no_match counters.
# Run as root from the repository root after `cargo build --release --workspace`.
# (PERFORMANCE.md's "without the filter" figure came from the same run with
# `ingress_filter` in src/dataplane/sockets.rs made to accept everything.)
set -euo pipefail
BIN=${BIN:-target/release}
T=fl$$
S=$T-s R=$T-r D=$T-d DIR=$(mktemp -d)
cleanup() { [ -n "${MCRD:-}" ] && kill "$MCRD" 2>/dev/null; wait 2>/dev/null; for n in $S $R $D; do ip netns del $n 2>/dev/null; done; rm -rf "$DIR"; }
trap cleanup EXIT
for n in $S $R $D; do ip netns add $n; ip -n $n link set lo up; done
ip -n $S link add s0 type veth peer name r0 netns $R
ip -n $R link add r1 type veth peer name d0 netns $D
for x in "$S s0 10.31.1.1/24" "$R r0 10.31.1.2/24" "$R r1 10.31.2.1/24" "$D d0 10.31.2.2/24"; do
  set -- $x; ip -n $1 addr add $3 dev $2; ip -n $1 link set $2 up
done
echo '{ rules: [ { input: { interface: "r0", group: "239.1.1.1", port: 5000 }, outputs: [ { interface: "r1", group: "239.2.2.2", port: 6000 } ] } ] }' > "$DIR/cfg.json5"
ip netns exec $R "$BIN/mcrd" supervisor --config "$DIR/cfg.json5" --socket "$DIR/s.sock" 2>"$DIR/mcrd.log" &
MCRD=$!
for _ in $(seq 50); do W=$(pgrep -f "mcrd worker --interface r0" -n || true); [ -n "$W" ] && break; sleep 0.1; done
[ -n "$W" ] || { echo "no worker started; log:"; cat "$DIR/mcrd.log"; exit 1; }
sleep 1
c0=$(awk '{print $14+$15}' /proc/$W/stat)
ip netns exec $S "$BIN/mcrgen" send --group 239.9.9.9 --port 5000 --interface s0 --rate 100000 --duration 5 --size 64 >/dev/null
c1=$(awk '{print $14+$15}' /proc/$W/stat)
sleep 1.5
echo "worker CPU during 5 s of 100 000 pps to 239.9.9.9: $((c1 - c0)) ticks ($(getconf CLK_TCK) per second of one core)"
ip netns exec $R "$BIN/mcrctl" --socket "$DIR/s.sock" stats | sed -n '1,12p'
