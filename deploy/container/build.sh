#!/usr/bin/env bash
# Builds the tillsyn image (deploy/container/Containerfile) with podman on a
# machine that reaches no container registry, then smoke-tests it.
#
# The Containerfile's bases come from a registry (rust:…-bookworm,
# debian:bookworm-slim). Here they are made locally, once:
#   localhost/tillsyn-debian:bookworm  a minimal Debian bookworm (debootstrap
#       --variant=minbase, as debian:bookworm-slim is made), imported into
#       podman; the runtime base. Cached: $cache/debian-bookworm.tar.
#   localhost/tillsyn-rust:<version>-bookworm  (--compile only) that base with
#       this machine's Rust toolchain (rustc, cargo) in /usr/local/rust; the
#       builder base. cargo fetches crates from crates.io during the build.
# By default the image takes the binary built on this machine
# (target/release/tillsyn, built when missing: Debian bookworm, the
# runtime's glibc) through the Containerfile's BINARY_FROM=prebuilt;
# --compile runs the builder stage instead (a full release build in the
# container: about ten minutes on two cores).
#
# Usage: deploy/container/build.sh [--compile] [--tag IMAGE] [--smoke-broker HOST:PORT]
#   --tag IMAGE              image name (default tillsyn:<version of Cargo.toml>)
#   --smoke-broker HOST:PORT also run `tillsyn topics create` and `tillsyn run`
#                            in the container (host network) against that
#                            Kafka broker, wait for /healthz and /readyz, then
#                            stop it with SIGTERM and expect exit 0
# Env: TILLSYN_CONTAINER_CACHE  cache directory (default ~/.cache/tillsyn/container)
#      TILLSYN_DEBIAN_MIRROR    Debian mirror (default http://deb.debian.org/debian)
#      TILLSYN_SMOKE_HTTP_PORT  port of the smoke run's HTTP endpoint (default 29465)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${TILLSYN_CONTAINER_CACHE:-$HOME/.cache/tillsyn/container}
mirror=${TILLSYN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
http_port=${TILLSYN_SMOKE_HTTP_PORT:-29465}
base_image=localhost/tillsyn-debian:bookworm
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n 1)
tag=tillsyn:$version
compile=0
broker=
staging=
container=
podman_global=()
limits=()
cleanup() {
    [[ -z $container ]] || podman "${podman_global[@]}" rm -f "$container" >/dev/null 2>&1 || true
    [[ -z $staging ]] || rm -rf "$staging"
}
trap cleanup EXIT
log() { echo "build: $*" >&2; }
usage() {
    echo "usage: $0 [--compile] [--tag IMAGE] [--smoke-broker HOST:PORT]" >&2
    exit 2
}
while (($#)); do
    case $1 in
        --compile) compile=1 ;;
        --tag) tag=${2:?}; shift ;;
        --smoke-broker) broker=${2:?}; shift ;;
        *) usage ;;
    esac
    shift
done

# shellcheck source=../local/debian-packages.sh
. "$repo/deploy/local/debian-packages.sh"
ensure_debian_packages podman debootstrap || command -v podman >/dev/null || {
    log "podman is needed"
    exit 1
}

# podman's defaults, or what this sandbox needs: here crun refuses hybrid
# cgroups ("cgroups in hybrid mode not supported") and no runtime may raise
# the container's RLIMIT_NOFILE/NPROC to podman's defaults ("setrlimit:
# Operation not permitted"); runc with lower limits runs.
runs() { podman "${podman_global[@]}" run --rm "${limits[@]}" "$1" true >/dev/null 2>&1; }

# 1. The Debian base, debootstrapped once.
if ! podman image exists "$base_image"; then
    tarball="$cache/debian-bookworm.tar"
    if [[ ! -s $tarball ]]; then
        rootfs="$cache/rootfs-bookworm"
        rm -rf "$rootfs"
        mkdir -p "$cache"
        log "debootstrap bookworm (minbase) from $mirror into $rootfs"
        debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
            tail -n 20 "$cache/debootstrap.log" >&2
            exit 1
        }
        # As debian:bookworm-slim: no package cache, lists, docs or locales.
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
            "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
        tar -C "$rootfs" --numeric-owner -cf "$tarball.part" .
        mv "$tarball.part" "$tarball"
        rm -rf "$rootfs"
    fi
    log "importing $tarball as $base_image"
    podman import --change 'CMD ["/bin/bash"]' "$tarball" "$base_image" >/dev/null
fi

if ! runs "$base_image"; then
    ensure_debian_packages runc || true
    podman_global=(--runtime runc)
    limits=(--ulimit nofile=16384:16384 --ulimit nproc=8192:8192)
    runs "$base_image" || {
        podman run --rm "$base_image" true || true
        log "podman cannot run a container here, neither by default nor with: ${podman_global[*]} ${limits[*]}"
        exit 1
    }
    log "podman runs containers here with: ${podman_global[*]} ${limits[*]}"
