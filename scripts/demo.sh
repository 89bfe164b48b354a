#!/usr/bin/env bash
# Builds moat and runs a command sandboxed on this host's own root filesystem,
# mounted read-only (like `runsc do`). Usage: scripts/demo.sh [command...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --bin moat
if (($# == 0)); then
    set -- sh -c 'echo hello from moat; id; cat /proc/self/uid_map; uname -r; dmesg | head -1; ps -e; touch /etc/moat-test 2>&1 || true'
fi
exec target/release/moat do -- "$@"
