#!/usr/bin/env bash
# The live demo of the README, one command on a fresh machine: a local Kafka
# broker (tansu, installed and started if needed), tillsyn's topics, the
# service (`tillsyn run`), and a small simulated municipality with injected
# fraud and its reference data (`tillsyn-sim simulate --reference
# --records`) produced to the input and reference topics at a
# steady pace (`tillsyn produce`), while the alerts are printed as they
# arrive on the alert topic, stored by the case store sink (`tillsyn sink
# postgres`, local PostgreSQL). Then a summary from the
# service's Prometheus endpoint and a score of the alerts against the
# simulator's ground truth.
#
# Usage: deploy/local/demo.sh [--exit]
#   By default the service keeps running after the summary, so that its
#   metrics (printed URL) can be looked at, until Ctrl-C. --exit stops it
#   and the broker it started instead (as CI does).
# Env: TILLSYN_DEMO_RATE   events per second to the input topics (default 5000)
#      TILLSYN_DEMO_HTTP   address of the service's HTTP endpoint (default 127.0.0.1:9464)
#      TILLSYN_BROKER_PORT broker port (default 9092)
# Everything goes to out/demo-live/: the service's log, the simulated
# records, the ground truth, the alerts as NDJSON.
set -euo pipefail
cd "$(dirname "$0")/../.."

hold=1
case ${1:-} in
    --exit) hold=0 ;;
    "") ;;
    *)
        echo "usage: $0 [--exit]" >&2
        exit 2
        ;;
esac
rate=${TILLSYN_DEMO_RATE:-5000}
http=${TILLSYN_DEMO_HTTP:-127.0.0.1:9464}
sink_http=${TILLSYN_DEMO_SINK_HTTP:-127.0.0.1:9465}
out=out/demo-live
mkdir -p "$out"
say() { printf '\n== %s\n' "$*"; }

say "building tillsyn and tillsyn-sim (release)"
cargo build --locked --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/tillsyn"
sim="${CARGO_TARGET_DIR:-target}/release/tillsyn-sim"

say "broker"
started_broker=0
if ! deploy/local/broker.sh status >/dev/null 2>&1; then
    deploy/local/install-tansu.sh >/dev/null
    deploy/local/broker.sh start
    started_broker=1
else
    deploy/local/broker.sh status
fi

# Topics and a consumer group of this run's own, so that a broker kept
# from an earlier run does not mix old alerts in.
run=demo-$(date +%Y%m%d-%H%M%S)
export TILLSYN_KAFKA__BROKERS=127.0.0.1:${TILLSYN_BROKER_PORT:-9092}
export TILLSYN_KAFKA__GROUP_ID=tillsyn-$run
export TILLSYN_TOPICS__TIME_REPORTS=$run.time-reports.v1
export TILLSYN_TOPICS__INVOICES=$run.invoices.v1
export TILLSYN_TOPICS__ALERTS=$run.alerts.v1
export TILLSYN_TOPICS__DEAD_LETTER=$run.dead-letter.v1
export TILLSYN_TOPICS__LATE_EVENTS=$run.late-events.v1
export TILLSYN_TOPICS__STATE=$run.state.v1
# The municipality's reference data (decisions on granted hours, hospital
# stays, the provider register) on topics of their own, read by the service.
export TILLSYN_TOPICS__GRANTED_HOURS=$run.granted-hours.v1
export TILLSYN_TOPICS__ABSENCES=$run.client-absences.v1
export TILLSYN_TOPICS__PROVIDER_REGISTER=$run.provider-register.v1
export TILLSYN_CORE__REFERENCE__ENABLED=true
export TILLSYN_HTTP__LISTEN=$http
export TILLSYN_KAFKA__STATISTICS_INTERVAL=1s
export TILLSYN_CORE__PSEUDONYM_SECRET=${TILLSYN_CORE__PSEUDONYM_SECRET:-demo-secret-$run}

say "topics ($run.*)"
"$bin" topics create

say "case store (PostgreSQL on 127.0.0.1:55432, schema ${run//-/_})"
started_pg=0
if ! deploy/local/postgres.sh status >/dev/null 2>&1; then
    deploy/local/postgres.sh start
    started_pg=1
