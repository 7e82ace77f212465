#!/usr/bin/env bash
# One worker against two pinned workers on one interface: four 1024-byte
# flows (ports 5100-5103, one sender and one receiver each) relayed by one
# rule with input port 0, for 4 s at RATE pps per flow.
# Usage (root, repository root, after `cargo build --release --workspace`):
#   tests/benchmarks/scripts/pinned_workers.sh RATE no|yes
set -euo pipefail
BIN=${BIN:-target/release}
RATE=${1:?rate per flow}; PIN=${2:?no or yes}
T=pw$$
S=$T-s R=$T-r D=$T-d DIR=$(mktemp -d)
cleanup() { [ -n "${MCRD:-}" ] && kill "$MCRD" 2>/dev/null; wait 2>/dev/null; for n in $S $R $D; do ip netns del $n 2>/dev/null; done; rm -rf "$DIR"; }
trap cleanup EXIT
for n in $S $R $D; do ip netns add $n; ip -n $n link set lo up; done
ip -n $S link add s0 type veth peer name r0 netns $R
ip -n $R link add r1 type veth peer name d0 netns $D
for x in "$S s0 10.33.1.1/24" "$R r0 10.33.1.2/24" "$R r1 10.33.2.1/24" "$D d0 10.33.2.2/24"; do
  set -- $x; ip -n $1 addr add $3 dev $2; ip -n $1 link set $2 up
done
P=""; [ "$PIN" = yes ] && P=', pinning: { r0: [0, 1] }'
echo "{ rules: [ { input: { interface: \"r0\", group: \"239.1.1.1\", port: 0 }, outputs: [ { interface: \"r1\", group: \"239.2.2.2\", port: 0 } ] } ] $P }" > "$DIR/cfg.json5"
ip netns exec $R "$BIN/mcrd" supervisor --config "$DIR/cfg.json5" --socket "$DIR/s.sock" 2>"$DIR/mcrd.log" &
MCRD=$!
sleep 2
pids=()
for i in 0 1 2 3; do
  ip netns exec $D "$BIN/mcrgen" recv --group 239.2.2.2 --port $((5100 + i)) --interface d0 \
    --idle-timeout 2 --rcvbuf 33554432 --json --quiet > "$DIR/r$i.json" & pids+=($!)
done
sleep 0.5
for i in 0 1 2 3; do
  ip netns exec $S "$BIN/mcrgen" send --group 239.1.1.1 --port $((5100 + i)) --interface s0 \
    --rate "$RATE" --count $((RATE * 4)) --size 1024 --tick-us 200 --stream-id $i --json > "$DIR/s$i.json" & pids+=($!)
done
wait "${pids[@]}"
python3 - "$DIR" "$PIN" "$RATE" <<'PY'
import json, sys
d, pin, rate = sys.argv[1:]
sent = sum(json.load(open(f"{d}/s{i}.json"))["sent"] for i in range(4))
reps = [json.loads(open(f"{d}/r{i}.json").read().strip().splitlines()[-1]) for i in range(4)]
got = sum(r["unique"] for r in reps)
p99 = max(r["latency_us"]["p99"] for r in reps)
print(f"pinning={pin} rate/flow={rate}: sent {sent} delivered {got} loss {100 * (sent - got) / sent:.3f} % worst p99 {p99:.0f} us")
PY
