#!/usr/bin/env bash
# Regenerates server/src/configs/kafka_keys.rs from Apache Kafka's jars (the versions
# compat-tests/kafka/pom.xml pins): every broker key's name, type, default, validator.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
CP="$(mktemp)"
trap 'rm -f "$CP"' EXIT
mvn -q -B --color=never -f "$HERE/../pom.xml" dependency:build-classpath -Dmdep.outputFile="$CP" > /dev/null
OUT="$ROOT/server/src/configs/kafka_keys.rs"
java -cp "$(cat "$CP")" "$HERE/BrokerKeys.java" > "$OUT"
rustfmt --edition 2021 "$OUT"
echo "wrote $OUT"