fi
schema=${run//-/_}
deploy/local/postgres.sh psql -q -c "CREATE SCHEMA IF NOT EXISTS $schema"
pg_url=$(deploy/local/postgres.sh url)

service_pid=
tail_pid=
producer_pid=
sink_pid=
cleanup() {
    for pid in $tail_pid $producer_pid; do kill "$pid" 2>/dev/null || true; done
    if [[ -n $sink_pid ]] && kill -0 "$sink_pid" 2>/dev/null; then
        kill -TERM "$sink_pid" 2>/dev/null || true
        wait "$sink_pid" 2>/dev/null || true
    fi
    if [[ -n $service_pid ]] && kill -0 "$service_pid" 2>/dev/null; then
        kill -TERM "$service_pid" 2>/dev/null || true
        wait "$service_pid" 2>/dev/null || true
    fi
    if ((started_broker && !hold)); then
        deploy/local/broker.sh stop >/dev/null 2>&1 || true
    fi
    if ((started_pg && !hold)); then
        deploy/local/postgres.sh stop >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting the service: tillsyn run (log: $out/tillsyn.log)"
"$bin" run >"$out/tillsyn.log" 2>&1 &
service_pid=$!

say "starting the case store sink: tillsyn sink postgres (log: $out/sink.log)"
TILLSYN_HTTP__LISTEN=$sink_http \
    TILLSYN_SINK__POSTGRES__URL="${pg_url%%://*}://tillsyn@${pg_url#*@}?options=-csearch_path%3D$schema" \
    TILLSYN_SINK__POSTGRES__PASSWORD="${TILLSYN_PG_PASSWORD:-tillsyn-local}" \
    TILLSYN_SINK__POSTGRES__GROUP_ID=tillsyn-case-store-$run \
    "$bin" sink postgres >"$out/sink.log" 2>&1 &
sink_pid=$!

ready() { curl -fsS "http://$http/readyz" >/dev/null 2>&1; }
metric_sum() {
    # The sum of a metric's samples whose line matches $2 (default: all),
    # from the service (or from the endpoint $3).
    curl -fsS "http://${3:-$http}/metrics" 2>/dev/null |
        awk -v name="$1" -v match_="${2:-}" '$1 ~ "^"name"({|$)" && index($0, match_) { s += $NF } END { printf "%d", s }'
}

say "simulating a municipality (12 providers, 900 clients, 3 months, 4 with fraud, reference data) to Kafka at $rate events/s"
"$sim" simulate --providers 12 --clients 900 --months 3 --fraudulent 4 --seed 7 --reference \
    --records "$out/records.ndjson" --json --truth "$out/truth.json" 2>"$out/simulate.log" || {
    echo "the simulator failed:" >&2
    cat "$out/simulate.log" >&2
    exit 1
}
"$bin" produce --records "$out/records.ndjson" --rate "$rate" >"$out/produce.log" 2>&1 &
producer_pid=$!

say "alerts as they arrive on $TILLSYN_TOPICS__ALERTS (metrics: http://$http/metrics)"
"$bin" alerts tail --idle-secs 100000 &
tail_pid=$!

# Until every record is produced and the service has caught up with them.
wait "$producer_pid" || {
    echo "producing failed:" >&2
    cat "$out/produce.log" >&2
    exit 1
}
producer_pid=
produced=$(grep -o 'produced [0-9]*' "$out/produce.log" | grep -o '[0-9]*' || echo 0)
for _ in $(seq 1 600); do
    kill -0 "$service_pid" 2>/dev/null || {
        echo "the service stopped:" >&2
        tail -n 20 "$out/tillsyn.log" >&2
        exit 1
    }
    # Input records, and the reference records the service's table read.
    consumed=$(($(metric_sum tillsyn_consumed_records_total) + $(metric_sum tillsyn_reference_records_total)))
    if [[ $consumed -ge $produced ]] && ready; then break; fi
    sleep 1
done
sleep 3
kill "$tail_pid" 2>/dev/null || true
wait "$tail_pid" 2>/dev/null || true
tail_pid=

say "summary (from http://$http/metrics)"
echo "events produced by the simulator:    $produced"
echo "records consumed by the service:     $(metric_sum tillsyn_consumed_records_total)"
echo "reference records read:              $(metric_sum tillsyn_reference_records_total) ($(metric_sum tillsyn_reference_facts) facts held)"
echo "records sent to the dead-letter topic: $(metric_sum tillsyn_dead_lettered_records_total)"
echo "late events routed aside:            $(metric_sum tillsyn_late_events_total)"
echo "alerts produced:                     $(metric_sum tillsyn_produced_alerts_total)"
echo "  opened:                            $(metric_sum tillsyn_produced_alerts_total 'status="opened"')"
echo "ready: $(curl -fsS "http://$http/readyz" 2>&1 || true)"

say "case store (PostgreSQL, schema $schema)"
alerts=$(metric_sum tillsyn_produced_alerts_total)
for _ in $(seq 1 60); do
    [[ $(metric_sum tillsyn_sink_records_total "" "$sink_http") -ge $alerts ]] && break
    sleep 1
done
echo "alert records stored by the sink:    $(metric_sum tillsyn_sink_records_total 'outcome="stored"' "$sink_http")"
deploy/local/postgres.sh psql -q -c "SET search_path = $schema" \
    -c "SELECT severity, status, rule_id, provider_id, municipality_code AS municipality, first_detected_at::date AS first, alert_count AS alerts FROM episodes WHERE status <> 'resolved' ORDER BY severity_rank DESC, first_detected_at LIMIT 12"
echo "(all of it: deploy/local/postgres.sh psql, then SET search_path = $schema; SELECT * FROM episodes;)"

say "score against the simulator's ground truth"
"$bin" alerts tail --json --idle-secs 3 >"$out/alerts.ndjson"
"$sim" evaluate --alerts "$out/alerts.ndjson" --truth "$out/truth.json" >"$out/evaluation.md"
sed -n '1,/^| clean provider-months/p' "$out/evaluation.md"
echo "(the whole evaluation, per pattern and per alert: $out/evaluation.md)"

if ((hold)); then
    say "the service is still running: http://$http/metrics  http://$http/readyz"
    echo "   Ctrl-C stops it (the broker and PostgreSQL keep running: deploy/local/broker.sh stop, deploy/local/postgres.sh stop)"
    wait "$service_pid"
fi
