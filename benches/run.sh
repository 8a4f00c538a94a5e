#!/usr/bin/env bash
# Fjord vs Apache Kafka 4.1 on this machine, in one command. See benches/README.md.
#   benches/run.sh --quick     # about 2 minutes
#   benches/run.sh             # the full run, about 10 minutes on 2 cores
# Options (benches/bench.py --help): --brokers fjord,kafka,kafka-flush1
#   --workloads W1,...,W6 --keep-work --no-build
set -euo pipefail
exec python3 "$(dirname "$0")/bench.py" "$@"
