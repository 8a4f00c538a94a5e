#!/usr/bin/env bash
# Where Fjord's time goes: a CPU flamegraph of the broker under one fjord-bench load.
#
#   benches/profile.sh [produce|fetch|tail] [--secs N] [--no-build]
#
# produce: 8 partitions, 1 KiB records, 16-record batches, 8 requests in flight (W1)
# fetch:   512 MiB written to 8 partitions, then read from the start, repeatedly (W3)
# tail:    the same, re-reading the last 4096 records of each partition (W3 "tail")
#
# Starts a fresh Fjord on a free loopback port, samples it with `perf record -e cpu-clock`
# (software clock: this machine's VMs have no hardware counters) with DWARF call stacks,
# and writes benches/results/profile-<workload>-<commit>.svg (inferno's flamegraph,
# installed once under ${FJORD_CACHE:-~/.cache/fjord}/tools) and a .txt with the top
# functions by self time. Needs perf (Debian: linux-perf; installed if missing).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
CACHE="${FJORD_CACHE:-$HOME/.cache/fjord}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
WORKLOAD=produce
SECS=6
BUILD=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    produce|fetch|tail) WORKLOAD="$1"; shift ;;
    --secs) SECS="${2:?--secs needs a number}"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    *) echo "usage: $0 [produce|fetch|tail] [--secs N] [--no-build]" >&2; exit 2 ;;
  esac
done
log() { echo "[profile] $*" >&2; }

if ! command -v perf >/dev/null; then
  log "installing perf (linux-perf)"
  sudo_cmd=""; [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get install -y -q linux-perf >/dev/null
fi
TOOLS="$CACHE/tools"
if [[ ! -x "$TOOLS/bin/inferno-flamegraph" ]]; then
  log "installing inferno (flamegraphs) into $TOOLS"
  cargo install -q inferno --locked --root "$TOOLS"
fi
if [[ $BUILD == 1 ]]; then
  log "building fjord and fjord-bench (release)"
  (cd "$ROOT" && cargo build --release -q -p fjord -p fjord-benches)
fi
FJORD="$TARGET/release/fjord"
BENCH="$TARGET/release/fjord-bench"

WORK="$(mktemp -d /tmp/fjord-profile.XXXXXX)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
ADDR="127.0.0.1:$PORT"
"$FJORD" --override "log.dirs=$WORK/data" --override "listeners=PLAINTEXT://$ADDR" \
  --override "advertised.listeners=PLAINTEXT://$ADDR" > "$WORK/fjord.log" 2>&1 &
PID=$!
LOAD=""
cleanup() {
  [[ -n "$LOAD" ]] && kill "$LOAD" 2>/dev/null || true
  kill -9 "$PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
"$BENCH" probe --bootstrap "$ADDR" --timeout-secs 30 >/dev/null

COMMON=(--bootstrap "$ADDR" --record-bytes 1024 --batch-records 16)
RUN_SECS=$((SECS + 6))
case "$WORKLOAD" in
  produce)
    "$BENCH" produce "${COMMON[@]}" --topic p --partitions 8 --inflight 8 \
      --duration-secs "$RUN_SECS" > "$WORK/load.out" 2>&1 & ;;
  fetch|tail)
    log "writing 512 MiB to 8 partitions"
    "$BENCH" produce "${COMMON[@]}" --topic f --partitions 8 --total-mib 512 \
      --duration-secs 300 > /dev/null
    extra=()
    [[ $WORKLOAD == tail ]] && extra=(--tail-records 4096)
    "$BENCH" fetch --bootstrap "$ADDR" --topic f --partitions 8 "${extra[@]}" \
      --duration-secs "$RUN_SECS" > "$WORK/load.out" 2>&1 & ;;
esac
LOAD=$!
sleep 3
log "sampling the broker for ${SECS}s ($WORKLOAD)"
perf record -q -e cpu-clock -F 499 --call-graph dwarf,32768 -p "$PID" -o "$WORK/perf.data" \
  -- sleep "$SECS" 2>/dev/null
wait "$LOAD" || true
LOAD=""
RESULT="$(grep RESULT "$WORK/load.out" || true)"
log "load: ${RESULT:-no result line from fjord-bench}"

COMMIT="$(git -C "$ROOT" describe --always --dirty --abbrev=7)"
OUT="$ROOT/benches/results/profile-$WORKLOAD-$COMMIT"
perf script -i "$WORK/perf.data" 2>/dev/null | "$TOOLS/bin/inferno-collapse-perf" > "$WORK/folded"
"$TOOLS/bin/inferno-flamegraph" --title "Fjord $COMMIT, $WORKLOAD: ${RESULT#RESULT }" \
  < "$WORK/folded" > "$OUT.svg"
{
  echo "# Fjord $COMMIT, $WORKLOAD, ${SECS}s of cpu-clock samples at 499 Hz"
  echo "# load: ${RESULT:-none}"
  echo "# top functions by self time:"
  perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null \
    | grep -v '^#' | grep '%' | head -40
} > "$OUT.txt"
log "wrote $OUT.svg and $OUT.txt"
