"""A minimal reproduction of a tansu 0.6.0 fault, with the independent
client (confluent-kafka), not tillsyn: a consumer group that exists and has
a member cannot be described (sqlite storage). tansu-storage 0.6.0
`lite.rs` `describe_groups` turns the stored detail into a JSON string
value and then asks serde for a `GroupDetail` struct from it ("invalid
type: string ..., expected struct GroupDetail" in the broker's log); the
broker drops the connection instead of answering. Measured 2026-12-02:
"not described: ... Local: Broker transport failure", and that error
line in the broker's log.

    deploy/local/broker.sh start
    ~/.cache/tillsyn/tools/pyenv/bin/python tests/tansu/describe_groups.py 127.0.0.1:9092

Creates a topic, joins a group on it until the member has its partition,
and describes the group; exits 1 when that fails (Kafka describes it:
state Stable, one member). The broker tests' diagnosis of a group that
does not catch up asks the same and prints the answer, or this failure.
"""
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic


def main() -> int:
    brokers = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
    admin = AdminClient({"bootstrap.servers": brokers})
    tag = uuid.uuid4().hex[:8]
    topic, group = f"repro-describe-{tag}", f"repro-describe-{tag}"
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": group, "session.timeout.ms": 45000})
    consumer.subscribe([topic])
    deadline = time.monotonic() + 60
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.5)
    print("member assigned:", [p.partition for p in consumer.assignment()])
    try:
        described = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
        print("described:", described.state, len(described.members), "member(s)")
        ok = len(described.members) == 1
    except KafkaException as e:
        print("not described:", e)
        ok = False
    consumer.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
