#!/usr/bin/env bash
# Run fuzz targets one after another for far longer than CI's 20 s, at the
# lowest CPU priority, and print executions, coverage and corpus size per
# target. What libFuzzer finds goes to a scratch directory (removed at the
# end), not into fuzz/corpus; a crash stops the run with its input in
# fuzz/artifacts/<target>/ (replay and fix it as fuzz/README.md says).
#
#   scripts/fuzz-long.sh [--minutes N] [TARGET ...]     (default: every target, 30 min each)
#
# Builds into target/fuzz, so the workspace keeps one target directory.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=30
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
case "$minutes" in
  ''|*[!0-9]*) echo "fuzz-long.sh: --minutes takes a whole number" >&2; exit 2 ;;
esac
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz-long.sh: needs the nightly toolchain and cargo-fuzz" \
    "(rustup toolchain install nightly; cargo install cargo-fuzz)" >&2
  exit 1
fi
run=(nice -n 19 cargo +nightly fuzz)
"${run[@]}" build -O --target-dir target/fuzz
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)

for t in "${targets[@]}"; do
  scratch="$(mktemp -d)"
  log="$scratch.log"
  if "${run[@]}" run -O --target-dir target/fuzz "$t" "$scratch" "fuzz/corpus/$t" -- \
      -max_total_time=$((minutes * 60)) -print_final_stats=1 >"$log" 2>&1; then
    execs=$(grep -m1 '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    cov=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]*' | tail -1 | awk '{print $2}')
    ft=$(grep -E '^#[0-9]+' "$log" | grep -o 'ft: [0-9]*' | tail -1 | awk '{print $2}')
    corp=$(grep -E '^#[0-9]+' "$log" | grep -o 'corp: [0-9]*/[0-9a-zA-Z]*' | tail -1 | awk '{print $2}')
    echo "fuzz $t: ${minutes} min, ${execs} executions, cov ${cov} ft ${ft}, corpus ${corp}, no crash"
  else
    tail -n 60 "$log" >&2
    echo "fuzz $t: crashed; the input is in fuzz/artifacts/$t/" >&2
    rm -rf "$scratch"
    exit 1
  fi
  rm -rf "$scratch" "$log"
done
