#!/usr/bin/env bash
# What the operator features cost the worker, in one run: the same relay
# chain and load with several daemons, interleaved round by round so that
# the machine's other load falls on all of them alike. VARIANTS picks them
# (default "base off on metrics" with BASE_MCRD, else "off on metrics"):
#   base    - BASE_MCRD, an mcrd built from an older commit (e.g. the one
#             before the trace, or 6eb6d1e for issue 8's before/after), with
#             BASE_MCRCTL (default: this tree's mcrctl) to read its counters;
#   off     - this tree's mcrd, no rule traced, no metrics endpoint;
#   on      - this tree's mcrd with the rule traced (`trace enable --count
#             1000`, the ring full for the whole measurement);
#   metrics - this tree's mcrd serving /metrics, scraped every SCRAPE_S
#             seconds (default 0.2, far more often than Prometheus would)
#             by curl for the whole measurement.
# Each point: RATE pps of SIZE-byte datagrams for DUR s to the one rule; the
# worker's CPU (utime+stime from /proc) per packet it received, and the
# packets it sent. Prints a line per point and the medians with the ratios
# to the first variant.
# Run as root from the repository root after `cargo build --release
# --workspace`.
set -euo pipefail
RATE=${RATE:-150000} SIZE=${SIZE:-64} DUR=${DUR:-5} ROUNDS=${ROUNDS:-3} SCRAPE_S=${SCRAPE_S:-0.2}
if [ -n "${BASE_MCRD:-}" ]; then VARIANTS=${VARIANTS:-base off on metrics}; else VARIANTS=${VARIANTS:-off on metrics}; fi
case " $VARIANTS " in *" base "*) : "${BASE_MCRD:?set BASE_MCRD to measure the base variant}" ;; esac
TAG=tc NET=33 . "$(dirname "$0")/chain.sh"
RULE='{ id: "bench", input: { interface: "r0", group: "239.1.1.1", port: 5000 }, outputs: [ { interface: "r1", group: "239.2.2.2", port: 6000 } ] }'
echo "{ rules: [ $RULE ] }" > "$DIR/cfg.json5"
echo "{ rules: [ $RULE ], metrics: { listen: \"127.0.0.1:9464\" } }" > "$DIR/cfg-metrics.json5"
CTL=$BIN/mcrctl
ctl() { ip netns exec "$R" "$CTL" --socket "$DIR/s.sock" "$@"; }
counter() { ctl --json stats | python3 -c "import json,sys; print(json.load(sys.stdin)['workers'][0]['$1'])"; }

# point VARIANT: one measurement, appended to $DIR/points as "variant ns_per_pkt recv sent".
point() {
  local variant=$1 exe=$BIN/mcrd cfg=$DIR/cfg.json5 scraper="" scrapes=0
  CTL=$BIN/mcrctl
  if [ "$variant" = base ]; then exe=$BASE_MCRD; CTL=${BASE_MCRCTL:-$BIN/mcrctl}; fi
  [ "$variant" = metrics ] && cfg=$DIR/cfg-metrics.json5
  ip netns exec "$R" "$exe" supervisor --config "$cfg" --socket "$DIR/s.sock" 2>"$DIR/mcrd.log" &
  MCRD=$!
  wait_worker
  [ "$variant" = on ] && ctl trace enable --rule-id bench --count 1000 >/dev/null
  if [ "$variant" = metrics ]; then
    # Each scrape must succeed: a silent endpoint would measure nothing.
    ip netns exec "$R" bash -c "while curl -sf -o /dev/null http://127.0.0.1:9464/metrics; do echo >> '$DIR/scrapes'; sleep $SCRAPE_S; done" &
    scraper=$!
  fi
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
  if [ -n "$scraper" ]; then
    kill "$scraper"; wait "$scraper" 2>/dev/null || true
    scrapes=$(wc -l < "$DIR/scrapes"); rm -f "$DIR/scrapes"
    [ "$scrapes" -ge 5 ] || { echo "metrics: only $scrapes scrapes succeeded" >&2; exit 1; }
  fi
  kill "$MCRD"; wait "$MCRD" 2>/dev/null || true; MCRD=""
  python3 - "$variant" "$c0" "$c1" "$r0" "$r1" "$s0" "$s1" "$(getconf CLK_TCK)" "$scrapes" <<'PY' | tee -a "$DIR/points"
import sys
v, c0, c1, r0, r1, s0, s1, hz, scrapes = sys.argv[1], *map(int, sys.argv[2:])
recv = r1 - r0
ns = (c1 - c0) / hz * 1e9 / max(recv, 1)
print(f"{v} {ns:.0f} {recv} {s1 - s0}" + (f"   ({scrapes} scrapes)" if scrapes else ""))
PY
}

echo "variant ns/packet received sent   (RATE=$RATE SIZE=$SIZE DUR=$DUR ROUNDS=$ROUNDS, load $(cut -d' ' -f1-3 /proc/loadavg))"
for _ in $(seq "$ROUNDS"); do
  for v in $VARIANTS; do point "$v"; done
done
python3 - "$DIR/points" $VARIANTS <<'PY'
import statistics, sys
pts = {}
for line in open(sys.argv[1]):
    v, ns, recv, sent = line.split()[:4]
    pts.setdefault(v, []).append((float(ns), int(recv), int(sent)))
order = sys.argv[2:]
med = {v: statistics.median(p[0] for p in pts[v]) for v in order}
sent = {v: statistics.median(p[2] for p in pts[v]) for v in order}
ref = order[0]
for v in order:
    print(f"median {v}: {med[v]:.0f} ns/packet of worker CPU ({med[v] / med[ref]:.3f}x {ref}), "
          f"{sent[v]:.0f} sent per point ({sent[v] / max(sent[ref], 1):.3f}x {ref})")
PY
