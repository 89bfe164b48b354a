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

# The real callers (containerd, podman) once more, with moat on the native platform
# (the run above used the default, sentry).
wrapper_dir=$(mktemp -d)
trap 'rm -rf "$wrapper_dir"' EXIT
printf '#!/bin/sh\nexec %s --platform native "$@"\n' "$PWD/target/debug/moat" > "$wrapper_dir/moat-native"
chmod +x "$wrapper_dir/moat-native"
MOAT_E2E_RUNTIME="$wrapper_dir/moat-native" MOAT_E2E_RUNTIME_ROOT=/run/moat \
    cargo nextest run -p moat-e2e --test callers --no-fail-fast
