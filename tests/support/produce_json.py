"""Produces a tillsyn events file (NDJSON, one proto3-JSON `Event` per line,
as `tillsyn simulate --out events.ndjson` writes) to the input topics, as an
independent client would: the confluent-kafka package (its own librdkafka,
none of tillsyn's code), keyed by provider id with the Java client's murmur2
partitioner, with a `content-type: application/json` header.

Every other record is the bare message instead of the envelope, and every
third carries a field the contract does not have (a producer on a newer
contract). A source heartbeat goes, in its envelope, to every partition of
both topics. Prints the number of records produced (each heartbeat copy
counted).

Usage: produce_json.py BOOTSTRAP EVENTS_FILE TIME_REPORT_TOPIC INVOICE_TOPIC
"""
import json
import sys

from confluent_kafka import Producer

bootstrap, events, time_reports, invoices = sys.argv[1:5]
producer = Producer(
    {
        "bootstrap.servers": bootstrap,
        "partitioner": "murmur2_random",
        "enable.idempotence": True,
        "linger.ms": 20,
    }
)
failed = []


def delivered(err, _msg):
    if err is not None:
        failed.append(str(err))


def partitions(topic):
    return len(producer.list_topics(topic, timeout=30).topics[topic].partitions)


count = 0
with open(events, encoding="utf-8") as lines:
    for i, line in enumerate(lines):
        event = json.loads(line)
        ((kind, body),) = event.items()
        if kind == "heartbeat":
            for topic in (time_reports, invoices):
                for partition in range(partitions(topic)):
                    producer.produce(
                        topic,
                        partition=partition,
                        value=json.dumps(event).encode(),
                        headers=[("content-type", b"application/json")],
                        on_delivery=delivered,
                    )
                    count += 1
            continue
        topic = {"timeReport": time_reports, "invoice": invoices}[kind]
        value = event if i % 2 == 0 else body
        if i % 3 == 0:
            value = dict(value, addedInALaterVersion={"note": "ignored by older consumers"})
        producer.produce(
            topic,
            key=body["providerId"].encode(),
            value=json.dumps(value).encode(),
            headers=[("content-type", b"application/json")],
            on_delivery=delivered,
        )
        producer.poll(0)
        count += 1
left = producer.flush(120)
if left or failed:
    sys.exit(f"{left} records not delivered, {len(failed)} failed: {failed[:3]}")
print(count)
