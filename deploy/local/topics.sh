#!/usr/bin/env bash
# Creates tillsyn's topics on the local broker when they are missing, through
# the Kafka AdminClient of confluent-kafka (tansu creates no topic on its own).
# Idempotent: existing topics are left as they are (a partition count that
# differs from the wanted one is reported, not changed).
# Usage: deploy/local/topics.sh
# Env: TILLSYN_BOOTSTRAP (default 127.0.0.1:$TILLSYN_BROKER_PORT, port 9092)
#      TILLSYN_PYTHON    python with confluent-kafka (default: the venv of
#                        deploy/local/install-test-client.sh, installed if missing)
#      topic names and partition counts (defaults in brackets):
#      TILLSYN_TOPIC_TIME_REPORTS  [tillsyn.time-reports.v1]  TILLSYN_TOPIC_TIME_REPORTS_PARTITIONS [3]
#      TILLSYN_TOPIC_INVOICES      [tillsyn.invoices.v1]      TILLSYN_TOPIC_INVOICES_PARTITIONS     [3]
#      TILLSYN_TOPIC_ALERTS        [tillsyn.alerts.v1]        TILLSYN_TOPIC_ALERTS_PARTITIONS       [3]
#      TILLSYN_TOPIC_DEAD_LETTER   [tillsyn.dead-letter.v1]   TILLSYN_TOPIC_DEAD_LETTER_PARTITIONS  [1]
#      TILLSYN_TOPIC_LATE_EVENTS   [tillsyn.late-events.v1]   TILLSYN_TOPIC_LATE_EVENTS_PARTITIONS  [1]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bootstrap=${TILLSYN_BOOTSTRAP:-127.0.0.1:${TILLSYN_BROKER_PORT:-9092}}
py=${TILLSYN_PYTHON:-}
if [[ -z $py ]]; then
    py=$("$here/install-test-client.sh" | tail -n 1)
fi

"$py" - "$bootstrap" \
    "${TILLSYN_TOPIC_TIME_REPORTS:-tillsyn.time-reports.v1}" "${TILLSYN_TOPIC_TIME_REPORTS_PARTITIONS:-3}" \
    "${TILLSYN_TOPIC_INVOICES:-tillsyn.invoices.v1}" "${TILLSYN_TOPIC_INVOICES_PARTITIONS:-3}" \
    "${TILLSYN_TOPIC_ALERTS:-tillsyn.alerts.v1}" "${TILLSYN_TOPIC_ALERTS_PARTITIONS:-3}" \
    "${TILLSYN_TOPIC_DEAD_LETTER:-tillsyn.dead-letter.v1}" "${TILLSYN_TOPIC_DEAD_LETTER_PARTITIONS:-1}" \
    "${TILLSYN_TOPIC_LATE_EVENTS:-tillsyn.late-events.v1}" "${TILLSYN_TOPIC_LATE_EVENTS_PARTITIONS:-1}" <<'PY'
import sys
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, rest = sys.argv[1], sys.argv[2:]
wanted = {rest[i]: int(rest[i + 1]) for i in range(0, len(rest), 2)}
admin = AdminClient({"bootstrap.servers": bootstrap})
try:
    existing = admin.list_topics(timeout=10).topics
except KafkaException as e:
    sys.exit(f"topics: broker {bootstrap} not reachable: {e}")

failed = False
for name, n in wanted.items():
    if name in existing:
        have = len(existing[name].partitions)
        note = "" if have == n else f" (wanted {n}; left as it is)"
        print(f"topics: {name} exists, {have} partitions{note}", file=sys.stderr)
missing = [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in wanted.items() if t not in existing]
for name, fut in (admin.create_topics(missing, operation_timeout=10, request_timeout=15).items() if missing else []):
    try:
        fut.result()
        print(f"topics: {name} created, {wanted[name]} partitions", file=sys.stderr)
    except KafkaException as e:
        if e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:  # created concurrently
            print(f"topics: {name} exists", file=sys.stderr)
        else:
            print(f"topics: {name} failed: {e}", file=sys.stderr)
            failed = True
sys.exit(1 if failed else 0)
PY
