#!/usr/bin/env bash
# One worker against two pinned workers on one interface: four 1024-byte
# flows (ports 5100-5103, one sender and one receiver each) relayed by one
# rule with input port 0, for 4 s at RATE pps per flow.
# Usage (root, repository root, after `cargo build --release --workspace`):
#   tests/benchmarks/scripts/pinned_workers.sh RATE no|yes
set -euo pipefail
RATE=${1:?rate per flow}; PIN=${2:?no or yes}
TAG=pw NET=33 . "$(dirname "$0")/chain.sh"
P=""; [ "$PIN" = yes ] && P=', pinning: { r0: [0, 1] }'
start_mcrd "{ rules: [ { input: { interface: \"r0\", group: \"239.1.1.1\", port: 0 }, outputs: [ { interface: \"r1\", group: \"239.2.2.2\", port: 0 } ] } ] $P }"
wait_worker
pids=()
for i in 0 1 2 3; do
  ip netns exec $D "$BIN/mcrgen" recv --group 239.2.2.2 --port $((5100 + i)) --interface d0 \
    --idle-timeout 2 --duration 30 --rcvbuf 33554432 --json --quiet > "$DIR/r$i.json" & pids+=($!)
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
