#!/usr/bin/env bash
# Time of a Prometheus scrape with 10 000 rules (each with one output) on a
# running worker: mcrd with `metrics.listen`, 20 scrapes with curl, then
# best / median / worst and the size of the page. PERFORMANCE.md's
# "Metrics scrape" figures come from this.
# Run as root from the repository root after `cargo build --release --workspace`.
set -euo pipefail
TAG=ms NET=32 . "$(dirname "$0")/chain.sh"
PORT=${PORT:-19464}
RULES=${RULES:-10000}
python3 - "$RULES" "$PORT" > "$DIR/cfg.json5" <<'PY'
import sys
n, port = int(sys.argv[1]), sys.argv[2]
rules = ",\n".join(
    '{ name: "feed %d", input: { interface: "r0", group: "239.%d.%d.%d", port: 5000 }, '
    'outputs: [ { interface: "r1", group: "239.200.0.1", port: %d } ] }'
    % (i, 1 + i // 65536, (i // 256) % 256, i % 256, 1000 + i)
    for i in range(n))
print("{ rules: [\n%s\n], metrics: { listen: \"127.0.0.1:%s\" } }" % (rules, port))
PY
start_mcrd "$(cat "$DIR/cfg.json5")"
wait_worker
sleep 3 # a few stats intervals, so every rule has been reported
for _ in $(seq 20); do
  ip netns exec "$R" curl -s -o "$DIR/page" -w '%{time_total}\n' "http://127.0.0.1:$PORT/metrics"
done | sort -n | awk -v n="$RULES" '{t[NR]=$1} END {printf "scrape of %s rules: best %.3f s, median %.3f s, worst %.3f s\n", n, t[1], t[int((NR+1)/2)], t[NR]}'
echo "page: $(wc -c < "$DIR/page") bytes, $(grep -c '^mcr_rule_packets_total{' "$DIR/page") rule series"
echo "supervisor RSS: $(ip netns exec "$R" curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^process_resident_memory_bytes/ {printf "%.1f MiB", $2/1048576}')"
