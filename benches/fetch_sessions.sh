#!/usr/bin/env bash
# Fetch request bytes of a consumer of many partitions with and without fetch sessions
# (KIP-227), Fjord and Apache Kafka 4.1: see benches/fetch_sessions.py. Arguments go to it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${FJORD_CACHE:-$HOME/.cache/fjord}"
export FJORD_CACHE="$CACHE"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
FJORD="${FJORD_BIN:-$TARGET/release/fjord}"
if [[ -z "${FJORD_BIN:-}" ]]; then
  (cd "$ROOT" && cargo build --release -p fjord --quiet)
fi
# The compat suite's setup (venv with kafka-python, Kafka's jars); collecting runs no test.
FJORD_BIN="$FJORD" "$ROOT/compat-tests/run.sh" --broker both --collect-only -q > /dev/null
export FJORD_KAFKA_LIBS="$CACHE/kafka-4.1.0/libs"
exec timeout 1800 "$CACHE/venv/bin/python" "$ROOT/benches/fetch_sessions.py" --fjord "$FJORD" "$@"
