#!/usr/bin/env bash
# Creates the Python venv with confluent-kafka (PyPI; its wheel bundles
# librdkafka) that tillsyn's local scripts and integration tests use as an
# independent Kafka client: readiness checks, topic creation, producing test
# events and reading alerts back. Idempotent: exits at once when the venv
# already imports the pinned version.
# Usage: deploy/local/install-test-client.sh
# Env:   TILLSYN_TOOLS  cache root (default: $HOME/.cache/tillsyn/tools)
#        TILLSYN_PYENV  venv directory (default: $TILLSYN_TOOLS/pyenv)
# Prints the venv's python path as its last line on stdout.
set -euo pipefail

CONFLUENT_KAFKA_VERSION=2.16.1
tools=${TILLSYN_TOOLS:-$HOME/.cache/tillsyn/tools}
venv=${TILLSYN_PYENV:-$tools/pyenv}
py="$venv/bin/python"

log() { echo "install-test-client: $*" >&2; }

works() {
    [[ -x $py ]] && "$py" -c "
import sys, importlib.metadata as m, confluent_kafka
sys.exit(m.version('confluent-kafka') != '$CONFLUENT_KAFKA_VERSION')" 2>/dev/null
}

if works; then
    echo "$py"
    exit 0
fi

if [[ ! -x $py ]]; then
    base=$(command -v python3) || { log "python3 not found"; exit 1; }
    log "creating venv $venv with $base"
    mkdir -p "$(dirname "$venv")"
    if ! "$base" -m venv "$venv" >&2; then
        # Debian's own python3 ships venv/ensurepip in a separate package.
        rm -rf "$venv"
        sudo=()
        [[ $(id -u) -ne 0 ]] && sudo=(sudo)
        log "installing python3-venv"
        "${sudo[@]}" apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends python3-venv >&2
        "$base" -m venv "$venv" >&2
    fi
fi

log "installing confluent-kafka==$CONFLUENT_KAFKA_VERSION"
"$py" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
    "confluent-kafka==$CONFLUENT_KAFKA_VERSION" >&2

works || { log "confluent_kafka $CONFLUENT_KAFKA_VERSION does not import in $venv"; exit 1; }
echo "$py"
