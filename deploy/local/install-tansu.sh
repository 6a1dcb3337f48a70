#!/usr/bin/env bash
# Installs tansu 0.6.0, a Kafka-protocol broker used by tillsyn's local runs
# and integration tests, into a cache directory outside the repository.
# Idempotent: when the binary is already there and runs, it exits at once.
# Otherwise it installs the Debian build dependencies that are missing (a C
# toolchain and pkg-config; no cmake, clang or protoc is needed) and runs
# `cargo install tansu` (11 to 16 minutes on 2 cores).
# Usage: deploy/local/install-tansu.sh
# Env:   TILLSYN_TOOLS  cache root (default: $HOME/.cache/tillsyn/tools)
# Prints the path of the tansu binary as its last line on stdout; everything
# else goes to stderr.
set -euo pipefail

TANSU_VERSION=0.6.0
TANSU_FEATURES=dynostore,libsql
tools=${TILLSYN_TOOLS:-$HOME/.cache/tillsyn/tools}
root="$tools/tansu-$TANSU_VERSION"
bin="$root/bin/tansu"

log() { echo "install-tansu: $*" >&2; }

works() {
    [[ -x $bin ]] && "$bin" --version 2>/dev/null | grep -qx "tansu $TANSU_VERSION"
}

if works; then
    echo "$bin"
    exit 0
fi

# Debian packages the build needs: C compilers for the -sys crates (ring,
# aws-lc-sys, libsql-ffi, zstd-sys, lz4-sys) and pkg-config.
# shellcheck source=deploy/local/debian-packages.sh
source "$(dirname "$0")/debian-packages.sh"
if ! ensure_debian_packages gcc g++ make libc6-dev pkg-config ca-certificates; then
    command -v cc >/dev/null 2>&1 || { log "no C compiler (cc) found; install one first"; exit 1; }
fi

command -v cargo >/dev/null 2>&1 || { log "cargo not found: install the Rust toolchain (rustup) first"; exit 1; }

mkdir -p "$tools"
# One install at a time (two concurrent test runs on a fresh machine).
exec 9>"$tools/.tansu-$TANSU_VERSION.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
    if works; then
        echo "$bin"
        exit 0
    fi
fi

log "building tansu $TANSU_VERSION with features $TANSU_FEATURES into $root (11 to 16 min on 2 cores)"
started=$(date +%s)
cargo install tansu --version "$TANSU_VERSION" --locked --features "$TANSU_FEATURES" --root "$root" >&2
log "built in $(($(date +%s) - started)) s"

works || { log "$bin does not run after the install"; exit 1; }
echo "$bin"
