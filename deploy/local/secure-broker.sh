#!/usr/bin/env bash
# A secured local broker for tests: tansu 0.6.0 with SASL/SCRAM
# (--authentication) behind a TLS terminator, so clients speak SASL_SSL.
# tansu 0.6.0 cannot serve TLS itself (its --cert and --key exclude each
# other and the TLS acceptor is never used: tests/ops/secure/README.md), so
# tests/ops/secure/tls_proxy.py terminates TLS on the client port and
# relays to tansu's own port on 127.0.0.1; tansu advertises the TLS port.
# Usage: deploy/local/secure-broker.sh start|stop|status
#   start  certificates (deploy/local/tls.sh), a fresh sqlite db, the SCRAM
#          user (created through AlterUserScramCredentials while tansu runs
#          without --authentication: with it, no request but ApiVersions and
#          SASL is served before login), tansu restarted with
#          --authentication, the TLS terminator; waits until a SASL_SSL
#          client is served; writes $TILLSYN_STATE_DIR/client.env (tillsyn's
#          TILLSYN_KAFKA__... variables) and client.properties (librdkafka)
#   stop   stops both (SIGKILL for tansu, see broker.sh)
# Env: TILLSYN_BROKER_PORT      TLS port clients use (default 29092)
#      TILLSYN_TANSU_PORT       tansu's plaintext SASL port (default TLS port + 1)
#      TILLSYN_STATE_DIR        pids, logs, db, client files (default out/secure-broker)
#      TILLSYN_TLS_DIR          certificates (default out/tls)
#      TILLSYN_SASL_USERNAME    (default tillsyn)
#      TILLSYN_SASL_PASSWORD    or TILLSYN_SASL_PASSWORD_FILE; default: a random
#                               password kept in $TILLSYN_STATE_DIR/sasl-password
#      TILLSYN_SASL_MECHANISM   SCRAM-SHA-512 (default) or SCRAM-SHA-256
#      TILLSYN_MTLS             1: the terminator requires a client certificate
#                               signed by ca.crt (client.crt/client.key)
#      TILLSYN_TANSU, TILLSYN_PYTHON as in broker.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
port=${TILLSYN_BROKER_PORT:-29092}
tport=${TILLSYN_TANSU_PORT:-$((port + 1))}
state=${TILLSYN_STATE_DIR:-out/secure-broker}
[[ $state == /* ]] || state="$repo/$state"
tls=${TILLSYN_TLS_DIR:-out/tls}
user=${TILLSYN_SASL_USERNAME:-tillsyn}
mechanism=${TILLSYN_SASL_MECHANISM:-SCRAM-SHA-512}
log() { echo "secure-broker: $*" >&2; }

alive() { [[ -f $state/$1.pid ]] && kill -0 "$(<"$state/$1.pid")" 2>/dev/null; }
# A listening socket on the port. Not a connect: polling a port in the
# ephemeral range (32768-60999; the defaults here are below it) with connects while nothing listens can make
# the kernel pick that very port as the source and connect the socket to
# itself (seen with 39092, the default before), which then keeps the listener from binding.
port_open() { [[ -n $(ss -Hltn "sport = :$1") ]]; }
wait_port() {
    for _ in $(seq 1 100); do
        port_open "$1" && return 0
        alive "$2" || break
        sleep 0.1
    done
    log "$2 did not listen on $1; the end of $state/$2.log:"
    tail -n 20 "$state/$2.log" >&2
    return 1
}

stop_one() {
    alive "$1" || { rm -f "$state/$1.pid"; return 0; }
    local pid
    pid=$(<"$state/$1.pid")
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$state/$1.pid"
    log "stopped $1 (pid $pid)"
}

start_tansu() { # advertised port, extra args
    local advertised=$1
    shift
    (
        cd "$state"
        exec setsid "$tansu" broker \
            --listener-url "tcp://127.0.0.1:$tport" \
            --advertised-listener-url "tcp://127.0.0.1:$advertised" \
            --storage-engine "sqlite://tansu.db" --silent "$@" \
            </dev/null >>"$state/tansu.log" 2>&1
    ) &
    echo $! >"$state/tansu.pid"
    wait_port "$tport" tansu
}

start() {
    if alive tansu || alive proxy; then
        log "already running"
        return 0
    fi
    for p in "$port" "$tport"; do
        if port_open "$p"; then
            log "port $p is taken; set TILLSYN_BROKER_PORT / TILLSYN_TANSU_PORT"
            return 1
        fi
    done
    case $mechanism in
        SCRAM-SHA-512 | SCRAM-SHA-256) ;;
        *) log "TILLSYN_SASL_MECHANISM: tansu 0.6.0 offers SCRAM-SHA-512 and SCRAM-SHA-256 only"; return 1 ;;
    esac
    tansu=${TILLSYN_TANSU:-$("$here/install-tansu.sh" | tail -n 1)}
    py=${TILLSYN_PYTHON:-$("$here/install-test-client.sh" | tail -n 1)}
    tls=$("$here/tls.sh" "$tls")
    mkdir -p "$state"
    local password
    if [[ -n ${TILLSYN_SASL_PASSWORD:-} ]]; then
        password=$TILLSYN_SASL_PASSWORD
    elif [[ -n ${TILLSYN_SASL_PASSWORD_FILE:-} ]]; then
        password=$(<"$TILLSYN_SASL_PASSWORD_FILE")
    else
        [[ -s $state/sasl-password ]] || (umask 077 && openssl rand -hex 16 >"$state/sasl-password")
        password=$(<"$state/sasl-password")
    fi
    rm -f "$state"/tansu.db "$state"/tansu.db-wal "$state"/tansu.db-shm

    # Stop what this start started, should a step fail.
    trap 'stop >/dev/null 2>&1' ERR
    # 1. without --authentication, advertising its own port: create the
    #    SCRAM credential.
    start_tansu "$tport"
    SASL_PASSWORD=$password "$py" - "127.0.0.1:$tport" "$user" "$mechanism" <<'PY'
import os, sys
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)
bootstrap, user, mechanism = sys.argv[1:]
mech = ScramMechanism.SCRAM_SHA_512 if mechanism == "SCRAM-SHA-512" else ScramMechanism.SCRAM_SHA_256
admin = AdminClient({"bootstrap.servers": bootstrap})
upsert = UserScramCredentialUpsertion(user, ScramCredentialInfo(mech, 8192),
                                      os.environ["SASL_PASSWORD"].encode())
for f in admin.alter_user_scram_credentials([upsert], request_timeout=10).values():
    f.result()
PY
    stop_one tansu >/dev/null 2>&1
    # 2. with --authentication, and the TLS terminator in front.
    start_tansu "$port" --authentication
    local mtls=()
    [[ ${TILLSYN_MTLS:-0} == 1 ]] && mtls=(--client-ca "$tls/ca.crt")
    setsid "$py" "$repo/tests/ops/secure/tls_proxy.py" "$port" "$tport" \
        --cert "$tls/broker.crt" --key "$tls/broker.key" "${mtls[@]}" \
        </dev/null >>"$state/proxy.log" 2>&1 &
    echo $! >"$state/proxy.pid"
    wait_port "$port" proxy

    local sec_proto=SASL_SSL lower
    (umask 077 && {
        printf '%s\n' "bootstrap.servers=127.0.0.1:$port" "security.protocol=$sec_proto" \
            "sasl.mechanisms=$mechanism" "sasl.username=$user" "sasl.password=$password" \
            "ssl.ca.location=$tls/ca.crt" >"$state/client.properties"
        [[ ${TILLSYN_MTLS:-0} == 1 ]] && printf '%s\n' "ssl.certificate.location=$tls/client.crt" \
            "ssl.key.location=$tls/client.key" >>"$state/client.properties"
        echo "export TILLSYN_KAFKA__BROKERS=127.0.0.1:$port" >"$state/client.env"
        grep -v '^bootstrap.servers=' "$state/client.properties" | while IFS='=' read -r k v; do
            lower=${k//./_}
            printf 'export TILLSYN_KAFKA__COMMON__%s=%q\n' "${lower^^}" "$v"
        done >>"$state/client.env"
    })
    if ! "$py" - "$state/client.properties" <<'PY'; then
import sys, time
from confluent_kafka.admin import AdminClient
conf = dict(l.rstrip("\n").split("=", 1) for l in open(sys.argv[1]) if "=" in l)
conf["log_level"] = 0
deadline = time.monotonic() + 30
while True:
    try:
        AdminClient(conf).list_topics(timeout=5)
        break
    except Exception as e:
        if time.monotonic() > deadline:
            sys.exit(f"secure-broker: not ready: {e}")
PY
        stop
        return 1
    fi
    trap - ERR
    log "ready: SASL_SSL ($mechanism, user $user) on 127.0.0.1:$port -> tansu 127.0.0.1:$tport; client settings in $state/client.env and client.properties"
}

stop() {
    stop_one proxy
    stop_one tansu
}

status() {
    if alive tansu && alive proxy; then
        echo "running: TLS 127.0.0.1:$port (pid $(<"$state/proxy.pid")) -> tansu 127.0.0.1:$tport (pid $(<"$state/tansu.pid"))"
        return 0
    fi
    echo "not running"
    return 1
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
