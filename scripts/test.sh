#!/usr/bin/env bash
# Runs moat's whole test suite (as root): installs the test dependencies,
# checks format and lints, builds, then runs every test with nextest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
cargo nextest run --workspace --no-fail-fast "$@"
