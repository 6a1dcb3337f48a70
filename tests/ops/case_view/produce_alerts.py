"""Produces the case view test's synthetic alerts to an alert topic, as the
service would (keyed by provider id, the Java client's murmur2
partitioner), in proto3 JSON with a `content-type: application/json`
header, through the confluent-kafka package (an independent client).

No personal data: providers (organisation numbers) and municipality codes
only, as in real alerts; the event ids are made up. Each explanation in
Swedish (`explanation`, as with core.language = "sv") and English
(`explanations`).

Phases:
  initial  seven episodes: six open (two critical, two high, a medium, a
           low) and one resolved, ten alerts
  late     what arrives while the pages are open: a new critical episode,
           older than every other (it must come first in the list), and a
           third alert of episode ep-a1 (its page must show it)

Usage: produce_alerts.py BOOTSTRAP TOPIC initial|late
Prints the number of alerts produced.
"""
import json
import sys

from confluent_kafka import Producer

UMEA, STOCKHOLM, GOTEBORG = "2480", "0180", "1480"


def alert(episode, revision, status, severity, rule, pattern, provider, municipality, detected, window,
          observed, expected, explanation, evidence, configuration_version=0):
    return {
        "alertId": f"{episode}-r{revision}",
        "episodeId": episode,
        "ruleId": rule,
        "ruleVersion": 1,
        "pattern": pattern,
        "severity": f"SEVERITY_{severity.upper()}",
        "score": round(1.5 + revision * 1.25 + len(evidence) / 10, 2),
        "providerId": provider,
        "municipalityCode": municipality,
        "windowStart": window[0],
        "windowEnd": window[1],
        "observed": {"value": observed[0], "unit": observed[1]},
        "expected": {"value": expected[0], "unit": expected[1]},
        # As the service writes it with core.language = "sv" (the default):
        # the Swedish text, and both languages in the map.
        "explanation": explanation[0],
        "explanations": {"sv": explanation[0], "en": explanation[1]},
        "evidenceEventIds": evidence,
        "status": f"ALERT_STATUS_{status.upper()}",
        "detectedAt": detected,
        "revision": revision,
        "configurationVersion": configuration_version,
    }


# Swedish months: January and February 2026, local midnight to midnight.
JANUARY = ("2025-12-31T23:00:00Z", "2026-01-31T23:00:00Z")
FEBRUARY = ("2026-01-31T23:00:00Z", "2026-02-28T23:00:00Z")

