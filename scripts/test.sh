#!/usr/bin/env bash
# The test command of the README: unit, property and integration tests of
# the three crates (the core's and the service's dependency trees checked first), the service against a real Kafka-protocol broker (tansu on
# 127.0.0.1, installed and started here if needed, stopped again after), then
# the case store against a real PostgreSQL, then
# the detection targets on the simulated evaluation scenario (5 seeds,
# release build), which fails the run if they are missed, then the
# operations checks (rules, dashboards, manifests, a secured broker) and
# the case officer's view in a real browser.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p out

# The independent Kafka client of tests/kafka.rs (Python confluent-kafka in
# a venv under ~/.cache/tillsyn/tools; idempotent), and a broker, unless one
# is already running.
TILLSYN_PYTHON=$(deploy/local/install-test-client.sh | tail -n 1)
export TILLSYN_PYTHON
# What this script started, it stops on exit; what was running stays.
started=()
cleanup() {
  local what
  for what in "${started[@]}"; do
    deploy/local/"$what".sh stop >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT
if ! deploy/local/broker.sh status >/dev/null 2>&1; then
  deploy/local/install-tansu.sh >/dev/null
  deploy/local/broker.sh start
  started+=(broker)
fi
# The case store's PostgreSQL (tests/case_store.rs): Debian's postgresql,
# installed and started by the script (idempotent).
if ! deploy/local/postgres.sh status >/dev/null 2>&1; then
  deploy/local/postgres.sh start
  started+=(postgres)
fi

# The core crate stays pure: no Kafka client, async runtime or HTTP in its
# dependency tree (dev-dependencies aside).
forbidden=$(cargo tree --locked -p tillsyn-core -e normal,build --prefix none | grep -E '^(rdkafka|tokio|axum|hyper|metrics|tracing)[ -]' || true)
if [ -n "$forbidden" ]; then
  echo "tillsyn-core must not depend on: $forbidden" >&2
  exit 1
fi
echo "tillsyn-core: no rdkafka, tokio, HTTP or metrics in its dependencies"

# The simulator and the evaluator stay out of the service binary
# (tillsyn-sim is a dev-dependency of the service, for its tests only).
if cargo tree --locked -p tillsyn -e normal --prefix none | grep -q '^tillsyn-sim '; then
  echo "the service (tillsyn) must not depend on tillsyn-sim outside its tests" >&2
  exit 1
fi
echo "tillsyn: no tillsyn-sim in its dependencies"

# The broker's side of a failure: is it still running, its last errors
# and warnings, the last lines it wrote (a panic is neither), and the
# kernel's word if it was killed.
broker_report() {
  local log=${TILLSYN_STATE_DIR:-out/broker}/tansu.log
  echo "== the broker now: $(deploy/local/broker.sh status 2>&1 | tr '\n' ' ')"
  if [ -f "$log" ]; then
    echo "== the end of the broker's errors and warnings ($log)"
    sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E ' (ERROR|WARN) ' | grep -v -E 'TopicAlreadyExists|BrokenPipe' | tail -n 40 || true
    echo "== broken pipes (clients that left mid-answer): $(grep -c BrokenPipe "$log" || true)"
    echo "== the last lines of $log"
    sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -v BrokenPipe | tail -n 15 || true
  fi
  echo "== memory: $(free -m | awk '/^Mem:/ {print $3 " MB used, " $7 " MB available"}')"
  dmesg 2>/dev/null | grep -i -E 'out of memory|oom-kill|killed process' | tail -n 5 || true
}
cargo test --locked --workspace --all-targets --features tillsyn/kafka-integration-tests || {
  broker_report
  exit 1
}
CHECK_TARGETS=1 OUT=out/test-evaluation scripts/evaluate.sh 1 2 3 4 5 > out/test-evaluation.md 2>&1 || {
  cat out/test-evaluation.md
  exit 1
}
tail -n 1 out/test-evaluation.md

# Operations (README "Operations"), with the release binaries the
# evaluation built: Prometheus rules and Alertmanager routing (promtool,
# amtool), every dashboard panel against a real Prometheus scraping a live
# run, the Kubernetes manifests against the schemas, and tillsyn over a
# secured broker (TLS + SASL/SCRAM).
bash deploy/prometheus/check.sh
tests/ops/run_dashboard_check.sh
tests/ops/check_k8s.sh
tests/ops/secure/run.sh
tests/ops/secure/tillsyn.sh
# The case officer's view in a real headless browser (Debian chromium,
# installed when missing) over the real pipeline; screenshots to docs/img.
tests/ops/case_view/run.sh
