"""A minimal reproduction of a tansu 0.6.0 fault, with the independent
client (confluent-kafka), not tillsyn: deleting one topic deletes every
topic (and their records) on the broker (sqlite storage).

    deploy/local/broker.sh start      # a broker you can empty
    ~/.cache/tillsyn/tools/pyenv/bin/python tests/tansu/delete_topics.py 127.0.0.1:9092

Creates two topics with a record each, deletes the first, and lists the
topics left; exits 1 when the second is gone too (Kafka keeps it).
Measured 2026-12-01: the second was gone, and so was every other topic
the broker held.
"""
import sys
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main() -> int:
    brokers = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
    admin = AdminClient({"bootstrap.servers": brokers})
    tag = uuid.uuid4().hex[:8]
    first, second = f"repro-delete-{tag}-a", f"repro-delete-{tag}-b"
    for future in admin.create_topics([NewTopic(first, 1, 1), NewTopic(second, 1, 1)]).values():
        future.result()
    producer = Producer({"bootstrap.servers": brokers})
    for topic in (first, second):
        producer.produce(topic, b"x")
    producer.flush(10)
    before = set(admin.list_topics(timeout=10).topics)
    print("before:", len(before), "topics, with", first, "and", second)
    admin.delete_topics([first], operation_timeout=10)[first].result()
    after = set(admin.list_topics(timeout=10).topics)
    print("after deleting", first + ":", len(after), "topics;", second, "still there:", second in after)
    return 0 if second in after else 1


if __name__ == "__main__":
    sys.exit(main())
