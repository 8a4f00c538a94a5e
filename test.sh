#!/usr/bin/env bash
# Runs every Fjord test: formatting, lints, Rust unit and integration tests, then the
# protocol tests against a release build of Fjord.
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
