#!/usr/bin/env bash
# What the per-rule trace costs the worker, in one run: the same relay chain
# and load with three daemons, interleaved round by round so that the
# machine's other load falls on all of them alike:
#   base  - BASE_MCRD, an mcrd built without the trace (e.g. the commit
#           before it), the "before";
#   off   - this tree's mcrd, no rule traced (the "after": must match base);
#   on    - this tree's mcrd with the rule traced (`trace enable --count 1000`).
# Each point: RATE pps of SIZE-byte datagrams for DUR s to the one rule; the
# worker's CPU (utime+stime from /proc) per packet it received, and the
# packets it sent. Prints a line per point and the medians with the ratios.
# Run as root from the repository root after `cargo build --release
# --workspace`, with BASE_MCRD=/path/to/old/mcrd.
set -euo pipefail
: "${BASE_MCRD:?set BASE_MCRD to an mcrd built before the trace}"
RATE=${RATE:-150000} SIZE=${SIZE:-64} DUR=${DUR:-5} ROUNDS=${ROUNDS:-3}
TAG=tc NET=33 . "$(dirname "$0")/chain.sh"
CFG='{ rules: [ { id: "bench", input: { interface: "r0", group: "239.1.1.1", port: 5000 }, outputs: [ { interface: "r1", group: "239.2.2.2", port: 6000 } ] } ] }'
echo "$CFG" > "$DIR/cfg.json5"
ctl() { ip netns exec "$R" "$BIN/mcrctl" --socket "$DIR/s.sock" "$@"; }
counter() { ctl --json stats | python3 -c "import json,sys; print(json.load(sys.stdin)['workers'][0]['$1'])"; }

# point VARIANT: one measurement, appended to $DIR/points as "variant ns_per_pkt recv sent".
point() {
  local variant=$1 exe=$BIN/mcrd
  [ "$variant" = base ] && exe=$BASE_MCRD
  ip netns exec "$R" "$exe" supervisor --config "$DIR/cfg.json5" --socket "$DIR/s.sock" 2>"$DIR/mcrd.log" &
  MCRD=$!
  wait_worker
  [ "$variant" = on ] && ctl trace enable --rule-id bench --count 1000 >/dev/null
  sleep 1
  local r0 s0 c0 c1 r1 s1
  r0=$(counter recv); s0=$(counter sent)
  c0=$(awk '{print $14+$15}' /proc/$W/stat)
  ip netns exec "$S" "$BIN/mcrgen" send --group 239.1.1.1 --port 5000 --interface s0 \
    --rate "$RATE" --duration "$DUR" --size "$SIZE" >/dev/null 2>&1
  c1=$(awk '{print $14+$15}' /proc/$W/stat)
  sleep 1.2 # one stats interval
  r1=$(counter recv); s1=$(counter sent)
  if [ "$variant" = on ]; then
    ctl --json trace show --rule-id bench | python3 -c "import json,sys; r=json.load(sys.stdin)['rules'][0]; assert len(r['packets'])==1000, r['seen']"
  fi
  kill "$MCRD"; wait "$MCRD" 2>/dev/null || true; MCRD=""
  python3 - "$variant" "$c0" "$c1" "$r0" "$r1" "$s0" "$s1" "$(getconf CLK_TCK)" <<'PY' | tee -a "$DIR/points"
import sys
v, c0, c1, r0, r1, s0, s1, hz = sys.argv[1], *map(int, sys.argv[2:])
recv = r1 - r0
ns = (c1 - c0) / hz * 1e9 / max(recv, 1)
print(f"{v} {ns:.0f} {recv} {s1 - s0}")
PY
}

echo "variant ns/packet received sent   (RATE=$RATE SIZE=$SIZE DUR=$DUR)"
for _ in $(seq "$ROUNDS"); do
  for v in base off on; do point "$v"; done
done
python3 - "$DIR/points" <<'PY'
import statistics, sys
pts = {}
for line in open(sys.argv[1]):
    v, ns, recv, sent = line.split()
    pts.setdefault(v, []).append((float(ns), int(recv), int(sent)))
med = {v: statistics.median(p[0] for p in ps) for v, ps in pts.items()}
for v in ("base", "off", "on"):
    ps = pts[v]
    print(f"median {v}: {med[v]:.0f} ns/packet of worker CPU, {statistics.median(p[2] for p in ps):.0f} sent per point")
print(f"off/base = {med['off'] / med['base']:.3f}   on/base = {med['on'] / med['base']:.3f}")
PY
