#!/usr/bin/env bash
# Long fault runs against a real broker that print figures (the short
# variants are tests in tests/kafka.rs). Each run starts its own tansu
# (ephemeral sqlite, port $TILLSYN_SOAK_PORT, default 29092) and stops it.
#
#   scripts/soak.sh crash [months]     a simulated municipality of 40
#       providers, 2,500 clients over `months` (default 7: about 1.09 M
#       events) is produced (`tillsyn-sim simulate --records`, `tillsyn
#       produce`) while the detector is SIGKILLed every 3-10 s and restarted;
#       then the alert topic is compared record by record with
#       `tillsyn replay` over the same events.
#   scripts/soak.sh hostile [count]    `count` (default 100000) malformed
#       records of every kind among a municipality's events: every one must
#       be dead-lettered, every valid one processed; prints the service's
#       peak memory.
#   scripts/soak.sh throughput         (TILLSYN_SOAK_BASELINE=older/tillsyn to
#                                      compare builds) the same 1 M events consumed by two
#       consumer groups, checkpointing every 5 s and (almost) never: the
#       cost of the recovery bookkeeping.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-crash}
port=${TILLSYN_SOAK_PORT:-29092}
http_port=${TILLSYN_SOAK_HTTP_PORT:-29464}
out=out/soak-$mode
rm -rf "$out"
mkdir -p "$out"
cargo build --locked --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/tillsyn"
sim="${CARGO_TARGET_DIR:-target}/release/tillsyn-sim"
log() { printf '%s %s\n' "$(date -u +%T)" "$*" >&2; }

broker() { TILLSYN_BROKER_PORT=$port TILLSYN_STATE_DIR=$out/broker deploy/local/broker.sh "$@"; }
broker start >&2
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    broker stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

run=soak-$mode-$(date +%s)
export TILLSYN_KAFKA__BROKERS=127.0.0.1:$port
export TILLSYN_KAFKA__GROUP_ID=$run
export TILLSYN_KAFKA__STATISTICS_INTERVAL=1s
export TILLSYN_KAFKA__COMMIT_INTERVAL=${TILLSYN_SOAK_COMMIT_INTERVAL:-5s}
export TILLSYN_KAFKA__CONSUMER__SESSION_TIMEOUT_MS=6000
export TILLSYN_TOPICS__TIME_REPORTS=$run.time-reports
export TILLSYN_TOPICS__INVOICES=$run.invoices
export TILLSYN_TOPICS__ALERTS=$run.alerts
export TILLSYN_TOPICS__DEAD_LETTER=$run.dead-letter
export TILLSYN_TOPICS__LATE_EVENTS=$run.late-events
export TILLSYN_TOPICS__STATE=$run.state
export TILLSYN_TOPICS__INTERNAL_PREFIX=$run.
export TILLSYN_HTTP__LISTEN=127.0.0.1:$http_port
export TILLSYN_LOG__FORMAT=json
export TILLSYN_CORE__PSEUDONYM_SECRET=soak-secret-$(date +%s%N)
"$bin" topics create >&2

metric() {
    curl -fsS "http://127.0.0.1:$http_port/metrics" 2>/dev/null |
        awk -v name="$1" '$1 ~ "^"name"({|$)" { s += $NF } END { printf "%d", s }'
}
start_service() { # $1: log file
    "$bin" run >"$1" 2>&1 &
    service=$!
    pids+=("$service")
}
# Until every fetched partition's lag is 0 (the statistics say so) and the
# service is ready.
wait_caught_up() {
    local stable=0
    while ((stable < 3)); do
        sleep 1
        kill -0 "$service" 2>/dev/null || { log "the service died"; return 1; }
        if curl -fsS "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1 &&
            [[ $(metric tillsyn_consumer_lag_messages) == 0 ]]; then
            stable=$((stable + 1))
        else
            stable=0
        fi
    done
}
stop_service() {
    kill -TERM "$service"
    wait "$service"
}

