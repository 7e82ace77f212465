#!/usr/bin/env bash
# Soak a release build of mcrd: the test tests/soak.rs (two minutes in the
# suite) run for as long as asked, against release binaries, writing one CSV
# row of supervisor and worker RSS, fds, threads, worker restarts and loss
# every sample interval. Exits non-zero if the soak fails (fds or RSS grew
# past their bound after warm-up, a packet was lost outside an injected
# outage, a rule went missing, a control request failed, or mcrd died).
#
# Needs root (network namespaces, veth, AF_PACKET). See user_docs/OPERATIONS.md,
# "Soak", for what it does and the figures of the last long run.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'USAGE'
usage: scripts/soak.sh [--minutes N] [--csv FILE] [--rate PPS] [--streams N]
                       [--idle-rules N] [--phase SECS] [--sample SECS]
                       [--fd-slack N] [--rss-slack-mb N]

  --minutes N       how long to run (default 30)
  --csv FILE        where the samples go (default soak-<date>.csv here)
  --rate PPS        packets per second of each stream (default 2000)
  --streams N       rules with traffic, each one sender and receiver (default 4)
  --idle-rules N    rules without traffic, to make the tables bigger (default 96)
  --phase SECS      length of a traffic phase; one action each (default 8)
  --sample SECS     interval of the CSV rows (default 10)
  --fd-slack N      supervisor fds allowed over the post-warm-up baseline (default 12)
  --rss-slack-mb N  supervisor RSS allowed over that baseline, MB (default 16)
USAGE
}

minutes=30
csv=""
export MCR_SOAK_RATE="${MCR_SOAK_RATE:-2000}"
export MCR_SOAK_STREAMS="${MCR_SOAK_STREAMS:-4}"
export MCR_SOAK_IDLE_RULES="${MCR_SOAK_IDLE_RULES:-96}"
export MCR_SOAK_SAMPLE_SECS="${MCR_SOAK_SAMPLE_SECS:-10}"
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --csv) csv="$2"; shift 2 ;;
    --rate) MCR_SOAK_RATE="$2"; shift 2 ;;
    --streams) MCR_SOAK_STREAMS="$2"; shift 2 ;;
    --idle-rules) MCR_SOAK_IDLE_RULES="$2"; shift 2 ;;
    --phase) export MCR_SOAK_PHASE_SECS="$2"; shift 2 ;;
    --sample) MCR_SOAK_SAMPLE_SECS="$2"; shift 2 ;;
    --fd-slack) export MCR_SOAK_FD_SLACK="$2"; shift 2 ;;
    --rss-slack-mb) export MCR_SOAK_RSS_SLACK_MB="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "soak.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$minutes" in
  ''|*[!0-9]*) echo "soak.sh: --minutes takes a whole number" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  echo "soak.sh: needs root (network namespaces, veth, AF_PACKET)" >&2
  exit 1
fi
[ -n "$csv" ] || csv="soak-$(date -u +%Y%m%dT%H%M%SZ).csv"
: >"$csv"
export MCR_SOAK_CSV="$(realpath "$csv")"
export MCR_SOAK_SECS=$((minutes * 60))

# The test finds mcrd, mcrctl and mcrgen next to its own binary, so both are
# built in the release profile; `cargo test -p mcr` alone would not build
# mcrd (another package).
cargo build --release --workspace --bins
echo "soak: ${minutes} min, samples to $MCR_SOAK_CSV"
cargo test --release -p mcr --test soak -- --nocapture --test-threads=1
