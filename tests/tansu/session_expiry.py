"""A minimal reproduction of a tansu 0.6.0 consumer-group fault, with the
independent client (confluent-kafka), not tillsyn.

One consumer alone in a group with a 6 s session; the broker is stopped
(SIGSTOP) for 12 s and resumed. librdkafka reports the session lost and
rejoins. Kafka gives the only member its partitions back; tansu 0.6.0 was
seen to give it none, for as long as this waits (90 s).

    deploy/local/broker.sh start
    ~/.cache/tillsyn/tools/pyenv/bin/python tests/tansu/session_expiry.py out/broker/tansu.pid

Prints the rebalance callbacks and the assignment before and after the
stall; exits 1 when the member is left without partitions.
"""
import os
import signal
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

BROKERS = "127.0.0.1:9092"


def main() -> int:
    broker_pid = int(open(sys.argv[1]).read())
    topic = "repro-session-" + uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": BROKERS})
    for f in admin.create_topics([NewTopic(topic, 3, 1)]).values():
        f.result()
    producer = Producer({"bootstrap.servers": BROKERS})
    for i in range(30):
        producer.produce(topic, key=str(i), value=b"x")
    producer.flush()

    events = []
    start = time.time()

    def note(kind):
        return lambda _c, ps: events.append((kind, round(time.time() - start, 1), [p.partition for p in ps]))

    consumer = Consumer({"bootstrap.servers": BROKERS, "group.id": topic, "session.timeout.ms": 6000,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic], on_assign=note("assign"), on_revoke=note("revoke"), on_lost=note("lost"))
    while time.time() - start < 10:
        consumer.poll(0.2)
    before = [p.partition for p in consumer.assignment()]
    print("before the stall:", events, "assignment", before)
    os.kill(broker_pid, signal.SIGSTOP)
    time.sleep(12)
    os.kill(broker_pid, signal.SIGCONT)
    resumed = time.time()
    while time.time() - resumed < 90:
        consumer.poll(0.2)
    after = [p.partition for p in consumer.assignment()]
    print("after:", events, "assignment 90 s after the stall", after)
    consumer.close()
    return 0 if after == before else 1


if __name__ == "__main__":
    sys.exit(main())