# Record-by-record comparison of two NDJSON alert files.
compare_alerts() { # $1 live, $2 offline
    python3 - "$1" "$2" <<'PY'
import collections, json, sys
live = [json.loads(l)["alertId"] for l in open(sys.argv[1])]
offline = [json.loads(l)["alertId"] for l in open(sys.argv[2])]
lc, oc = collections.Counter(live), collections.Counter(offline)
dups = sum(n - 1 for n in lc.values() if n > 1)
missing = sum((oc - lc).values())
extra = sum((lc - oc).values())
print(f"alert records live {len(live)}, offline {len(offline)}; duplicated {dups}, missing {missing}, extra {extra}")
sys.exit(0 if (dups, missing, extra) == (0, 0, 0) and len(live) == len(offline) else 1)
PY
}

restore_figures() { # logs...
    cat "$@" | python3 -c '
import json, sys, statistics
r = []
for line in sys.stdin:
    try:
        l = json.loads(line)
    except ValueError:
        continue
    f = l.get("fields", {})
    if f.get("message") == "partition state restored":
        r.append(f)
snap = [x for x in r if x["from"] == "snapshot"]
secs = sorted(x["seconds"] for x in snap)
print(f"partition takeovers {len(r)}, from a snapshot {len(snap)}")
if secs:
    sizes = sorted(x["bytes"] for x in snap)
    print(f"restore time per partition: median {statistics.median(secs):.3f} s, max {secs[-1]:.3f} s "
          f"(restored states {sizes[0]/1e3:.0f}-{sizes[-1]/1e3:.0f} kB)")
'
}

sim_args=(--seed 1 --providers 40 --clients 2500)
case $mode in
crash)
    months=${2:-7}
    log "offline: simulate $months months and replay (one partition: the reference)"
    "$sim" simulate "${sim_args[@]}" --months "$months" --out "$out/events.pb" --truth "$out/truth.json" 2>&1 | tail -n 1 >&2
    "$bin" replay --events "$out/events.pb" --alerts "$out/offline.ndjson" --partitions 1 >/dev/null
    "$sim" simulate "${sim_args[@]}" --months "$months" --records "$out/records.ndjson" --truth "$out/truth-live.json" \
        2>&1 | tail -n 1 >&2
    log "live: producing at ${TILLSYN_SOAK_RATE:-8000}/s while the detector is killed every 3-10 s"
    started=$(date +%s)
    "$bin" produce --records "$out/records.ndjson" --rate "${TILLSYN_SOAK_RATE:-8000}" >"$out/produce.log" 2>&1 &
    producer=$!
    pids+=("$producer")
    kills=0
    round=0
    suppressed=0
    while kill -0 "$producer" 2>/dev/null; do
        start_service "$out/run-$round.log"
        # Killed 3-10 s after it started consuming (joining the group and
        # restoring take a few seconds of their own).
        for _ in $(seq 1 300); do
            [[ $(metric tillsyn_consumed_records_total) -gt 0 ]] && break
            sleep 0.2
        done
        sleep $((3 + RANDOM % 8))
        suppressed=$((suppressed + $(metric tillsyn_replayed_alerts_suppressed_total)))
        kill -KILL "$service" 2>/dev/null || true
        wait "$service" 2>/dev/null || true
        kills=$((kills + 1))
        round=$((round + 1))
        log "killed $kills times"
        # The group's coordinator must see the dead member's session end
        # (tansu acts on it only when a member calls; see the README).
        sleep 6.5
    done
    wait "$producer"
    log "all events produced; the last instance catches up"
    start_service "$out/run-$round.log"
    wait_caught_up
    suppressed=$((suppressed + $(metric tillsyn_replayed_alerts_suppressed_total)))
    stop_service
    elapsed=$(($(date +%s) - started))
    "$bin" alerts tail --json --idle-secs 5 >"$out/live.ndjson"
    echo "== crash soak: $(grep -o 'produced [0-9]* records' "$out/produce.log"), $kills SIGKILLs in ${elapsed} s"
    restore_figures "$out"/run-*.log
    echo "alerts computed again by replays after a takeover and not produced again: $suppressed"
    compare_alerts "$out/live.ndjson" "$out/offline.ndjson"
    ;;
