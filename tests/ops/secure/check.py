"""Checks a secured tansu (deploy/local/secure-broker.sh) with confluent-kafka.

Usage: check.py CLIENT_PROPERTIES TANSU_PORT [--reauth]
  CLIENT_PROPERTIES  librdkafka properties of a client that must work
                     (written by secure-broker.sh: SASL_SSL, SCRAM, CA)
  TANSU_PORT         tansu's own (plaintext) port behind the TLS terminator
  --reauth           also run 75 s through tansu's SASL re-authentication

Each case prints one line: PASS/FAIL, what happened and after how long.
A negative case passes when the client reports the expected error through
error_cb within its deadline; the first error with code _AUTHENTICATION or
_SSL ends it at once (what a service should do: fail fast on those, since
librdkafka itself retries them forever and flags none of them fatal).
Exits 1 if any case failed.
"""

import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

SECURITY = {KafkaError._AUTHENTICATION, KafkaError._SSL}
failed = []


def report(name, ok, what, started):
    print(f"{'PASS' if ok else 'FAIL'} {name:<22} {time.monotonic() - started:6.2f}s  {what}", flush=True)
    if not ok:
        failed.append(name)


def first_error(conf, deadline_s):
    """Polls a producer until an _AUTHENTICATION/_SSL error or the deadline;
    returns (security error or None, every error seen, seconds)."""
    seen = []
    t0 = time.monotonic()
    p = Producer(dict(conf, error_cb=lambda e: seen.append((time.monotonic() - t0, e)), log_level=0))
    p.produce("secure-check-nonexistent", b"x")  # makes it connect at once
    while time.monotonic() - t0 < deadline_s:
        p.poll(0.05)
        hit = next((e for _, e in seen if e.code() in SECURITY), None)
        if hit:
            return hit, seen, time.monotonic() - t0
    p.purge()
    return None, seen, time.monotonic() - t0


def expect_error(name, conf, code, text, deadline_s=5):
    t0 = time.monotonic()
    hit, seen, took = first_error(conf, deadline_s)
    if code in SECURITY:
        ok = hit is not None and hit.code() == code and text in hit.str()
        what = f"{hit.name()}: {hit.str()}" if hit else f"no security error; saw {[e.name() for _, e in seen]}"
    else:  # only connection-level errors expected, no security error
        first = next((t for t, e in seen if e.code() == code), None)
        ok = hit is None and first is not None
        what = (f"no _AUTHENTICATION/_SSL; first {KafkaError(code).name()} after {first or 0:.2f}s"
                f" ('{next((e.str() for _, e in seen if e.code() == code), '')}')")
    report(name, ok, what, t0)


def round_trip(conf, n=100):
    t0 = time.monotonic()
    topic = f"secure-check-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(dict(conf, log_level=0))
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)
    p = Producer(dict(conf, log_level=0))
    for i in range(n):
        p.produce(topic, str(i).encode())
    left = p.flush(10)
    c = Consumer(dict(conf, log_level=0, **{"group.id": topic, "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    got = []
    while len(got) < n and time.monotonic() - t0 < 30:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(int(m.value()))
    c.close()
    report("produce-consume", left == 0 and got == list(range(n)),
           f"topic {topic}: produced {n - left}/{n}, consumed {len(got)} in order", t0)
    return topic


def reauth(conf, topic, seconds=75):
    """tansu 0.6.0 grants a 60 s SASL session; librdkafka re-authenticates at
    90 % of it, tansu answers the second SaslHandshake with
    UNSUPPORTED_SASL_MECHANISM (tansu-auth handshake.rs: the session is no
    longer in its Server stage) and the client reconnects."""
    t0 = time.monotonic()
    topic += "-reauth"
    admin = AdminClient(dict(conf, log_level=0))  # kept alive until the result
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)
    errors = []
    on_err = lambda e: errors.append((round(time.monotonic() - t0, 1), e.name(), e.str()))  # noqa: E731
    p = Producer(dict(conf, error_cb=on_err, log_level=0))
    c = Consumer(dict(conf, error_cb=on_err, log_level=0,
                      **{"group.id": topic, "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    sent = got = 0
    while time.monotonic() - t0 < seconds:
        p.produce(topic, b"r")
        sent += 1
        p.poll(0)
        m = c.poll(0.2)
        if m is not None and not m.error():
            got += 1
    p.flush(10)
    while (m := c.poll(2)) is not None:
        got += not m.error()
    c.close()
    auth = [e for e in errors if e[1] == "_AUTHENTICATION"]
    ok = bool(auth) and all("Unsupported SASL mechanism" in e[2] for e in auth) and got == sent
    report("reauth-at-54s", ok,
           f"{len(auth)} _AUTHENTICATION at {sorted({e[0] for e in auth})} s "
           f"('{auth[0][2] if auth else ''}'); records sent {sent}, consumed {got}", t0)


def main():
    props, tansu_port = sys.argv[1], sys.argv[2]
    conf = dict(line.rstrip("\n").split("=", 1) for line in open(props) if "=" in line)
    ca = conf["ssl.ca.location"]
    untrusted = ca.rsplit("/", 1)[0] + "/untrusted-ca.crt"

    topic = round_trip(conf)
    expect_error("wrong-password", dict(conf, **{"sasl.password": "wrong"}),
                 KafkaError._AUTHENTICATION, "invalid-proof")
    expect_error("unknown-user", dict(conf, **{"sasl.username": "nobody"}),
                 KafkaError._AUTHENTICATION, "unknown-user")
    expect_error("untrusted-ca", dict(conf, **{"ssl.ca.location": untrusted}),
                 KafkaError._SSL, "certificate verify failed")
    # What tansu lacks: SASL/PLAIN (rsasl built without "plain").
    expect_error("plain-not-offered", dict(conf, **{"sasl.mechanisms": "PLAIN"}),
                 KafkaError._AUTHENTICATION, "PLAIN mechanism handshake failed")
    # A client without SASL: tansu closes the connection, no auth error.
    plain_tls = {k: v for k, v in conf.items() if not k.startswith("sasl.")}
    expect_error("no-sasl", dict(plain_tls, **{"security.protocol": "SSL"}),
                 KafkaError._ALL_BROKERS_DOWN, "")
    # TLS straight to tansu: no TLS there, the handshake stalls until
    # socket.connection.setup.timeout.ms (default 30 s; 3 s here).
    expect_error("tls-to-tansu-itself",
                 dict(conf, **{"bootstrap.servers": f"127.0.0.1:{tansu_port}",
                               "socket.connection.setup.timeout.ms": "3000"}),
                 KafkaError._ALL_BROKERS_DOWN, "", deadline_s=5)
    if "ssl.certificate.location" in conf:  # TILLSYN_MTLS=1: the terminator wants a client cert
        no_cert = {k: v for k, v in conf.items() if k not in ("ssl.certificate.location", "ssl.key.location")}
        # TLS 1.3: the client deems the handshake done before the server
        # checks its certificate; it sees "SSL connection closed by peer".
        expect_error("mtls-no-client-cert", no_cert, KafkaError._ALL_BROKERS_DOWN, "")
    if "--reauth" in sys.argv:
        reauth(conf, topic)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
