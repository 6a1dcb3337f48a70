#!/usr/bin/env bash
# Tests the case officer's view (`tillsyn cases`) in a real headless
# browser, over the real pipeline: synthetic alerts produced to an alert
# topic of this run's own (tests/ops/case_view/produce_alerts.py, the
# independent confluent-kafka client), `tillsyn sink postgres` writing them
# into a PostgreSQL schema of this run's own, `tillsyn cases` serving the
# view, and Debian's Chromium driven by playwright-core
# (tests/ops/case_view/drive.js), which checks:
#   - the list: the open episodes only, critical first, then by age; Swedish
#     by default (texts, decimal comma, Swedish time); labels, table headers
#   - the keyboard: skip link, Tab through the filters to the episodes,
#     a visible focus ring
#   - the filters (municipality, rule, both, none matching, cleared) as a
#     plain GET form
#   - an episode's page: status, observed against expected, the alert
#     history by revision, the evidence ids
#   - English through the visible switch (lang="en"), kept by the links and
#     the form, and back
#   - axe-core's WCAG 2.2 A/AA rules (contrast included) on three pages
#   - live: alerts stored while a list and an episode page are open appear
#     in both without a reload, announced in the live region
#   - no errors in the browser's console (scripts, content security policy)
# and writes screenshots: docs/img/case-view.png (the list) and
# docs/img/case-view-episode.png (an episode).
#
# Usage: tests/ops/case_view/run.sh
# Env: TILLSYN_BIN_DIR     the tillsyn binary's directory (default: built
#                          here, ${CARGO_TARGET_DIR:-target}/debug)
#      TILLSYN_CASE_VIEW_SHOTS  where the screenshots go (default docs/img)
#      TILLSYN_CASE_VIEW_KEEP=1 keep the work directory (logs, configuration),
#                          the schema and the topic after a successful run too
#      TILLSYN_BROKER_PORT, TILLSYN_PG_PORT, TILLSYN_PG_PASSWORD: as
#                          deploy/local/broker.sh and postgres.sh
#      TILLSYN_TOOLS       cache root (default ~/.cache/tillsyn/tools): the
#                          npm packages go to $TILLSYN_TOOLS/case-view-node
# Needs: Debian (chromium and postgresql are installed when missing), node
# and npm (playwright-core and axe-core are installed from npm, pinned, once),
# python3. Starts the broker and PostgreSQL when they are not running, and
# stops at exit only what it started; its schema is dropped at exit and its
# topic's deletion asked for (tansu 0.6.0 keeps topics; the default
# broker's ephemeral storage is emptied at its next start). Takes about
# 15-20 s once everything is installed and built.
set -euo pipefail
cd "$(dirname "$0")/../../.."

PLAYWRIGHT_CORE_VERSION=1.65.1
AXE_CORE_VERSION=4.14.1

here=tests/ops/case_view
tools=${TILLSYN_TOOLS:-$HOME/.cache/tillsyn/tools}
shots=${TILLSYN_CASE_VIEW_SHOTS:-docs/img}
broker_port=${TILLSYN_BROKER_PORT:-9092}
pg_password=${TILLSYN_PG_PASSWORD:-tillsyn-local}
pg_port=${TILLSYN_PG_PORT:-55432}
t0=$(date +%s)
say() { printf '== %s (%ss)\n' "$*" "$(($(date +%s) - t0))"; }
log() { echo "case-view: $*" >&2; }
fail() {
    echo "FAILED - $*"
    exit 1
}
# shellcheck source=deploy/local/debian-packages.sh
source deploy/local/debian-packages.sh

# ---- Tools: Chromium, node with playwright-core and axe-core, the Kafka
# client, tillsyn.
say "tools"
ensure_debian_packages chromium || true
chromium=/usr/bin/chromium
[[ -x $chromium ]] || fail "no $chromium (apt-get install chromium)"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    ensure_debian_packages nodejs npm || fail "no node and npm"
fi
node_dir="$tools/case-view-node"
node_modules="$node_dir/node_modules"
installed() { node -p "require('$node_modules/$1/package.json').version" 2>/dev/null; }
if [[ $(installed playwright-core) != "$PLAYWRIGHT_CORE_VERSION" || $(installed axe-core) != "$AXE_CORE_VERSION" ]]; then
    log "installing playwright-core $PLAYWRIGHT_CORE_VERSION and axe-core $AXE_CORE_VERSION into $node_dir"
    mkdir -p "$node_dir"
    npm install --prefix "$node_dir" --no-audit --no-fund --loglevel=error \
        "playwright-core@$PLAYWRIGHT_CORE_VERSION" "axe-core@$AXE_CORE_VERSION" >&2
fi
python=$(deploy/local/install-test-client.sh | tail -n 1)
if [[ -n ${TILLSYN_BIN_DIR:-} ]]; then
    tillsyn="$TILLSYN_BIN_DIR/tillsyn"
else
    cargo build --locked -q -p tillsyn --bin tillsyn
    tillsyn="${CARGO_TARGET_DIR:-target}/debug/tillsyn"