hostile)
    count=${2:-100000}
    log "offline: simulate 2 months and replay"
    "$sim" simulate "${sim_args[@]}" --months 2 --out "$out/events.pb" --truth "$out/truth.json" 2>&1 | tail -n 1 >&2
    "$bin" replay --events "$out/events.pb" --alerts "$out/offline.ndjson" --partitions 1 >/dev/null
    log "producing the events and $count malformed records"
    "$sim" simulate "${sim_args[@]}" --months 2 --records "$out/records.ndjson" --hostile "$count" \
        --truth "$out/truth-live.json" 2>"$out/simulate.log"
    "$bin" produce --records "$out/records.ndjson" 2>"$out/produce.log"
    tail -n 1 "$out/simulate.log" "$out/produce.log" >&2
    started=$(date +%s)
    start_service "$out/run.log"
    wait_caught_up
    consumed=$(metric tillsyn_consumed_records_total)
    dead=$(metric tillsyn_dead_lettered_records_total)
    peak=$(awk '/VmHWM/ {print $2 / 1024 " MiB"}' "/proc/$service/status")
    stop_service
    elapsed=$(($(date +%s) - started))
    "$bin" alerts tail --json --idle-secs 5 >"$out/live.ndjson"
    echo "== hostile soak: $(tail -n 1 "$out/simulate.log"); $(tail -n 1 "$out/produce.log")"
    echo "consumed $consumed records in ${elapsed} s; dead-lettered $dead (expected $count); peak resident memory $peak"
    curl -fsS "http://127.0.0.1:$http_port/metrics" >/dev/null 2>&1 || true
    grep -o '"reason":"[a-z_]*"' "$out/run.log" | sort | uniq -c | sort -rn | head -n 20 || true
    compare_alerts "$out/live.ndjson" "$out/offline.ndjson"
    [[ $dead == "$count" ]] || { echo "dead-lettered $dead, not $count"; exit 1; }
    ;;
throughput)
    months=${2:-7}
    log "producing $months months of events once"
    "$sim" simulate "${sim_args[@]}" --months "$months" --records "$out/records.ndjson" --truth "$out/truth.json" \
        2>"$out/simulate.log"
    "$bin" produce --records "$out/records.ndjson" 2>"$out/produce.log"
    total=$(grep -o 'produced [0-9]*' "$out/produce.log" | grep -o '[0-9]*')
    # TILLSYN_SOAK_BASELINE=/path/to/an/older/tillsyn consumes the same
    # records with that build too, for a before/after in one run.
    builds=("$bin")
    [[ -n ${TILLSYN_SOAK_BASELINE:-} ]] && builds+=("$TILLSYN_SOAK_BASELINE")
    for i in "${!builds[@]}"; do
        build=${builds[$i]}
        for commit in 5s 1d; do
            tag=$commit-build$i
            export TILLSYN_KAFKA__COMMIT_INTERVAL=$commit
            export TILLSYN_KAFKA__GROUP_ID=$run-$tag
            export TILLSYN_TOPICS__ALERTS=$run.alerts-$tag
            export TILLSYN_TOPICS__STATE=$run.state-$tag
            # Internal topics of its own for every run (a build older
            # than the internal topics refuses the key: none then).
            export TILLSYN_TOPICS__INTERNAL_PREFIX=$run.$tag.
            if ! "$build" check-config >/dev/null 2>&1; then
                unset TILLSYN_TOPICS__INTERNAL_PREFIX
            fi
            "$build" topics create >/dev/null
            started=$(date +%s%N)
            bin=$build start_service "$out/run-$tag.log"
            while [[ $(metric tillsyn_consumed_records_total) -lt $total ]]; do
                kill -0 "$service" 2>/dev/null || {
                    echo "$build, checkpoint every $commit: the service exited before it had consumed every record (see $out/run-$tag.log)"
                    continue 2
                }
                sleep 0.2
            done
            elapsed_ms=$((($(date +%s%N) - started) / 1000000))
            snapshots=$(metric tillsyn_state_snapshots_total)
            internal_records=$(metric tillsyn_internal_records_produced_total)
            internal_bytes=$(metric tillsyn_internal_bytes_produced_total)
            stop_service
            echo "$build, checkpoint every $commit: $total records in $elapsed_ms ms = $((total * 1000 / elapsed_ms)) records/s ($snapshots snapshots while consuming; group join included)"
            if [[ $internal_records -gt 0 ]]; then
                echo "    internal topics: $internal_records records, $internal_bytes bytes produced ($((internal_bytes / total)) bytes per input record)"
            fi
        done
    done
    ;;
*)
    echo "usage: $0 crash [months] | hostile [count] | throughput [months]" >&2
    exit 2
    ;;
esac
