#!/usr/bin/env bash
# Starts or stops a local 3-node Fjord cluster: node i listens on 127.0.0.i, clients
# on port 9092, Raft on 19093; data in $FJORD_CLUSTER_DIR/node<i> (default
# ./cluster-data), logs in the same folder. Every node is a broker and a voter
# (KRaft's combined mode).
#
#   scripts/cluster.sh start     # build (release) if needed and start nodes 1-3
#   scripts/cluster.sh stop      # SIGTERM every node and wait for it to exit
#   scripts/cluster.sh status    # which nodes are running
set -euo pipefail

cd "$(dirname "$0")/.."
DIR=${FJORD_CLUSTER_DIR:-./cluster-data}
BIN=${FJORD_BIN:-target/release/fjord}
NODES=${FJORD_CLUSTER_NODES:-3}
VOTERS=$(for i in $(seq 1 "$NODES"); do printf '%s@127.0.0.%s:19093,' "$i" "$i"; done)
VOTERS=${VOTERS%,}

start() {
    [ -x "$BIN" ] || cargo build --release -p fjord
    mkdir -p "$DIR"
    for i in $(seq 1 "$NODES"); do
        if [ -f "$DIR/node$i.pid" ] && kill -0 "$(cat "$DIR/node$i.pid")" 2>/dev/null; then
            echo "node $i already running (pid $(cat "$DIR/node$i.pid"))"
            continue
        fi
        "$BIN" \
            --override node.id="$i" \
            --override process.roles=broker,controller \
            --override listeners="PLAINTEXT://127.0.0.$i:9092,CONTROLLER://127.0.0.$i:19093" \
            --override controller.listener.names=CONTROLLER \
            --override listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT \
            --override controller.quorum.voters="$VOTERS" \
            --override log.dirs="$DIR/node$i" \
            --override fjord.cores="${FJORD_CORES:-1}" \
            >"$DIR/node$i.log" 2>&1 &
        echo $! >"$DIR/node$i.pid"
        echo "node $i: 127.0.0.$i:9092 (pid $!, log $DIR/node$i.log)"
    done
    for i in $(seq 1 "$NODES"); do
        for _ in $(seq 1 100); do
            (exec 3<>"/dev/tcp/127.0.0.$i/9092") 2>/dev/null && break
            sleep 0.1
        done
    done
    echo "bootstrap servers: $(for i in $(seq 1 "$NODES"); do printf '127.0.0.%s:9092,' "$i"; done | sed 's/,$//')"
}

stop() {
    for i in $(seq 1 "$NODES"); do
        f="$DIR/node$i.pid"
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            echo "node $i stopped"
        fi
        rm -f "$f"
    done
}

status() {
    for i in $(seq 1 "$NODES"); do
        f="$DIR/node$i.pid"
        if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then
            echo "node $i: running (pid $(cat "$f"))"
        else
            echo "node $i: stopped"
        fi
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