fi
[[ -x $tillsyn ]] || fail "no $tillsyn"

# ---- The broker and the database: the running ones, or started here.
started=()
pids=()
work=$(mktemp -d "${TMPDIR:-/tmp}/tillsyn-case-view.XXXXXX")
suffix="$$-$(date +%s)"
schema="case_view_${suffix//-/_}"
topic="test.case-view-$suffix.alerts"
ok=0
psql_() { deploy/local/postgres.sh psql -v ON_ERROR_STOP=1 -qAt "$@"; }
cleanup() {
    local pid what
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ $ok == 1 && ${TILLSYN_CASE_VIEW_KEEP:-0} != 1 ]]; then
        psql_ -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
        "$python" - "127.0.0.1:$broker_port" "$topic" <<'PY' >/dev/null 2>&1 || true
import sys
from confluent_kafka.admin import AdminClient
for f in AdminClient({"bootstrap.servers": sys.argv[1]}).delete_topics([sys.argv[2]]).values():
    f.result(10)
PY
        rm -rf "$work"
    else
        echo "kept: $work (logs, configuration), schema $schema, topic $topic"
        for f in "$work"/*.log; do
            [[ -f $f ]] || continue
            echo "== the end of $f"
            tail -n 20 "$f"
        done
    fi
    for what in "${started[@]}"; do
        deploy/local/"$what".sh stop >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT

say "broker and database"
if ! (exec 3<>"/dev/tcp/127.0.0.1/$broker_port") 2>/dev/null; then
    deploy/local/install-tansu.sh >/dev/null
    deploy/local/broker.sh start
    started+=(broker)
fi
if ! psql_ -c "SELECT 1" >/dev/null 2>&1; then
    deploy/local/postgres.sh start
    started+=(postgres)
fi
psql_ -c "CREATE SCHEMA $schema" >/dev/null
"$python" - "127.0.0.1:$broker_port" "$topic" <<'PY'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
for f in admin.create_topics([NewTopic(sys.argv[2], num_partitions=3, replication_factor=1)]).values():
    f.result(30)
PY

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
sink_port=$(free_port)
view_port=$(free_port)
config="$work/tillsyn.toml"
cat >"$config" <<EOF
[kafka]
brokers = "127.0.0.1:$broker_port"
group_id = "test-case-view-$suffix"

[topics]
alerts = "$topic"
internal_prefix = "test.case-view-$suffix."

[http]
listen = "127.0.0.1:$sink_port"

[sink.postgres]
url = "postgres://tillsyn@127.0.0.1:$pg_port/tillsyn?options=-csearch_path%3D$schema"
group_id = "test-case-view-sink-$suffix"
batch_linger = "50ms"
retry_max = "1s"

[cases]
listen = "127.0.0.1:$view_port"
EOF
export TILLSYN_SINK__POSTGRES__PASSWORD=$pg_password

# ---- The pipeline: alerts → topic → sink → schema.
say "the sink, and the first alerts"
"$tillsyn" sink postgres --config "$config" >"$work/sink.log" 2>&1 &
pids+=($!)
produced=$("$python" "$here/produce_alerts.py" "127.0.0.1:$broker_port" "$topic" initial)
stored=0
for _ in $(seq 1 300); do
    stored=$(psql_ -c "SELECT count(*) FROM $schema.alerts" 2>/dev/null || echo 0)
    [[ $stored == "$produced" ]] && break
    sleep 0.2
done
[[ $stored == "$produced" ]] || fail "the sink stored $stored of $produced alerts in 60 s"
echo "ok - $produced alerts produced to $topic and stored by tillsyn sink postgres in schema $schema"
translations=$(psql_ -c "SELECT count(*) FROM $schema.alerts WHERE explanations ? 'en'")
[[ $translations == "$produced" ]] && translations=1 || translations=0

say "the view"
"$tillsyn" cases --config "$config" >"$work/cases.log" 2>&1 &
pids+=($!)
url="http://127.0.0.1:$view_port"
for _ in $(seq 1 150); do
    curl -fsS "$url/readyz" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -fsS "$url/readyz" >/dev/null || fail "tillsyn cases is not ready: $(curl -sS "$url/readyz" 2>&1)"
curl -fsS "$url/metrics" | grep -qx 'tillsyn_service_ready 1' || fail "/metrics does not say ready"
echo "ok - tillsyn cases is ready ($url, /readyz and /metrics)"

say "the browser"
mkdir -p "$shots"
produce_late=$(printf '["%s", "%s", "%s", "%s", "late"]' "$python" "$here/produce_alerts.py" \
    "127.0.0.1:$broker_port" "$topic")
CASE_VIEW_URL=$url \
    PLAYWRIGHT_CORE="$node_modules/playwright-core" \
    AXE_CORE="$node_modules/axe-core/axe.min.js" \
    CHROMIUM=$chromium \
    PRODUCE=$produce_late \
    SHOTS=$shots \
    TRANSLATIONS=$translations \
    node "$here/drive.js"
ok=1
say "done"
