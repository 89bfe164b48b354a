#!/usr/bin/env bash
# Installs what moat's build and tests need on a fresh Debian 12 machine (as root).
# Idempotent: packages already present are skipped quickly.
set -euo pipefail

# build: libseccomp for the seccomp compiler
BUILD_PKGS=(libseccomp-dev pkg-config gcc)
# tests: the reference runtimes, real callers, a static busybox for test images
TEST_PKGS=(runc runsc containerd podman busybox-static iproute2 procps diod jq libc6-dev debootstrap wrk)

want=("${BUILD_PKGS[@]}")
if [[ "${1:-}" == "--test" ]]; then
    want+=("${TEST_PKGS[@]}")
fi
missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [[ "${1:-}" == "--test" ]] && ! command -v cargo-nextest >/dev/null; then
    cargo install --locked cargo-nextest
fi
