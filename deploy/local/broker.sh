#!/usr/bin/env bash
# Runs a local Kafka-protocol broker (tansu 0.6.0) on 127.0.0.1 for tillsyn's
# local runs and integration tests: one broker, no topic auto-creation (use
# deploy/local/topics.sh), no transactions, no metrics endpoint of its own
# (tansu only pushes OpenTelemetry to an OTLP endpoint, not used here).
# Usage: deploy/local/broker.sh start|stop|status|restart [--durable|--memory]
#   start    starts it in the background and waits until it answers Kafka
#            requests; a no-op when it is already running
#   stop     stops it (SIGKILL, see stop() for why); a no-op when stopped
#   status   prints its state (and whether it answers a metadata request,
#            with the python client); exits 0 when running, 1 when not
#   restart  stop, then start
#   (default)  a fresh sqlite db, $TILLSYN_STATE_DIR/ephemeral.db, emptied at
#              every start: nothing survives a restart
#   --durable  sqlite db $TILLSYN_STATE_DIR/tansu.db, kept: topics, records
#              and committed offsets survive a restart
#   --memory   tansu's memory:// engine. Not the default: in tansu 0.6.0 it
#              keeps whole batches, so a fetch from an offset inside a batch
#              skips the rest of that batch (a consumer resuming from a
#              committed offset loses records), and its high watermark is the
#              last batch's base offset + 1, not the last offset + 1.
# Env: TILLSYN_BROKER_PORT           port (default 9092)
#      TILLSYN_STATE_DIR             pid file, log, sqlite db (default out/broker,
#                                    relative to the repository root)
#      TILLSYN_TANSU                 tansu binary (default: installed by
#                                    deploy/local/install-tansu.sh when missing)
#      TILLSYN_PYTHON                python with confluent-kafka for the readiness
#                                    check (default: the venv of
#                                    install-test-client.sh, if present)
#      TILLSYN_BROKER_READY_TIMEOUT  seconds to wait for readiness (default 30)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
tools=${TILLSYN_TOOLS:-$HOME/.cache/tillsyn/tools}
port=${TILLSYN_BROKER_PORT:-9092}
state=${TILLSYN_STATE_DIR:-out/broker}
[[ $state == /* ]] || state="$repo/$state"
ready_timeout=${TILLSYN_BROKER_READY_TIMEOUT:-30}
pidfile="$state/tansu.pid"
logfile="$state/tansu.log"
modefile="$state/tansu.mode"
bootstrap="127.0.0.1:$port"

log() { echo "broker: $*" >&2; }
usage() {
    echo "usage: $0 start|stop|status|restart [--durable|--memory]" >&2
    exit 2
}

cmd=${1:-}
shift || true
storage_mode=ephemeral
for arg in "$@"; do
    case $arg in
        --durable) storage_mode=durable ;;
        --memory) storage_mode=memory ;;
        *) usage ;;
    esac
done

# The pid of the running broker, or nothing (removes a stale pid file).
running_pid() {
    [[ -f $pidfile ]] || return 0
    local pid
    pid=$(<"$pidfile")
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "tansu broker"; then
        echo "$pid"
    else
        rm -f "$pidfile"
    fi
}

# Something listens on the port (ss, not a connect: connect-polling a port
# of the ephemeral range while nothing listens can connect the socket to
# itself, which then holds the port and makes the broker's bind fail).
port_open() {
    if command -v ss >/dev/null; then
        [[ -n $(ss -Hltn "sport = :$port") ]]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
    fi
}

python_client() {
    local py=${TILLSYN_PYTHON:-$tools/pyenv/bin/python}
    if [[ -x $py ]] && "$py" -c "import confluent_kafka" 2>/dev/null; then
        echo "$py"
    fi
}

# One Kafka round trip (ApiVersions + Metadata) through librdkafka.
kafka_ready() {
    "$1" - "$bootstrap" <<'PY' 2>/dev/null
import sys
from confluent_kafka.admin import AdminClient
admin = AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0})
admin.list_topics(timeout=2)
PY
}

start() {
    local pid
    pid=$(running_pid)
    if [[ -n $pid ]]; then
        log "already running (pid $pid, $bootstrap, $(cat "$modefile" 2>/dev/null || echo unknown))"
        if [[ $(cat "$modefile" 2>/dev/null) != "$storage_mode"* ]]; then
            log "note: that is not the $storage_mode storage asked for; use 'restart' with the wanted option to switch"
        fi
        return 0
    fi
    if port_open; then
        log "port $port is already taken by another process; set TILLSYN_BROKER_PORT"
        return 1
    fi
    local tansu=${TILLSYN_TANSU:-}
    if [[ -z $tansu ]]; then
        tansu=$("$here/install-tansu.sh" | tail -n 1)
    fi
    mkdir -p "$state"
    # tansu resolves sqlite paths against its working directory (an absolute
    # path does not work in 0.6.0), so it runs inside $state.
    local storage mode
    case $storage_mode in
        durable)
            storage="sqlite://tansu.db"
            mode="durable ($state/tansu.db)"
            ;;
        ephemeral)
            rm -f "$state"/ephemeral.db "$state"/ephemeral.db-wal "$state"/ephemeral.db-shm
            storage="sqlite://ephemeral.db"
            mode="ephemeral ($state/ephemeral.db, emptied at start)"
            ;;
        memory)
            storage="memory://tansu/"
            mode="memory (tansu 0.6.0: mid-batch fetches and high watermarks are wrong)"
            ;;
    esac
    local started
    started=$(date +%s%N)
    echo "== $(date -u +%FT%TZ) start $mode" >>"$logfile"
    (
        cd "$state"
        # setsid: the broker does not get the terminal's Ctrl-C.
        exec setsid "$tansu" broker \
            --listener-url "tcp://$bootstrap" \
            --advertised-listener-url "tcp://$bootstrap" \
            --storage-engine "$storage" \
            </dev/null >>"$logfile" 2>&1
    ) &
    pid=$!
    echo "$pid" >"$pidfile"
    echo "$mode" >"$modefile"

    local py deadline
    py=$(python_client)
    [[ -n $py ]] || log "no python confluent-kafka client (deploy/local/install-test-client.sh); readiness is a TCP check only"
    deadline=$(($(date +%s) + ready_timeout))
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$pidfile"
            log "tansu exited during start; the end of $logfile:"
            tail -n 20 "$logfile" >&2
            return 1
        fi
        if port_open && { [[ -z $py ]] || kafka_ready "$py"; }; then
            break
        fi
        if (($(date +%s) >= deadline)); then
            log "not ready after ${ready_timeout} s; stopping it; the end of $logfile:"
            tail -n 20 "$logfile" >&2
            stop >/dev/null 2>&1 || true
            return 1
        fi
        sleep 0.1
    done
    case $storage_mode in
        durable) add_indexes "$state/tansu.db" ;;
        ephemeral) add_indexes "$state/ephemeral.db" ;;
    esac
    log "ready on $bootstrap in $((($(date +%s%N) - started) / 1000000)) ms (pid $pid, $mode, log $logfile)"
}

# tansu 0.6.0's sqlite schema has no index on its header table, and its
# fetch looks up the headers of every record it returns with a scan of that
# whole table (tansu-storage-0.6.0 src/ddl/040-header.sql, lite.rs:2387):
# consuming N records that carry headers costs O(N^2). Measured: 20,000
# records with a content-type header took 16.1 s to consume without the
# index, 0.98 s with it; without it a consumer group serving 130,000 records
# starves its own heartbeats.
# Its periodic maintenance (every 10 min, and at start) compacts the topics
# with cleanup.policy=compact (tillsyn's state and changelog topics) with a
# query that, with no index on the record keys, compares every duplicate
# key with every older record of its partition (tansu-storage-0.6.0
# src/sql/policy_compact.sql, lite.rs:1130, run by Delegate::maintain at
# lite.rs:4316); and every other request of the broker waits behind it
# (one storage channel, service.rs:1234). Measured on the database the
# test suite leaves (1.16M records; 10,588 duplicate keys): 23.6 s without
# the index, 0.67 s with it; with more duplicates, minutes in which the
# broker answers nothing (seen: first contacts timing out after 120 s, in
# CI and again here with perf and gdb on the busy broker). Creating the
# indexes is idempotent, takes milliseconds on an empty database, and the
# running broker uses them at once.
add_indexes() {
    local db=$1 py
    py=$(python_client)
    py=${py:-python3}
    for _ in $(seq 1 50); do
        if "$py" - "$db" <<'PY'; then
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
if not db.execute("select 1 from sqlite_master where type = 'table' and name = 'header'").fetchone():
    sys.exit(1)
db.execute("create index if not exists header_topition_offset on header (topition, offset_id)")
db.execute("create index if not exists record_topition_k_offset on record (topition, k, offset_id)")
db.commit()
PY
            return 0
        fi
        sleep 0.1
    done
    log "could not index the header and record tables of $db (consuming records with headers and compacting will be slow)"
}

stop() {
    local pid
    pid=$(running_pid)
    if [[ -z $pid ]]; then
        log "not running"
        return 0
    fi
    # SIGKILL, not SIGTERM: tansu 0.6.0 on SIGTERM keeps accepting
    # connections for about 6 s while failing every request with an error
    # librdkafka treats as permanent (queued records fail), and a broker
    # restarted on the same db after that was seen to panic on the first
    # idempotent produce (tansu-storage lite.rs:503). After SIGKILL, sqlite's
    # transactions keep every acknowledged record and committed offset, and
    # clients reconnect by themselves (measured with an idempotent producer
    # and a consumer group across repeated kills).
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    rm -f "$pidfile"
    echo "== $(date -u +%FT%TZ) stopped" >>"$logfile"
    log "stopped (pid $pid)"
}

status() {
    local pid
    pid=$(running_pid)
    if [[ -n $pid ]]; then
        local py answers=""
        py=$(python_client)
        if [[ -n $py ]]; then
            if kafka_ready "$py"; then answers=", answers Kafka requests"; else answers=", NOT answering a metadata request within 2 s"; fi
        fi
        echo "running: pid $pid, $bootstrap, $(cat "$modefile" 2>/dev/null || echo unknown)$answers, log $logfile"
        return 0
    fi
    echo "not running ($bootstrap)"
    return 1
}

case $cmd in
    start) start ;;
    stop) stop ;;
    status) status ;;
    restart)
        stop
        start
        ;;
    *) usage ;;
esac
