#!/usr/bin/env bash
# Fjord vs Apache Kafka 4.1 on this machine, with the fjord-bench load generator.
#
# Usage: benches/run.sh [--quick] [--kafka] [--fjord] [--bootstrap HOST:PORT]
#                       [--duration-secs N]
#   --kafka       start Apache Kafka 4.1 (KRaft, one combined node) from Maven jars
#   --fjord       start target/release/fjord
#   --bootstrap   also (or only) measure an already running broker
#   --quick       3-second phases (1 s warm-up) instead of 10 (3 s warm-up)
#   With no target flag: --kafka --fjord.
#
# Each broker first takes one unmeasured produce phase, and each workload starts
# with an unmeasured warm-up (a JVM broker needs it: Kafka's first seconds run
# ~2x slower). Brokers run one at a time (never
# competing for the 2 cores), each with a fresh data directory under a temporary
# work dir, and are stopped on exit. Workloads (1 KiB
# records, 16-record batches, 1 connection, 8 produce requests in flight):
#   p1-acks1   produce 1 partition, acks=1, then fetch it
#   p8-acks1   produce 8 partitions, acks=1, then fetch them
#   p8-acksall produce 8 partitions, acks=-1 (produce only)
# Apache Kafka runs with its defaults: no fsync per write (flush.messages unset),
# replication factor 1. Fjord fsyncs acks=all writes (see DESIGN.md): compare
# p8-acksall with that in mind.
#
# Environment: FJORD_CACHE (default ~/.cache/fjord) holds the Kafka jars;
# FJORD_KAFKA_LIBS overrides the jar folder; KEEP_WORK=1 keeps logs and data.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${FJORD_CACHE:-$HOME/.cache/fjord}
KAFKA_LIBS=${FJORD_KAFKA_LIBS:-$CACHE/kafka-4.1.0/libs}
KAFKA_POM=$ROOT/compat-tests/kafka/pom.xml
KAFKA_LOG4J=$ROOT/compat-tests/kafka/log4j2.properties
BENCH=$ROOT/target/release/fjord-bench
FJORD=$ROOT/target/release/fjord

duration=10
warmup=3
want_kafka=0
want_fjord=0
bootstrap=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) duration=3; warmup=1 ;;
    --kafka) want_kafka=1 ;;
    --fjord) want_fjord=1 ;;
    --bootstrap) bootstrap=${2:?--bootstrap needs HOST:PORT}; shift ;;
    --duration-secs) duration=${2:?--duration-secs needs N}; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
if [[ $want_kafka == 0 && $want_fjord == 0 && -z $bootstrap ]]; then
  want_kafka=1
  want_fjord=1
fi

WORK=$(mktemp -d /tmp/fjord-bench.XXXXXX)
PIDS=()

# Stops every broker this script started (TERM, then KILL after 15 s).
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  if [[ ${KEEP_WORK:-0} == 1 ]]; then
    echo "work dir kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Prints a TCP port nobody listens on at the moment.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits (bounded) until 127.0.0.1:$1 accepts connections while pid $2 lives.
