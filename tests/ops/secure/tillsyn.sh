#!/usr/bin/env bash
# tillsyn itself over a secured broker (SASL_SSL with SCRAM-SHA-512; see
# deploy/local/secure-broker.sh): `topics create`, `produce` (a simulated
# municipality), `run` until its alerts are on the alert topic, and `alerts
# tail`, with the password from the environment and, for `run`, from a file
# (TILLSYN_KAFKA__COMMON__SASL_PASSWORD_FILE). Then each of the four with a
# wrong password and with a CA that did not sign the broker's certificate:
# each must exit non-zero within 15 s and say why, never hang. Exits
# non-zero when a check fails.
# Usage: tests/ops/secure/tillsyn.sh
# Env: TILLSYN_BIN_DIR (tillsyn and tillsyn-sim; default target/release),
#      TILLSYN_BROKER_PORT (default 29192), TILLSYN_STATE_DIR, and those of
#      deploy/local/secure-broker.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
bin=${TILLSYN_BIN_DIR:-${CARGO_TARGET_DIR:-$repo/target}/release}
export TILLSYN_BROKER_PORT=${TILLSYN_BROKER_PORT:-29192}
export TILLSYN_STATE_DIR=${TILLSYN_STATE_DIR:-$repo/out/secure-tillsyn}
export TILLSYN_PYTHON=${TILLSYN_PYTHON:-$("$repo/deploy/local/install-test-client.sh" | tail -n 1)}
export TILLSYN_TANSU=${TILLSYN_TANSU:-$("$repo/deploy/local/install-tansu.sh" | tail -n 1)}
http_port=$((TILLSYN_BROKER_PORT + 373))
for b in tillsyn tillsyn-sim; do
    [[ -x $bin/$b ]] || { echo "no $bin/$b: build with cargo build --release" >&2; exit 2; }
done

run_pid=
cleanup() {
    [[ -n $run_pid ]] && kill "$run_pid" 2>/dev/null
    "$repo/deploy/local/secure-broker.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$repo/deploy/local/secure-broker.sh" start
work=$TILLSYN_STATE_DIR/tillsyn
rm -rf "$work" && mkdir -p "$work"

# shellcheck disable=SC1091
source "$TILLSYN_STATE_DIR/client.env"
export TILLSYN_CORE__PSEUDONYM_SECRET=secured-cluster-test-secret
export TILLSYN_HTTP__LISTEN=127.0.0.1:$http_port
export TILLSYN_KAFKA__STATISTICS_INTERVAL=1s
export TILLSYN_KAFKA__GROUP_ID=tillsyn-secure-$$
rc=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; rc=1; }

# The right credentials: every command works.
"$bin/tillsyn" topics create >"$work/topics.log" 2>&1 && pass "topics create" || fail "topics create: $(tail -n 3 "$work/topics.log")"
"$bin/tillsyn-sim" simulate --providers 6 --clients 200 --months 1 --fraudulent 2 --seed 5 \
    --records "$work/records.ndjson" --json --truth "$work/truth.json" >/dev/null 2>"$work/simulate.log"
"$bin/tillsyn" produce --records "$work/records.ndjson" >"$work/produce.log" 2>&1 &&
    pass "produce: $(grep -o 'produced [0-9]*' "$work/produce.log")" || fail "produce: $(tail -n 3 "$work/produce.log")"
printf '%s\n' "$TILLSYN_KAFKA__COMMON__SASL_PASSWORD" >"$work/password"
(
    unset TILLSYN_KAFKA__COMMON__SASL_PASSWORD
    export TILLSYN_KAFKA__COMMON__SASL_PASSWORD_FILE=$work/password
    exec "$bin/tillsyn" run
) >"$work/run.log" 2>&1 &
run_pid=$!
alerts=0
for _ in $(seq 120); do
    sleep 1
    kill -0 "$run_pid" 2>/dev/null || break
    alerts=$(curl -sf "http://127.0.0.1:$http_port/metrics" |
        awk '/^tillsyn_produced_alerts_total/ {s += $2} END {print s + 0}')
    ready=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http_port/readyz" || true)
    [[ $alerts -gt 0 && $ready == 200 ]] && break
done
if [[ $alerts -gt 0 ]]; then pass "run (password from a file): ready, $alerts alerts produced"; else
    fail "run: no alert within 120 s: $(tail -n 5 "$work/run.log")"
fi
tailed=$("$bin/tillsyn" alerts tail --idle-secs 5 2>"$work/tail.log" | wc -l)
[[ $tailed -ge $alerts && $tailed -gt 0 ]] && pass "alerts tail: $tailed alerts" ||
    fail "alerts tail: $tailed lines for $alerts alerts: $(tail -n 3 "$work/tail.log")"
kill -TERM "$run_pid"
wait "$run_pid" && pass "run: SIGTERM, exit 0" || fail "run: exit $? after SIGTERM"
run_pid=

# Wrong credentials: a clear error and a non-zero exit, fast.
expect_refusal() { # name, expected message, command...
    local name=$1 needle=$2
    shift 2
    local started out code elapsed
    started=$(date +%s%N)
    set +e
    out=$(timeout 60 "$@" 2>&1 </dev/null)
    code=$?
    set -e
    elapsed=$((($(date +%s%N) - started) / 1000000))
    if [[ $code != 0 && $code != 124 && $elapsed -lt 15000 && $out == *"$needle"* ]]; then
        pass "$name: exit $code after $elapsed ms: $(grep -o "cannot use the brokers.*" <<<"$out" | head -n 1 | cut -c1-160)"
    else
        fail "$name: exit $code after $elapsed ms, expected '$needle': $(tail -n 3 <<<"$out")"
    fi
}
for case in password ca; do
    (
        if [[ $case == password ]]; then
            export TILLSYN_KAFKA__COMMON__SASL_PASSWORD=not-the-password
            needle="authentication with the brokers failed"
        else
            export TILLSYN_KAFKA__COMMON__SSL_CA_LOCATION=${TILLSYN_TLS_DIR:-$repo/out/tls}/untrusted-ca.crt
            needle="ssl.ca.location"
        fi
        export TILLSYN_TOPICS__TIME_REPORTS=other.time-reports.v1
        expect_refusal "wrong $case: topics create" "$needle" "$bin/tillsyn" topics create
        expect_refusal "wrong $case: produce" "$needle" "$bin/tillsyn" produce --records "$work/records.ndjson"
        expect_refusal "wrong $case: alerts tail" "$needle" "$bin/tillsyn" alerts tail --idle-secs 5
        expect_refusal "wrong $case: run" "$needle" "$bin/tillsyn" run
        [[ $rc == 0 ]]
    ) || rc=1
done
exit $rc
