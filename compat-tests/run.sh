#!/usr/bin/env bash
# Compatibility suite: real Kafka clients against Fjord and/or Apache Kafka 4.1.
#
#   compat-tests/run.sh [--broker fjord|kafka|both] [pytest args...]
#
# Sets up (once, then reuses) under ${FJORD_CACHE:-$HOME/.cache/fjord}:
#   venv/                 Python venv from requirements.txt (rebuilt when that file changes)
#   kafka-4.1.0/libs/     Apache Kafka 4.1.0 jars from Maven Central (kafka/pom.xml)
#   java-classes/, go/, franz-go/   the Java and Go clients' builds (setup-clients.sh)
# and installs kcat from Debian when it is missing.
# It does not build Fjord: build it first (cargo build --release --workspace, which also builds
# lossyfs) or set FJORD_BIN (and FJORD_LOSSYFS).
# Tests marked needs_groups run against fjord too (it has a group coordinator); set
# FJORD_GROUPS=0 to deselect them for fjord.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${FJORD_CACHE:-$HOME/.cache/fjord}"

BROKER=fjord
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --broker) BROKER="${2:?--broker needs fjord|kafka|both}"; shift 2 ;;
    --broker=*) BROKER="${1#--broker=}"; shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
case "$BROKER" in fjord|kafka|both) ;; *) echo "run.sh: --broker must be fjord, kafka or both" >&2; exit 2 ;; esac

mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd)"
VENV="$CACHE/venv"
LIBS="$CACHE/kafka-4.1.0/libs"
log() { echo "[compat] $*" >&2; }

# One setup at a time per cache (two runs may share it); the lock goes with this process.
exec 9>"$CACHE/.setup.lock"
flock -w 1800 9 || { echo "run.sh: could not lock $CACHE/.setup.lock" >&2; exit 3; }

# --- Python venv, keyed by the hash of requirements.txt (and the interpreter version).
PY="${PYTHON:-python3}"
REQ_HASH="$( (cat "$HERE/requirements.txt"; "$PY" --version) | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" || "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$REQ_HASH" ]]; then
  log "creating venv in $VENV"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  timeout 900 "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
  echo "$REQ_HASH" > "$VENV/.requirements.sha256"
fi

# --- Apache Kafka 4.1.0 jars (needed for both brokers: Kafka itself, DumpLogSegments for Fjord).
POM_HASH="$(sha256sum "$HERE/kafka/pom.xml" | cut -d' ' -f1)"
if [[ "$(cat "$LIBS/.complete" 2>/dev/null)" != "$POM_HASH" ]]; then
  log "resolving Apache Kafka 4.1.0 jars into $LIBS"
  rm -rf "$LIBS.tmp"
  mkdir -p "$LIBS.tmp"
  if ! timeout 900 mvn -q -B -f "$HERE/kafka/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$LIBS.tmp" > "$CACHE/mvn.log" 2>&1; then
    cat "$CACHE/mvn.log" >&2
    echo "run.sh: resolving the Kafka jars failed (log above, also in $CACHE/mvn.log)" >&2
    exit 1
  fi
  test -f "$LIBS.tmp/kafka_2.13-4.1.0.jar"
  echo "$POM_HASH" > "$LIBS.tmp/.complete"
  rm -rf "$LIBS"
  mv "$LIBS.tmp" "$LIBS"
fi
export FJORD_KAFKA_LIBS="$LIBS"
# kcat, the Java and Go programs, franz-go's test binary (see setup-clients.sh).
source "$HERE/setup-clients.sh"
exec 9>&-

if [[ "$BROKER" != kafka ]]; then
  FJORD_BIN="${FJORD_BIN:-$(cd "$HERE/.." && pwd)/target/release/fjord}"
  export FJORD_BIN
  if [[ ! -x "$FJORD_BIN" ]]; then
    echo "run.sh: Fjord binary not found at $FJORD_BIN; build it first (cargo build --release) or set FJORD_BIN" >&2
    exit 4
  fi
  FJORD_BIN="$(cd "$(dirname "$FJORD_BIN")" && pwd)/$(basename "$FJORD_BIN")"
  export FJORD_GROUPS="${FJORD_GROUPS:-1}"
  if [[ "$FJORD_GROUPS" != 1 ]]; then
    log "tests marked needs_groups are deselected for fjord (FJORD_GROUPS=$FJORD_GROUPS)"
  fi
fi
# lossyfs (the power-cut filesystem of test_power_cut.py) is a workspace binary next to fjord.
FJORD_LOSSYFS="${FJORD_LOSSYFS:-$(dirname "${FJORD_BIN:-$(cd "$HERE/.." && pwd)/target/release/fjord}")/lossyfs}"
export FJORD_LOSSYFS

# pytest runs from compat-tests/ (its rootdir); make path arguments given relative to the
# caller's directory absolute first (e.g. compat-tests/test_crash.py::test_x).
PYTEST_ARGS=()
for a in "${ARGS[@]}"; do
  p="${a%%::*}"
  if [[ "$a" != -* && -e "$p" ]]; then
    a="$(cd "$(dirname "$p")" && pwd)/$(basename "$p")${a:${#p}}"
  fi
  PYTEST_ARGS+=("$a")
done
cd "$HERE"
log "running pytest against: $BROKER"
exec "$VENV/bin/python" -m pytest --broker "$BROKER" "${PYTEST_ARGS[@]}"