wait_port() {
  local port=$1 pid=$2 secs=$3 i
  for i in $(seq $((secs * 10))); do
    kill -0 "$pid" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

ensure_kafka_libs() {
  [[ -f $KAFKA_LIBS/kafka_2.13-4.1.0.jar ]] && return 0
  echo "resolving Apache Kafka 4.1.0 jars into $KAFKA_LIBS" >&2
  mkdir -p "$KAFKA_LIBS"
  timeout 900 mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS"
}

# Starts Apache Kafka; sets BROKER_ADDR and BROKER_PID.
start_kafka() {
  ensure_kafka_libs
  local dir=$WORK/kafka port cport cluster_id
  mkdir -p "$dir/data" "$dir/logs"
  port=$(free_port)
  cport=$(free_port)
  cat > "$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  local java=(java "-Dlog4j2.configurationFile=$KAFKA_LOG4J" "-Dkafka.logs.dir=$dir/logs")
  cluster_id=$(timeout 60 "${java[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid | tail -1)
  timeout 60 "${java[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format --standalone \
    -t "$cluster_id" -c "$dir/server.properties" > "$dir/format.log" 2>&1
  # JVM options as kafka-server-start.sh sets them.
  "${java[@]}" -Xms1g -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true -cp "$KAFKA_LIBS/*" kafka.Kafka "$dir/server.properties" \
    > "$dir/logs/stdout.log" 2>&1 &
  BROKER_PID=$!
  PIDS+=("$BROKER_PID")
  BROKER_ADDR=127.0.0.1:$port
  local i
  for i in $(seq 900); do
    grep -q "Kafka Server started" "$dir/logs/server.log" 2>/dev/null && return 0
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "Apache Kafka did not start; see $dir/logs" >&2
  tail -20 "$dir/logs/server.log" "$dir/logs/stdout.log" >&2 || true
  return 1
}

# Starts Fjord; sets BROKER_ADDR and BROKER_PID.
start_fjord() {
  local dir=$WORK/fjord port
  mkdir -p "$dir/data"
  port=$(free_port)
  "$FJORD" --override "listeners=PLAINTEXT://127.0.0.1:$port" \
    --override "advertised.listeners=PLAINTEXT://127.0.0.1:$port" \
    --override "log.dirs=$dir/data" > "$dir/fjord.log" 2>&1 &
  BROKER_PID=$!
  PIDS+=("$BROKER_PID")
  BROKER_ADDR=127.0.0.1:$port
  if ! wait_port "$port" "$BROKER_PID" 30; then
    echo "Fjord did not start; see $dir/fjord.log" >&2
    tail -20 "$dir/fjord.log" >&2 || true
    return 1
  fi
}

# Results: RES[target.workload.phase.key] = value
declare -A RES
TARGETS=()

# Runs the workloads against $2 and records them under target name $1.
bench_target() {
  local name=$1 addr=$2 w out rc
  local -A args=(
    [p1-acks1]="all --partitions 1 --acks 1"
    [p8-acks1]="all --partitions 8 --acks 1"
    [p8-acksall]="produce --partitions 8 --acks -1"
  )
  TARGETS+=("$name")
  echo "== $name warm-up: ${duration}s unmeasured produce to 8 partitions" >&2
  timeout $((duration + 120)) "$BENCH" produce --bootstrap "$addr" --topic "bench-warmup-$$" \
    --partitions 8 --duration-secs "$duration" > "$WORK/$name-warmup.txt" 2>&1 \
    || echo "   warm-up failed; see $WORK/$name-warmup.txt" >&2
  for w in p1-acks1 p8-acks1 p8-acksall; do
    out=$WORK/$name-$w.txt
    echo "== $name $w (${duration}s phases) against $addr" >&2
    rc=0
    # shellcheck disable=SC2086
    timeout $((duration * 2 + warmup + 120)) "$BENCH" ${args[$w]} --bootstrap "$addr" \
      --topic "bench-$w-$$" --record-bytes 1024 --batch-records 16 --inflight 8 \
      --connections 1 --duration-secs "$duration" --warmup-secs "$warmup" > "$out" 2> "$out.err" || rc=$?
    if [[ $rc != 0 ]]; then
      echo "   failed (exit $rc):" >&2
      tail -5 "$out.err" "$out" >&2 || true
      continue
    fi
    local phase kv
    while read -r _ phase kv; do
      for kv in $kv; do RES[$name.$w.$phase.${kv%%=*}]=${kv#*=}; done
    done < <(grep '^RESULT ' "$out")
    grep -h '^\(produce\|fetch\)' "$out" | sed 's/^/   /' >&2
  done
}

echo "building (release)..." >&2
if [[ $want_fjord == 1 ]]; then
  if ! (cd "$ROOT" && cargo build --release -q -p fjord -p fjord-benches); then
    echo "Fjord does not build: measuring without it" >&2
    want_fjord=0
    (cd "$ROOT" && cargo build --release -q -p fjord-benches)
  fi
else
  (cd "$ROOT" && cargo build --release -q -p fjord-benches)
fi
if [[ $want_fjord == 1 && ! -x $FJORD ]]; then
  echo "no $FJORD: measuring without Fjord" >&2
  want_fjord=0
fi

if [[ -n $bootstrap ]]; then
  bench_target given "$bootstrap"
fi
if [[ $want_kafka == 1 ]]; then
  echo "starting Apache Kafka 4.1.0..." >&2
  start_kafka
  bench_target kafka "$BROKER_ADDR"
  stop_pid "$BROKER_PID"
fi
if [[ $want_fjord == 1 ]]; then
  echo "starting Fjord..." >&2
  if start_fjord; then
    bench_target fjord "$BROKER_ADDR"
  fi
  stop_pid "$BROKER_PID"
fi

# Side-by-side table; a ratio column when both Kafka and Fjord were measured.
ratio=0
if [[ -n ${RES[*]+x} ]] && printf '%s\n' "${TARGETS[@]}" | grep -qx kafka \
  && printf '%s\n' "${TARGETS[@]}" | grep -qx fjord; then
  ratio=1
fi
echo
echo "1 KiB records, 16-record batches, 1 connection, 8 in flight, ${duration}s per phase"
printf '%-12s %-22s' workload metric
for t in "${TARGETS[@]}"; do printf ' %12s' "$t"; done
[[ $ratio == 1 ]] && printf ' %12s' "fjord/kafka"
echo
for w in p1-acks1 p8-acks1 p8-acksall; do
  for m in produce.records_per_sec produce.mib_per_sec produce.p50_us produce.p99_us \
           produce.p999_us produce.errors fetch.records_per_sec fetch.mib_per_sec fetch.errors; do
    [[ $w == p8-acksall && $m == fetch.* ]] && continue
    printf '%-12s %-22s' "$w" "$m"
    for t in "${TARGETS[@]}"; do printf ' %12s' "${RES[$t.$w.$m]:--}"; done
    if [[ $ratio == 1 ]]; then
      k=${RES[kafka.$w.$m]:-} f=${RES[fjord.$w.$m]:-}
      if [[ -n $k && -n $f && $m != *errors ]]; then
        printf ' %12s' "$(awk -v f="$f" -v k="$k" 'BEGIN { if (k > 0) printf "%.2f", f / k; else print "-" }')"
      else
        printf ' %12s' -
      fi
    fi
    echo
  done
done
