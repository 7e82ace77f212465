#!/usr/bin/env bash
# What a flood to a group no rule names costs the worker: one rule for
# 239.1.1.1:5000, 100 000 pps of 64-byte datagrams to 239.9.9.9:5000 for 5 s,
# then the worker's CPU ticks and its recv/no_match counters.
# Run as root from the repository root after `cargo build --release --workspace`.
# (PERFORMANCE.md's "without the filter" figure came from the same run with
# `ingress_filter` in src/sys/bpf.rs made to accept everything.)
set -euo pipefail
TAG=fl NET=31 . "$(dirname "$0")/chain.sh"
start_mcrd '{ rules: [ { input: { interface: "r0", group: "239.1.1.1", port: 5000 }, outputs: [ { interface: "r1", group: "239.2.2.2", port: 6000 } ] } ] }'
wait_worker
sleep 1
c0=$(awk '{print $14+$15}' /proc/$W/stat)
ip netns exec $S "$BIN/mcrgen" send --group 239.9.9.9 --port 5000 --interface s0 --rate 100000 --duration 5 --size 64 >/dev/null
c1=$(awk '{print $14+$15}' /proc/$W/stat)
sleep 1.5
echo "worker CPU during 5 s of 100 000 pps to 239.9.9.9: $((c1 - c0)) ticks ($(getconf CLK_TCK) per second of one core)"
ip netns exec $R "$BIN/mcrctl" --socket "$DIR/s.sock" stats | sed -n '1,12p'
