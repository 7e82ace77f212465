# Sourced by the scripts here: a sender -> relay -> receiver chain of
# namespaces ($S, $R, $D) over veth (s0-r0, r1-d0) on 10.$NET.1.0/24 and
# 10.$NET.2.0/24, a scratch directory $DIR, and a cleanup on exit that
# stops mcrd ($MCRD) and removes all of it.
# Usage: TAG=xy NET=31 . "$(dirname "$0")/chain.sh"
BIN=${BIN:-target/release}
S=$TAG$$-s R=$TAG$$-r D=$TAG$$-d DIR=$(mktemp -d)
cleanup() {
  set +e # undo everything even when part of it is already gone
  [ -n "${MCRD:-}" ] && kill "$MCRD" 2>/dev/null
  wait 2>/dev/null
  for n in $S $R $D; do ip netns del "$n" 2>/dev/null; done
  rm -rf "$DIR"
}
trap cleanup EXIT
for n in $S $R $D; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip -n "$S" link add s0 type veth peer name r0 netns "$R"
ip -n "$R" link add r1 type veth peer name d0 netns "$D"
for x in "$S s0 10.$NET.1.1/24" "$R r0 10.$NET.1.2/24" "$R r1 10.$NET.2.1/24" "$D d0 10.$NET.2.2/24"; do
  set -- $x; ip -n "$1" addr add "$3" dev "$2"; ip -n "$1" link set "$2" up
done

# start_mcrd CONFIG_TEXT: mcrd in $R with that config, control socket $DIR/s.sock.
start_mcrd() {
  echo "$1" > "$DIR/cfg.json5"
  ip netns exec "$R" "$BIN/mcrd" supervisor --config "$DIR/cfg.json5" --socket "$DIR/s.sock" 2>"$DIR/mcrd.log" &
  MCRD=$!
}

# wait_worker: the pid of mcrd's first running worker, in $W (exits if none
# starts within 5 s, with mcrd's log).
wait_worker() {
  W=""
  for _ in $(seq 50); do
    W=$(ip netns exec "$R" "$BIN/mcrctl" --socket "$DIR/s.sock" --json workers 2>/dev/null |
        python3 -c 'import json,sys; print(next((str(w["pid"]) for w in json.load(sys.stdin) if w.get("pid")), ""))' 2>/dev/null || true)
    [ -n "$W" ] && return 0
    sleep 0.1
  done
  echo "no worker started; mcrd's log:" >&2
  cat "$DIR/mcrd.log" >&2
  exit 1
}
