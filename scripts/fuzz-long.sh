#!/usr/bin/env bash
# Run fuzz targets one after another for far longer than CI's 20 s, at the
# lowest CPU priority, and print executions, coverage and corpus size per
# target. What libFuzzer finds goes to a scratch directory (removed at the
# end), not into fuzz/corpus, unless --keep DIR names a directory: then it
# grows DIR/<target>, and the next run with the same DIR starts from what
# this one found (long inputs make a target slower per execution, and
# coverage a fresh run must find again). A crash stops the run with its
# input in fuzz/artifacts/<target>/ (replay and fix it as fuzz/README.md
# says).
#
#   scripts/fuzz-long.sh [--minutes N] [--keep DIR] [TARGET ...] [-- LIBFUZZER_FLAG ...]
#       (default: every target, 30 min each, scratch corpora)
#
# Two defaults make a long run cheaper per execution (fuzz/README.md has
# the figures): ASan keeps checking every access, but without fake stacks
# for use-after-return (no reference outlives its frame in the safe Rust
# under test) and without an allocation stack per malloc (replay a crash
# with plain ASAN_OPTIONS for the full report); and the step targets
# (`igmp`, `pim_instance`) stop at 1,024-byte inputs (dozens of steps),
# where libFuzzer's default lets them grow to 4,096 bytes, and
# `pim_instance` pays for the state it accumulates: 4.6 ms per 1,024-byte
# input, 22 ms per 4,096-byte one. Flags after `--` go to libFuzzer after
# these, so `-- -max_len=4096` undoes the cap; an ASAN_OPTIONS in the
# environment replaces the other.
#
# Builds into target/fuzz, so the workspace keeps one target directory.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=30
keep=""
targets=()
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --keep) keep="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
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
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_stack_use_after_return=0:malloc_context_size=0}"
run=(nice -n 19 cargo +nightly fuzz)
"${run[@]}" build -O --target-dir target/fuzz
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)

for t in "${targets[@]}"; do
  if [ -n "$keep" ]; then
    scratch="$keep/$t"
    mkdir -p "$scratch"
    log="$(mktemp)"
  else
    scratch="$(mktemp -d)"
    log="$scratch.log"
  fi
  case "$t" in
    igmp|pim_instance) flags=(-max_len=1024) ;;
    *) flags=() ;;
  esac
  if "${run[@]}" run -O --target-dir target/fuzz "$t" "$scratch" "fuzz/corpus/$t" -- \
      -max_total_time=$((minutes * 60)) -print_final_stats=1 "${flags[@]}" ${extra[@]+"${extra[@]}"} \
      >"$log" 2>&1; then
    execs=$(grep -m1 '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    cov=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]*' | tail -1 | awk '{print $2}')
    ft=$(grep -E '^#[0-9]+' "$log" | grep -o 'ft: [0-9]*' | tail -1 | awk '{print $2}')
    corp=$(grep -E '^#[0-9]+' "$log" | grep -o 'corp: [0-9]*/[0-9a-zA-Z]*' | tail -1 | awk '{print $2}')
    rate=$(grep -m1 '^stat::average_exec_per_sec' "$log" | awk '{print $2}')
    echo "fuzz $t: ${minutes} min, ${execs} executions (${rate}/s), cov ${cov} ft ${ft}, corpus ${corp}, no crash"
  else
    tail -n 60 "$log" >&2
    echo "fuzz $t: crashed; the input is in fuzz/artifacts/$t/" >&2
    [ -n "$keep" ] || rm -rf "$scratch"
    rm -f "$log"
    exit 1
  fi
  [ -n "$keep" ] || rm -rf "$scratch"
  rm -f "$log"
done