fi
pm() { podman "${podman_global[@]}" "$@"; }

# 2. The binary, or a builder base with this machine's Rust toolchain.
args=(--build-arg "RUNTIME_IMAGE=$base_image")
if ((compile)); then
    rustc_version=$(rustc --version | cut -d' ' -f2)
    toolchain=$(rustc --print sysroot)
    rust_image=localhost/tillsyn-rust:$rustc_version-bookworm
    host_ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
    if ! podman image exists "$rust_image"; then
        log "making $rust_image from $toolchain"
        # cargo in it trusts this machine's CA bundle as well as Debian's:
        # where crates.io is reached through a TLS-intercepting proxy (as
        # here), its CA is only in the host's bundle.
        pm build --network host "${limits[@]}" -v "$host_ca:/run/host-ca.crt:ro" -t "$rust_image" -f - "$toolchain" <<EOF
FROM $base_image
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates gcc libc6-dev && rm -rf /var/lib/apt/lists/* \
    && cp /run/host-ca.crt /etc/ssl/host-ca-certificates.crt
COPY bin/ /usr/local/rust/bin/
COPY lib/ /usr/local/rust/lib/
ENV CARGO_HOME=/usr/local/cargo CARGO_HTTP_CAINFO=/etc/ssl/host-ca-certificates.crt \
    PATH=/usr/local/rust/bin:/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN cargo --version && rustc --version
EOF
    fi
    # BINARY_FROM given although it is the default: buildah 1.28 (Debian 12)
    # finds the stages a target needs with the --build-arg values only, not
    # the ARG defaults, skips the builder and then looks for an image
    # "builder" ("short-name did not resolve").
    args+=(--build-arg "RUST_IMAGE=$rust_image" --build-arg BINARY_FROM=builder)
    context=$repo
else
    bin="$repo/target/release/tillsyn"
    if [[ ! -x $bin ]]; then
        log "building $bin"
        (cd "$repo" && cargo build --release --locked -p tillsyn --bin tillsyn)
    fi
    # A small context of its own: the binary and the image's configuration.
    staging=$(mktemp -d)
    objcopy --strip-debug "$bin" "$staging/tillsyn"
    mkdir -p "$staging/deploy/container"
    cp "$here/tillsyn.toml" "$staging/deploy/container/"
    context=$staging
    args+=(--build-arg BINARY_FROM=prebuilt)
fi

# 3. The image.
log "building $tag"
started=$(date +%s)
pm build --network host "${limits[@]}" -f "$here/Containerfile" "${args[@]}" -t "$tag" "$context"
log "built $tag in $(($(date +%s) - started)) s: $(podman image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1 / 1e6}')"

# 4. Smoke test, confined as in Kubernetes (deploy/k8s/base/deployment.yaml).
confined=("${limits[@]}" --read-only --user 65532:65532 --cap-drop ALL --security-opt no-new-privileges)
pm run --rm "${confined[@]}" "$tag" --version
pm run --rm "${confined[@]}" "$tag" check-config >/dev/null
log "ok: --version and check-config in the image as uid 65532, read-only"
[[ -n $broker ]] || exit 0

name=tillsyn-smoke-$$
run=smoke-$(date +%s)
env=(-e "TILLSYN_KAFKA__BROKERS=$broker" -e "TILLSYN_KAFKA__GROUP_ID=$run" -e "TILLSYN_TOPICS__INTERNAL_PREFIX=$run."
    -e "TILLSYN_CORE__PSEUDONYM_SECRET=smoke-$run-$RANDOM$RANDOM" -e "TILLSYN_HTTP__LISTEN=127.0.0.1:$http_port"
    -e "TILLSYN_KAFKA__STATISTICS_INTERVAL=1s")
for t in time-reports invoices alerts dead-letter late-events state; do
    env+=(-e "TILLSYN_TOPICS__$(tr 'a-z-' 'A-Z_' <<<"$t")=$run.$t.v1")
done
pm run --rm "${confined[@]}" --network host "${env[@]}" "$tag" topics create
container=$name
pm run -d --name "$name" "${confined[@]}" --network host "${env[@]}" "$tag" >/dev/null
for endpoint in healthz readyz; do
    for i in $(seq 1 60); do
        if body=$(curl -fsS "http://127.0.0.1:$http_port/$endpoint" 2>/dev/null); then
            log "/$endpoint: $body (after ${i}s)"
            break
        fi
        ((i < 60)) || { pm logs "$name" | tail -n 20 >&2; log "/$endpoint never answered 200"; exit 1; }
        sleep 1
    done
done
started=$(date +%s%N)
pm stop --time 60 "$name" >/dev/null
rc=$(pm inspect --format '{{.State.ExitCode}}' "$name")
log "SIGTERM: exit $rc after $((($(date +%s%N) - started) / 1000000)) ms"
pm logs "$name" 2>&1 | tail -n 2 | cut -c1-300 >&2
[[ $rc == 0 ]] || exit 1
log "ok: tillsyn run in the image against $broker"
