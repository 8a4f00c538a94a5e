#!/usr/bin/env bash
# Runs every Fjord test: formatting, lints, Rust unit and integration tests, then the
# compat suite with real Kafka clients against a release build of Fjord.
# Installs what it needs (Python venv, Maven jars) into ${FJORD_CACHE:-~/.cache/fjord}.
# Extra arguments go to the compat suite's pytest (e.g. -k produce).
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export FJORD_BIN="$CARGO_TARGET_DIR/release/fjord"

step() { printf '\n=== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
step "cargo build --release"
cargo build --release --workspace --quiet
step "cargo test"
cargo test --workspace --release
step "compat suite (real clients against Fjord)"
compat-tests/run.sh --broker fjord "$@"
