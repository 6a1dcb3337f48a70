#!/usr/bin/env bash
# Runs a local PostgreSQL server on 127.0.0.1 for tillsyn's case store (the
# `tillsyn sink postgres` target and the case officer's view): Debian's
# `postgresql`, installed when missing, a cluster of its own (not Debian's
# `main` cluster), a role and a database `tillsyn` with a password.
# Usage: deploy/local/postgres.sh start|stop|status|restart|url|psql [ARGS]
#   start    starts it in the background and waits until it accepts
#            connections; a no-op when it is already running
#   stop     stops it (fast shutdown); a no-op when stopped
#   status   prints its state; exits 0 when running, 1 when not
#   url      prints the connection URL (with the local password)
#   psql     runs psql against the database (extra ARGS go to psql)
# Env: TILLSYN_PG_PORT       port (default 55432)
#      TILLSYN_PG_DIR        data directory, log and socket (default
#                            out/postgres, relative to the repository root;
#                            as root, when the postgres user cannot reach it,
#                            /var/tmp/tillsyn-postgres/<checkout hash>)
#      TILLSYN_PG_PASSWORD   the role's password (default tillsyn-local; a
#                            local, throw-away server)
# The server runs as the `postgres` system user when this script runs as
# root (PostgreSQL refuses to run as root), as the caller otherwise. Its data
# survive a restart; `rm -rf` the data directory for an empty one.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
port=${TILLSYN_PG_PORT:-55432}
dir=${TILLSYN_PG_DIR:-out/postgres}
[[ $dir == /* ]] || dir="$repo/$dir"
# As root the server runs as `postgres`, which must reach the directory: a
# checkout under a private directory (mktemp -d is 0700) is not reachable,
# so the default moves to /var/tmp, one directory per checkout.
if [[ -z ${TILLSYN_PG_DIR:-} && $(id -u) -eq 0 ]] && id postgres >/dev/null 2>&1 &&
    ! runuser -u postgres -- test -x "$(dirname "$dir")" 2>/dev/null; then
    dir="/var/tmp/tillsyn-postgres/$(printf '%s' "$repo" | md5sum | cut -c1-12)"
    mkdir -p /var/tmp/tillsyn-postgres
fi
password=${TILLSYN_PG_PASSWORD:-tillsyn-local}
data="$dir/data"
logfile="$dir/postgres.log"
url="postgres://tillsyn:$password@127.0.0.1:$port/tillsyn"

log() { echo "postgres: $*" >&2; }
# shellcheck source=deploy/local/debian-packages.sh
source "$here/debian-packages.sh"

usage() {
    echo "usage: $0 start|stop|status|restart|url|psql [ARGS]" >&2
    exit 2
}

# The server's binaries: the newest installed major version.
bin_dir() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [[ -z $found ]]; then
        ensure_debian_packages postgresql || { log "no PostgreSQL server and no apt to install one"; exit 1; }
        found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    fi
    [[ -n $found ]] || { log "the postgresql package has no server binaries"; exit 1; }
    echo "$found"
}

# Runs a command as the server's user.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        # From /: the caller's directory may be out of the user's reach.
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

running() {
    [[ -f $data/postmaster.pid ]] && as_owner "$(bin_dir)/pg_ctl" -D "$data" status >/dev/null 2>&1
}

start() {
    local bin
    bin=$(bin_dir)
    if running; then
        log "already running (127.0.0.1:$port, $data)"
        return 0
    fi
    if [[ -n $(ss -Hltn "sport = :$port" 2>/dev/null) ]]; then
        log "port $port is already taken by another process (another checkout's server?); set TILLSYN_PG_PORT"
        return 1
    fi
    mkdir -p "$dir"
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres: "$dir"
        chmod 0700 "$dir"
    fi
    if [[ ! -f $data/PG_VERSION ]]; then
        log "creating a cluster in $data"
        # The superuser `postgres` authenticates over the socket only (peer);
        # every TCP connection needs a password (scram-sha-256).
        as_owner "$bin/initdb" -D "$data" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
            --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
            { cat "$dir/initdb.log" >&2; exit 1; }
        # Loopback only; the socket in this directory, not /var/run.
        printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = '%s'\n" "$port" "$dir" \
            >>"$data/postgresql.conf"
    fi
    as_owner "$bin/pg_ctl" -D "$data" -l "$logfile" -w -t 60 -o "-p $port -k $dir" start >/dev/null ||
        { tail -n 30 "$logfile" >&2; exit 1; }
    # The role and the database, idempotently.
    as_owner "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
        -v pw="$password" <<'SQL' >/dev/null
SELECT format('CREATE ROLE tillsyn LOGIN PASSWORD %L', :'pw')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tillsyn') \gexec
SELECT format('ALTER ROLE tillsyn PASSWORD %L', :'pw') \gexec
SELECT 'CREATE DATABASE tillsyn OWNER tillsyn'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'tillsyn') \gexec
SQL
    log "running on 127.0.0.1:$port (data $data, log $logfile)"
}

stop() {
    if ! running; then
        log "not running"
        return 0
    fi
    as_owner "$(bin_dir)/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    log "stopped"
}

cmd=${1:-}
shift || true
case $cmd in
    start) start ;;
    stop) stop ;;
    restart) stop && start ;;
    status)
        if running; then
            echo "running on 127.0.0.1:$port ($data)"
        else
            echo "not running"
            exit 1
        fi
        ;;
    url) echo "$url" ;;
    psql) PGPASSWORD=$password exec "$(bin_dir)/psql" -h 127.0.0.1 -p "$port" -U tillsyn -d tillsyn "$@" ;;
    *) usage ;;
esac