INITIAL = [
    alert("ep-a1", 0, "opened", "high", "invoiced-above-performed", 1, "556087-4561", UMEA,
          "2026-02-03T07:00:00Z", JANUARY, (352.5, "hours"), (320.0, "hours"),
          ("Faktura inv-000412 debiterar 352,5 timmar personlig omvårdnad för januari 2026; tidrapporterna för "
           "samma brukare och månad summerar till 320 timmar.",
           "Invoice inv-000412 bills 352.5 hours of personal care for January 2026; the time reports of the "
           "same clients and month add up to 320 hours."),
          ["inv-000412", "tr-000101", "tr-000102"]),
    alert("ep-a1", 1, "escalated", "critical", "invoiced-above-performed", 1, "556087-4561", UMEA,
          "2026-03-03T07:00:00Z", FEBRUARY, (412.5, "hours"), (320.0, "hours"),
          ("Faktura inv-000498 debiterar 412,5 timmar personlig omvårdnad för februari 2026; tidrapporterna för "
           "samma brukare och månad summerar till 320 timmar.",
           "Invoice inv-000498 bills 412.5 hours of personal care for February 2026; the time reports of the "
           "same clients and month add up to 320 hours."),
          ["inv-000498", "tr-000201", "tr-000202", "tr-000203"], configuration_version=2),
    alert("ep-b2", 0, "opened", "critical", "staff-double-booking", 2, "556214-0093", STOCKHOLM,
          "2026-02-10T09:15:00Z", ("2026-02-10T07:00:00Z", "2026-02-10T09:00:00Z"), (95.0, "minutes"),
          (0.0, "minutes"),
          ("En medarbetare var incheckad hos två brukare samtidigt i 95 minuter.",
           "One staff member was checked in at two clients' homes at once for 95 minutes."),
          ["tr-000311", "tr-000312"]),
    alert("ep-c3", 0, "opened", "high", "phantom-clients", 7, "556087-4561", UMEA,
          "2026-01-20T06:00:00Z", JANUARY, (7.0, "clients"), (0.0, "clients"),
          ("Faktura inv-000377 debiterar 7 brukare som saknar tidrapporter under perioden.",
           "Invoice inv-000377 bills 7 clients with no time report in the period."),
          ["inv-000377"]),
    alert("ep-d4", 0, "opened", "medium", "night-visits-private-provider", 12, "559001-2231", GOTEBORG,
          "2026-01-28T05:30:00Z", JANUARY, (9.0, "visits"), (0.0, "visits"),
          ("9 besök mellan kl. 22.00 och 06.00 av en privat utförare, utanför valfrihetens tider.",
           "9 visits between 22:00 and 06:00 by a private provider, outside the customer-choice hours."),
          ["tr-000401", "tr-000402", "tr-000403"]),
    alert("ep-d4", 1, "escalated", "high", "night-visits-private-provider", 12, "559001-2231", GOTEBORG,
          "2026-02-20T05:30:00Z", FEBRUARY, (23.0, "visits"), (0.0, "visits"),
          ("23 besök mellan kl. 22.00 och 06.00 av en privat utförare, utanför valfrihetens tider.",
           "23 visits between 22:00 and 06:00 by a private provider, outside the customer-choice hours."),
          ["tr-000451", "tr-000452", "tr-000453", "tr-000454"]),
    alert("ep-e5", 0, "opened", "medium", "rounded-visits", 6, "556214-0093", STOCKHOLM,
          "2026-01-15T12:00:00Z", JANUARY, (0.42, "share"), (0.1, "share"),
          ("42 % av utförarens besök varar exakt den planerade tiden; 10 % är vanligt.",
           "42% of the provider's visits last exactly their planned time; 10% is usual."),
          ["tr-000501", "tr-000502"]),
    alert("ep-f6", 0, "opened", "low", "manual-registration-share", 5, "559001-2231", UMEA,
          "2026-01-10T08:00:00Z", JANUARY, (0.31, "share"), (0.12, "share"),
          ("31 % av utförarens registreringar är manuella eller ändrade; medianen för jämförbara utförare är 12 %.",
           "31% of the provider's registrations are manual or edited; its peers' median is 12%."),
          ["tr-000601"]),
    alert("ep-g7", 0, "opened", "high", "duplicate-billing", 8, "556087-4561", UMEA,
          "2026-01-05T10:00:00Z", JANUARY, (2.0, "lines"), (1.0, "lines"),
          ("Samma brukare, insats och period debiteras på två fakturarader.",
           "The same client, service and period are billed on two invoice lines."),
          ["inv-000301", "inv-000302"]),
    alert("ep-g7", 1, "resolved", "low", "duplicate-billing", 8, "556087-4561", UMEA,
          "2026-01-25T10:00:00Z", JANUARY, (1.0, "lines"), (1.0, "lines"),
          ("Den dubbla fakturaraden har krediterats.", "The duplicate invoice line was credited."),
          ["inv-000301", "inv-000302", "inv-000330"]),
]

LATE = [
    alert("ep-h8", 0, "opened", "critical", "impossible-travel", 4, "556300-1180", STOCKHOLM,
          "2026-01-08T08:46:05Z", ("2026-01-08T05:39:00Z", "2026-01-08T06:36:09Z"), (383.1, "km/h"),
          (80.0, "km/h"),
          ("En medarbetares två besök i följd ligger 21,5 km från varandra med 3 minuter emellan: det skulle "
           "krävas 383 km/h.",
           "One staff member's consecutive visits are 21.5 km apart with 3 minutes between them: 383 km/h "
           "would be needed."),
          ["tr-000801", "tr-000802"]),
    alert("ep-a1", 2, "escalated", "critical", "invoiced-above-performed", 1, "556087-4561", UMEA,
          "2026-03-10T07:00:00Z", FEBRUARY, (440.0, "hours"), (320.0, "hours"),
          ("Den rättade fakturan inv-000512 debiterar 440 timmar personlig omvårdnad för februari 2026; "
           "tidrapporterna summerar till 320 timmar.",
           "A corrected invoice inv-000512 bills 440 hours of personal care for February 2026; the time reports "
           "add up to 320 hours."),
          ["inv-000512", "tr-000201", "tr-000202", "tr-000203"], configuration_version=2),
]


def main():
    bootstrap, topic, phase = sys.argv[1:4]
    alerts = {"initial": INITIAL, "late": LATE}[phase]
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )
    failed = []

    def delivered(err, _msg):
        if err is not None:
            failed.append(str(err))

    for a in alerts:
        producer.produce(
            topic,
            key=a["providerId"].encode(),
            value=json.dumps(a).encode(),
            headers=[("content-type", b"application/json")],
            on_delivery=delivered,
        )
    remaining = producer.flush(30)
    if failed or remaining:
        sys.exit(f"produce failed: {failed or remaining}")
    print(len(alerts))


if __name__ == "__main__":
    main()
