"""A minimal reproduction of a tansu 0.6.0 limit, with the independent
client (confluent-kafka), not tillsyn: compaction ignores the topic's
`min.compaction.lag.ms`.

    deploy/local/broker.sh start
    ~/.cache/tillsyn/tools/pyenv/bin/python tests/tansu/compaction_lag.py 127.0.0.1:9092

Creates a topic with `cleanup.policy=compact` and `min.compaction.lag.ms`
of a year, writes two versions of one key, and reads the topic every 10
seconds for up to 11 minutes (tansu compacts in its maintenance, at start
and every 10 minutes). Kafka keeps both versions for a year: exits 0 when
both are still there at the end; exits 1 as soon as the first is gone.
Measured 2026-12-02: the first version was gone 144 s after it was
written, at the broker's next maintenance (exit 1).
"""
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

YEAR_MS = 365 * 86_400 * 1000


def versions(brokers: str, topic: str) -> list:
    consumer = Consumer(
        {"bootstrap.servers": brokers, "group.id": f"repro-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.assign([TopicPartition(topic, 0, low)])
    found = []
    deadline = time.time() + 20
    while time.time() < deadline and (not found or found[-1][0] < high - 1):
        message = consumer.poll(1.0)
        if message is None or message.error():
            continue
        found.append((message.offset(), message.value().decode()))
    consumer.close()
    return found


def main() -> int:
    brokers = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
    admin = AdminClient({"bootstrap.servers": brokers})
    topic = f"repro-compaction-lag-{uuid.uuid4().hex[:8]}"
    config = {"cleanup.policy": "compact", "min.compaction.lag.ms": str(YEAR_MS)}
    for future in admin.create_topics([NewTopic(topic, 1, 1, config=config)]).values():
        future.result()
    producer = Producer({"bootstrap.servers": brokers})
    for version in ("v1", "v2"):
        producer.produce(topic, key=b"fact-1", value=version.encode())
        producer.flush(10)
    print(topic, "with", config, "holds", versions(brokers, topic), flush=True)
    start = time.time()
    while time.time() - start < 660:
        time.sleep(10)
        now = versions(brokers, topic)
        if [v for _, v in now] != ["v1", "v2"]:
            print(f"after {time.time() - start:.0f} s it holds {now}: the first version was compacted away", flush=True)
            return 1
    print("after 660 s both versions are still there, as min.compaction.lag.ms asks", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
