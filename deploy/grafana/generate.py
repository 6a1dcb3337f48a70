#!/usr/bin/env python3
"""Writes tillsyn's Grafana dashboards, deploy/grafana/dashboards/*.json.

The JSON files are generated from the panel lists below (titles,
descriptions, queries, units, sizes) so that ids, grid positions,
datasources and the instance filter are right by construction. Edit this
file and run it again; tests/ops/check_dashboards.py fails when the JSON
files are not what this script writes.

Usage: python3 deploy/grafana/generate.py [OUT_DIR]
  OUT_DIR  where to write the JSON files (default: deploy/grafana/dashboards)

Every query filters on `instance=~"$instance"` (the `I` placeholder
below). Metric names, types and labels: README.md, "Metrics".
"""
import json
import os
import sys

# The instance filter every selector carries.
I = 'instance=~"$instance"'
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH = 24


def target(expr, legend="", instant=False, fmt="time_series"):
    return {"expr": expr, "legendFormat": legend, "instant": instant, "range": not instant, "format": fmt}


def panel(kind, title, description, targets, unit, w, h, **extra):
    """One panel; `kind` is the Grafana panel type."""
    return dict(kind=kind, title=title, description=description, targets=targets, unit=unit, w=w, h=h, **extra)


def row(title):
    return dict(kind="row", title=title)


READY_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "0": {"text": "not ready", "color": "red", "index": 0},
            "1": {"text": "ready", "color": "green", "index": 1},
        },
    }
]


def layout(items):
    """Grafana panels from the lists above: rows full width, the other
    panels left to right, wrapping to a new line when the next does not
    fit in the 24 columns."""
    panels, x, y, line_h, next_id = [], 0, 0, 0, 1
    for item in items:
        if item["kind"] == "row":
            if x:
                y, x, line_h = y + line_h, 0, 0
            panels.append(
                {
                    "type": "row",
                    "id": next_id,
                    "title": item["title"],
                    "collapsed": False,
                    "gridPos": {"x": 0, "y": y, "w": GRID_WIDTH, "h": 1},
                    "panels": [],
                }
            )
            next_id += 1
            y += 1
            continue
        if x + item["w"] > GRID_WIDTH:
            y, x, line_h = y + line_h, 0, 0
        panels.append(build(item, next_id, x, y))
        next_id += 1
        x += item["w"]
        line_h = max(line_h, item["h"])
    return panels


def build(item, panel_id, x, y):
    kind = item["kind"]
    defaults = {"unit": item["unit"]}
    if "mappings" in item:
        defaults["mappings"] = item["mappings"]
    for key in ("decimals", "max"):
        if key in item:
            defaults[key] = item[key]
    defaults["thresholds"] = item.get(
        "thresholds", {"mode": "absolute", "steps": [{"color": "green", "value": None}]}
    )
    if kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": item.get("draw", "line"),
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": item.get("stack", "none"), "group": "A"},
        }
        defaults["min"] = item.get("min", 0)
    if kind in ("stat", "bargauge"):
        defaults["color"] = {"mode": item.get("color", "thresholds")}
    options = {
        "timeseries": {
            "legend": {"displayMode": "table", "placement": "right", "showLegend": True, "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "stat": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background" if "mappings" in item or "thresholds" in item else "value",
            "graphMode": item.get("graph", "none"),
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        },
        "bargauge": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "displayMode": "gradient",
            "orientation": "horizontal",
            "showUnfilled": True,
            "minVizHeight": 10,
            "minVizWidth": 0,
        },
        "table": {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""}},
    }[kind]
    targets = []
    for ref, t in zip("ABCDEFGH", item["targets"]):
        targets.append(dict(t, refId=ref, datasource=DATASOURCE))
    result = {
        "type": kind,
        "id": panel_id,
        "title": item["title"],
        "description": item["description"],
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": item["w"], "h": item["h"]},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": targets,
    }
    if kind == "table":
        result["transformations"] = [
            {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": {"Value": item["value_name"]}}}
        ]
    return result


def dashboard(uid, title, description, tags, items, refresh="30s", time_from="now-6h"):
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [
            {
                "title": "tillsyn dashboards",
                "type": "dashboards",
                "tags": ["tillsyn"],
                "asDropdown": False,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "panels": layout(items),
        "refresh": refresh,
        "schemaVersion": 39,
        "tags": tags,
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "includeAll": False,
                    "multi": False,
                    "options": [],
                    "refresh": 1,
                    "regex": "",
                    "skipUrlSync": False,
                },
                {
                    "name": "instance",
                    "label": "Instance",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "definition": "label_values(tillsyn_service_ready, instance)",
                    "query": {
                        "qryType": 1,
                        "query": "label_values(tillsyn_service_ready, instance)",
                        "refId": "PrometheusVariableQueryEditor-VariableQuery",
                    },
                    "current": {},
                    "hide": 0,
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": True,
                    "options": [],
                    "refresh": 2,
                    "regex": "",
                    "skipUrlSync": False,
                    "sort": 1,
                },
            ]
        },
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


def quantile(q):
    return f"histogram_quantile({q}, sum by (le) (rate(tillsyn_record_processing_seconds_bucket{{{I}}}[$__rate_interval])))"


OPERATIONS = [
    row("Service health"),
    panel(
        "stat",
        "Readiness per instance",
        "Whether each tillsyn instance answers /readyz with 200 (tillsyn_service_ready): it has partitions "
        "assigned and every assigned partition is fetched with a consumer lag of at most 1,000 records. "
        "Normal: every instance 'ready'. 'not ready' for a minute after a start or a rebalance is expected "
        "(the partitions' state is being restored and the backlog read); longer means the instance cannot "
        "keep up or cannot reach Kafka: look at its log and at the consumer lag below. An instance missing "
        "here is not being scraped (down, or Prometheus cannot reach it).",
        [target(f"max by (instance) (tillsyn_service_ready{{{I}}})", "{{instance}}")],
        "none",
        8,
        5,
        mappings=READY_MAPPINGS,
        thresholds={"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}]},
    ),
    panel(
        "stat",
        "Assigned partitions per instance",
        "Topic partitions (of both input topics) the consumer group gave each instance "
        "(tillsyn_assigned_partitions). Normal: the input topics' partitions spread over the instances, "
        "none with 0 while others have several. An instance with 0 is idle: more instances than partitions, "
        "or it is stuck outside the group (look at rebalances and its log).",
        [target(f"sum by (instance) (tillsyn_assigned_partitions{{{I}}})", "{{instance}}")],
        "short",
        6,
        5,
    ),
    panel(
        "stat",
        "Records consumed",
        "Records read per second from both input topics, all selected instances together "
        "(rate of tillsyn_consumed_records_total). Normal: follows the municipality's reporting, near 0 at "
        "night. 0 in working hours while the source systems send data means the service is not consuming: "
        "check readiness, lag and the log.",
        [target(f"sum(rate(tillsyn_consumed_records_total{{{I}}}[$__rate_interval]))", "records/s")],
        "cps",
        5,
        5,
        graph="area",
    ),
    panel(
        "stat",
        "Largest consumer lag",
        "The largest number of records any partition is behind the end of its topic "
        "(max of tillsyn_consumer_lag_messages, from librdkafka statistics). Normal: near 0, short spikes "
        "when a batch arrives. Growing for minutes means the service is falling behind: see the per-partition "
        "lag and processing time below.",
        [target(f"max(tillsyn_consumer_lag_messages{{{I}}})", "records behind")],
        "short",
        5,
        5,
        thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "orange", "value": 1000}, {"color": "red", "value": 100000}]},
        graph="area",
    ),
    panel(
        "timeseries",
        "Readiness over time",
        "tillsyn_service_ready per instance over time: 1 ready, 0 not ready, a gap when the instance was not "
        "scraped (down or restarting). Normal: a flat line at 1 with short dips at deployments and rebalances. "
        "Repeated dips or gaps: the instance restarts or loses its partitions; read its log.",
        [target(f"max by (instance) (tillsyn_service_ready{{{I}}})", "{{instance}}")],
        "none",
        8,
        7,
        max=1,
    ),
    panel(
        "timeseries",
        "Rebalances (since each instance started)",
        "Consumer-group rebalance callbacks counted by each running instance since it started, by kind "
        "(tillsyn_consumer_rebalances_total: assign, revoke). A step is a rebalance; the count starts again "
        "when an instance restarts. Normal: one assign at start, a few at deployments. Frequent steps mean "
        "members keep leaving and joining (crashes, session timeouts, long pauses): compare with readiness "
        "and the instances' logs.",
        [target(f"sum by (instance, kind) (tillsyn_consumer_rebalances_total{{{I}}})", "{{instance}} {{kind}}")],
        "short",
        8,
        7,
    ),
    panel(
        "timeseries",
        "Seconds since each loop made progress",
        "For each instance, seconds since its processing loop and its consumer thread last made progress "
        "(tillsyn_loop_seconds_since_progress, by loop). Normal: under a second, busy or idle (the processing "
        "loop beats every 250 ms tick, the consumer thread every poll). Seconds mean the loop waits on "
        "something (a checkpoint on a slow broker, a long rebalance); past http.stuck_after (5 min) /healthz "
        "answers 503 and the orchestrator restarts the instance. If it recurs, keep the instance's log from "
        "before the restart for the developers.",
        [target(f"max by (instance, loop) (tillsyn_loop_seconds_since_progress{{{I}}})", "{{instance}} {{loop}}")],
        "s",
        8,
        7,
    ),
    row("Throughput and lag"),
    panel(
        "timeseries",
        "Records consumed per second, by topic and kind",
        "Records read per second from each input topic, by kind (time_report, invoice) "
        "(rate of tillsyn_consumed_records_total). Normal: time reports follow the working day; invoices come "
        "in bursts at period ends. A topic that drops to 0 while its source system is sending means that "
        "input is not being read: check the consumer lag of its partitions.",
        [target(f"sum by (topic, kind) (rate(tillsyn_consumed_records_total{{{I}}}[$__rate_interval]))", "{{topic}} {{kind}}")],
        "cps",
        12,
        8,
    ),
    panel(
        "timeseries",
        "Consumer lag per partition",
        "Records between the position of the service and the end of each partition "
        "(tillsyn_consumer_lag_messages, updated every kafka.statistics_interval; includes the internal "
        "topics the service reads). Normal: near 0. A partition whose lag keeps growing is not keeping up "
        "(slow processing, a slow broker, or a stuck instance); readiness goes off above 1,000. If only one "
        "partition grows, look at the instance that owns it.",
        [target(f"max by (topic, partition) (tillsyn_consumer_lag_messages{{{I}}})", "{{topic}} [{{partition}}]")],
        "short",
        12,
        8,
    ),
    panel(
        "timeseries",
        "Watermark lag per partition",
        "How far each partition's time-report watermark (the event time its time reports have reached; a report "
        "more than the allowed lateness behind it is late) is behind the wall clock (tillsyn_watermark_lag_seconds). Normal: a few hours to a few days, "
        "as time reports arrive after the visits; it grows at night and on weekends when nothing is reported. "
        "A partition far behind the others holds back the decisions that need every partition (peer "
        "comparisons); if all grow for days, the source systems stopped sending or the heartbeats are missing.",
        [target(f"max by (partition) (tillsyn_watermark_lag_seconds{{{I}}})", "partition {{partition}}")],
        "dtdurations",
        12,
        8,
    ),
    panel(
        "timeseries",
        "Record processing time, p50 and p99",
        "Time to handle one record, from decoding to the alerts handed to the producer: median and 99th "
        "percentile over all selected instances (histogram tillsyn_record_processing_seconds). Normal: "
        "microseconds to a few milliseconds. A p99 above 100 ms for minutes means something is slow (a huge "
        "state, a swapping host, CPU starvation): look at the state size and the host. No line: no records "
        "were processed in the interval.",
        [target(quantile(0.5), "p50"), target(quantile(0.99), "p99")],
        "s",
        12,
        8,
    ),
    row("Rejected, late and failed records"),
    panel(
        "timeseries",
        "Dead letters per second, by topic and reason",
        "Input records that could not be decoded or validated and were copied to the dead-letter topic, by "
        "input topic and reason code (rate of tillsyn_dead_lettered_records_total). Normal: 0, or a trickle. "
        "A burst usually means a source system changed its format or sends broken records: read a few from the "
        "dead-letter topic (headers tillsyn-dlq-reason and tillsyn-dlq-detail) and tell the system's owner. "
        "Dead-lettered records are not analysed for fraud.",
        [target(f"sum by (topic, reason) (rate(tillsyn_dead_lettered_records_total{{{I}}}[$__rate_interval]))", "{{topic}} {{reason}}")],
        "cps",
        8,
        8,
    ),
    panel(
        "timeseries",
        "Late events per second, by input",
        "Events that arrived behind their input's watermark (more than the allowed lateness after newer ones) "
        "and were routed to the late-events topic instead of being analysed, by input "
        "(rate of tillsyn_late_events_total). Normal: 0 or rare. Many late events mean a source system delivers "
        "old data (a backlog, a re-send): they are kept on the late-events topic for a manual look.",
        [target(f"sum by (input) (rate(tillsyn_late_events_total{{{I}}}[$__rate_interval]))", "{{input}}")],
        "cps",
        8,
        8,
    ),
    panel(
        "stat",
        "Dead-lettered, late, producer failures (time range)",
        "Totals over the dashboard's time range: records dead-lettered, events routed aside as late, and "
        "records the producer failed to deliver. Producer failures are counted per process, and every one "
        "stops the instance (exit code 1, it resumes from its last checkpoint when restarted), so the value "
        "shown is the largest count a process reached. Normal: few dead letters and late events, no producer "
        "failures. A producer failure means Kafka did not accept tillsyn's output for longer than the "
        "producer's timeout: check the brokers.",
        [
            target(f"sum(increase(tillsyn_dead_lettered_records_total{{{I}}}[$__range]))", "dead-lettered"),
            target(f"sum(increase(tillsyn_late_events_total{{{I}}}[$__range]))", "late"),
            target(f"sum(max_over_time(tillsyn_producer_delivery_failures_total{{{I}}}[$__range]))", "producer failures"),
        ],
        "short",
        8,
        8,
        decimals=0,
    ),
    row("State and checkpoints"),
    panel(
        "timeseries",
        "State size",
        "What the selected instances hold in memory: providers, provider-client pairs and staff members, "
        "summed over partitions (tillsyn_state_providers, tillsyn_state_clients, tillsyn_state_staff). Normal: "
        "roughly the municipality's number of providers, clients and staff, changing slowly. A steep climb "
        "means a flood of new identifiers (a misbehaving source); the caps in core.limits stop it and "
        "dead-letter the rest.",
        [
            target(f"sum(tillsyn_state_providers{{{I}}})", "providers"),
            target(f"sum(tillsyn_state_clients{{{I}}})", "provider-client pairs"),
            target(f"sum(tillsyn_state_staff{{{I}}})", "staff"),
        ],
        "short",
        8,
        8,
    ),
    panel(
        "timeseries",
        "Checkpoint duration per partition",
        "Time each partition's last checkpoint took: writing its changed state to the state topic, the "
        "acknowledgement and the offset commit (tillsyn_state_snapshot_seconds). Normal: well under a second. "
        "Seconds or more mean a slow broker; near kafka.revocation_budget the checkpoints start to fail "
        "(see checkpoint failures).",
        [target(f"max by (partition) (tillsyn_state_snapshot_seconds{{{I}}})", "partition {{partition}}")],
        "s",
        8,
        8,
    ),
    panel(
        "timeseries",
        "Checkpoints per second, by trigger",
        "Checkpoints written and acknowledged, by what triggered them (rate of tillsyn_state_snapshots_total: "
        "interval, idle, revoke, shutdown, takeover). Normal: interval and idle checkpoints every few seconds "
        "to kafka.commit_interval per partition; revoke, shutdown and takeover at rebalances and restarts. "
        "None for longer than kafka.commit_interval while records arrive: the checkpoints are failing.",
        [target(f"sum by (trigger) (rate(tillsyn_state_snapshots_total{{{I}}}[$__rate_interval]))", "{{trigger}}")],
        "cps",
        8,
        8,
    ),
    panel(
        "timeseries",
        "Checkpoint bytes written per second",
        "Bytes checkpoints write to the state topic: the entities that changed, tombstones and manifests "
        "(rate of tillsyn_state_checkpoint_written_bytes_total). Normal: follows the record rate; a full "
        "checkpoint after a takeover or a failed checkpoint writes the whole state once. Much more than the "
        "input's own bytes for long: report it to the developers.",
        [target(f"sum(rate(tillsyn_state_checkpoint_written_bytes_total{{{I}}}[$__rate_interval]))", "written")],
        "Bps",
        8,
        8,
    ),
    panel(
        "timeseries",
        "State size at the last checkpoint, per partition",
        "Size of each partition's whole state when it was last checkpointed (tillsyn_state_snapshot_bytes): "
        "what a new owner reads at a takeover. Normal: grows with the municipality, then flat (history older "
        "than the horizon is dropped). Hundreds of MB make takeovers slow: consider more partitions.",
        [target(f"max by (partition) (tillsyn_state_snapshot_bytes{{{I}}})", "partition {{partition}}")],
        "bytes",
        8,
        8,
    ),
    panel(
        "bargauge",
        "Checkpoint failures by trigger (time range)",
        "Checkpoints not acknowledged within kafka.revocation_budget, by trigger, over the time range "
        "(increase of tillsyn_state_checkpoint_failures_total). Not fatal: the partition goes on and is "
        "checkpointed again 5 s later, in full. Normal: 0. A few during a broker restart are expected; a steady "
        "count means the brokers are too slow or unreachable, and a restart would replay more records.",
        [target(f"sum by (trigger) (increase(tillsyn_state_checkpoint_failures_total{{{I}}}[$__range]))", "{{trigger}}")],
        "short",
        8,
        8,
        decimals=0,
        thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]},
    ),
    panel(
        "bargauge",
        "Restore time per partition",
        "Time each partition's last takeover took: reading its checkpoint from the state topic and the "
        "alerts produced since (tillsyn_state_restore_seconds). Normal: under a few seconds. Long restores "
        "delay readiness after every restart and rebalance: the state (see its size) or the state topic "
        "(compaction) has grown.",
        [target(f"max by (partition) (tillsyn_state_restore_seconds{{{I}}})", "partition {{partition}}")],
        "s",
        8,
        8,
    ),
    panel(
        "stat",
        "Partitions taken over, by source",
        "Partitions each running instance took over since it started, by where their state came from "
        "(tillsyn_state_restores_total: snapshot = restored from a checkpoint; empty = no checkpoint, the inputs "
        "are replayed from their beginning). Normal: snapshot, except at the very first start. 'empty' after "
        "the first start means checkpoints were lost or discarded (see the service log): the replay takes long.",
        [target(f"sum by (from) (tillsyn_state_restores_total{{{I}}})", "{{from}}")],
        "short",
        8,
        8,
        decimals=0,
    ),
    panel(
        "timeseries",
        "Invoices waiting for their time reports",
        "Invoices held until their billing period's time reports are complete, summed over partitions "
        "(tillsyn_pending_invoices). Normal: rises at period ends and falls as the watermark passes the "
        "period. Not falling for days means time reports of that period are not arriving.",
        [target(f"sum(tillsyn_pending_invoices{{{I}}})", "pending invoices")],
        "short",
        8,
        8,
    ),
    row("Internal topics"),
    panel(
        "timeseries",
        "Internal records produced per second, by topic",
        "Records tillsyn writes to its own internal topics (rate of tillsyn_internal_records_produced_total): "
        "peer-days (closed days for peer comparisons), visits-by-staff and staff-findings (the staff stage). "
        "Normal: follows the record rate. 0 while records are consumed means the staff stage or the peer table "
        "is stuck: read the log.",
        [target(f"sum by (topic) (rate(tillsyn_internal_records_produced_total{{{I}}}[$__rate_interval]))", "{{topic}}")],
        "cps",
        8,
        8,
    ),
    panel(
        "timeseries",
        "Internal bytes produced per second, by topic",
        "Bytes of record values tillsyn writes to its internal topics (rate of "
        "tillsyn_internal_bytes_produced_total): the extra broker traffic the peer table and the staff stage "
        "add on top of the inputs. Normal: a fraction of the input traffic; use it to size the brokers.",
        [target(f"sum by (topic) (rate(tillsyn_internal_bytes_produced_total{{{I}}}[$__rate_interval]))", "{{topic}}")],
        "Bps",
        8,
        8,
    ),
    panel(
        "timeseries",
        "Peer decisions waiting for the slowest partition",
        "Event time a partition has closed but cannot decide yet because another partition has not closed it "
        "(tillsyn_peer_decisions_lag_seconds). Normal: 0 to a day. Days mean one partition is behind (no "
        "records and no heartbeats on it, or its instance is slow): peer comparisons wait for it.",
        [target(f"max by (partition) (tillsyn_peer_decisions_lag_seconds{{{I}}})", "partition {{partition}}")],
        "dtdurations",
        8,
        8,
    ),
    row("Reference data"),
    panel(
        "timeseries",
        "Reference data behind the wall clock",
        "How far the time the reference data (decisions on granted hours, client absences, the provider "
        "register) is known through, its slowest partition, is behind the wall clock "
        "(tillsyn_reference_lag_seconds; only with core.reference.enabled). Every day decision and every visit "
        "checked against the reference data waits for it. Normal: under an hour with hourly heartbeats from the "
        "source's adapter. Hours and growing: the adapter stopped writing to one of the three topics "
        "(TillsynReferenceDataBehind): alerts are delayed, not lost.",
        [target(f"max by (instance) (tillsyn_reference_lag_seconds{{{I}}})", "{{instance}}")],
        "dtdurations",
        8,
        8,
    ),
    panel(
        "timeseries",
        "Reference facts held, by kind",
        "Facts each instance's reference table holds (tillsyn_reference_facts): decisions on granted hours, "
        "absence periods, provider registrations, every version kept as long as decisions can ask about it. "
        "Normal: grows with the municipality's clients (about one decision per client and service type) and "
        "is the same on every instance. A drop to 0 means the table was not loaded (the instance cannot read "
        "the topics).",
        [target(f"max by (kind) (tillsyn_reference_facts{{{I}}})", "{{kind}}")],
        "short",
        8,
        8,
    ),
    panel(
        "timeseries",
        "Reference records read per second, by kind and outcome",
        "Records of the three reference topics each instance's global reader took into its table (applied), "
        "heartbeats (the source's progress), and records refused (not decoded, not valid, or registered behind "
        "its partition's progress; rate of tillsyn_reference_records_total). Normal: applied and heartbeat "
        "only. Refused records are dead-lettered once, by the owner of their partition: read the dead-letter "
        "topic for the reason.",
        [
            target(
                f"sum by (kind, outcome) (rate(tillsyn_reference_records_total{{{I}}}[$__rate_interval]))",
                "{{kind}} {{outcome}}",
            )
        ],
        "cps",
        8,
        8,
    ),
]


def alerts_in_range(status):
    return target(
        f'sum(increase(tillsyn_produced_alerts_total{{status="{status}", {I}}}[$__range]))', status
    )


FRAUD = [
    row("Now"),
    panel(
        "stat",
        "Open alert episodes",
        "Suspicions currently open: an episode opens with an alert and stays open until the pattern stops "
        "(tillsyn_open_episodes, all rules). Each open episode is a case to look at in the alert topic or the "
        "case system. Normal: a handful, depending on the municipality's size.",
        [target(f"sum(tillsyn_open_episodes{{{I}}})", "open episodes")],
        "short",
        6,
        5,
        decimals=0,
        graph="area",
    ),
    panel(
        "stat",
        "Alerts in the time range, by status",
        "Alerts tillsyn produced over the dashboard's time range: opened (a new suspicion), escalated (the "
        "same suspicion got worse) and resolved (the pattern stopped) (increase of "
        "tillsyn_produced_alerts_total). Normal: a few opened a week, most of them escalated or resolved "
        "later. The alerts themselves, with their evidence, are on the alert topic.",
        [alerts_in_range("opened"), alerts_in_range("escalated"), alerts_in_range("resolved")],
        "short",
        8,
        5,
        decimals=0,
    ),
    panel(
        "stat",
        "Analysed up to",
        "The event time up to which every partition has analysed the time reports: the wall clock less the "
        "largest watermark lag (tillsyn_watermark_lag_seconds). Alerts about visits after this time can still "
        "come. Normal: today or yesterday; a date days back means reports are not arriving or the service "
        "is behind: ask the operators.",
        [target(f"1000 * (time() - max(tillsyn_watermark_lag_seconds{{{I}}}))", "analysed up to")],
        "dateTimeAsIso",
        5,
        5,
    ),
    panel(
        "stat",
        "Detection running",
        "1 (ready) when every selected tillsyn instance is up and keeping up with its inputs "
        "(min of tillsyn_service_ready). Normal: ready. 'not ready' for more than a few minutes, or no value, "
        "means alerts may be delayed: ask the operators.",
        [target(f"min(tillsyn_service_ready{{{I}}})", "ready")],
        "none",
        5,
        5,
        mappings=READY_MAPPINGS,
        thresholds={"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}]},
    ),
    row("Alerts"),
    panel(
        "timeseries",
        "Alerts per hour, by rule and severity",
        "Alerts produced, of any status, per hour, by rule and severity (rate of "
        "tillsyn_produced_alerts_total). Each rule is one fraud pattern (tillsyn rules lists them). Normal: a "
        "low, irregular rate. A sudden rise of one rule can be a real wave of fraud, a changed working practice "
        "or a data problem: compare with the dead letters and the rule's documentation before acting.",
        [
            target(
                f"3600 * sum by (rule, severity) (rate(tillsyn_produced_alerts_total{{{I}}}[$__rate_interval]))",
                "{{rule}} {{severity}}",
            )
        ],
        "short",
        12,
        9,
        draw="bars",
        stack="normal",
    ),
    panel(
        "bargauge",
        "Open episodes by rule and severity",
        "Open alert episodes now, by rule and severity (tillsyn_open_episodes). Shows which patterns the "
        "current caseload consists of. Normal: spread thinly; many open episodes of one rule at once deserve "
        "a look at that rule's alerts first.",
        [target(f"sum by (rule, severity) (tillsyn_open_episodes{{{I}}})", "{{rule}} {{severity}}")],
        "short",
        12,
        9,
        decimals=0,
        color="continuous-YlRd",
    ),
    panel(
        "table",
        "Alerts in the time range, by rule, severity and status",
        "Alerts produced over the dashboard's time range, one row per rule, severity and status (increase "
        "of tillsyn_produced_alerts_total). Use it for the period's report. Normal: more opened than "
        "escalated; no rule far above its usual count. The cases themselves, with provider and evidence, "
        "are on the alert topic, not here.",
        [
            target(
                f"sum by (rule, severity, status) (increase(tillsyn_produced_alerts_total{{{I}}}[$__range]))",
                "",
                instant=True,
                fmt="table",
            )
        ],
        "short",
        12,
        9,
        decimals=0,
        value_name="alerts",
    ),
    panel(
        "bargauge",
        "Alerts in the time range, by rule",
        "Alerts produced over the dashboard's time range, of any status and severity, by rule (increase of "
        "tillsyn_produced_alerts_total): which patterns the period's alerts were about. Normal: similar "
        "from one period to the next; a rule far above its usual count deserves a look at its alerts.",
        [target(f"sum by (rule) (increase(tillsyn_produced_alerts_total{{{I}}}[$__range]))", "{{rule}}")],
        "short",
        12,
        9,
        decimals=0,
        color="continuous-BlPu",
    ),
    row("What was analysed"),
    panel(
        "timeseries",
        "Records analysed per second, by kind",
        "Time reports and invoices read per second (rate of tillsyn_consumed_records_total). Normal: follows "
        "the working day. 0 for hours on a working day means nothing is being analysed: ask the operators.",
        [target(f"sum by (kind) (rate(tillsyn_consumed_records_total{{{I}}}[$__rate_interval]))", "{{kind}}")],
        "cps",
        12,
        8,
    ),
    panel(
        "stat",
        "Providers, clients and staff monitored",
        "How many care providers, provider-client pairs and staff members tillsyn currently holds (the last "
        "90 days of activity; tillsyn_state_providers, tillsyn_state_clients, tillsyn_state_staff). Normal: "
        "close to the municipality's own numbers. Far fewer: some source does not deliver.",
        [
            target(f"sum(tillsyn_state_providers{{{I}}})", "providers"),
            target(f"sum(tillsyn_state_clients{{{I}}})", "provider-client pairs"),
            target(f"sum(tillsyn_state_staff{{{I}}})", "staff"),
        ],
        "short",
        12,
        8,
        decimals=0,
    ),
    panel(
        "bargauge",
        "Records not analysed in the time range: dead letters by reason",
        "Records rejected over the time range because they could not be read or were invalid, by reason "
        "(increase of tillsyn_dead_lettered_records_total). They are not analysed for fraud, so an invoice "
        "rejected here cannot raise an alert. Normal: few. Many of one reason: the source system sends broken "
        "data; the operators can tell which system from the dead-letter topic.",
        [target(f"sum by (reason) (increase(tillsyn_dead_lettered_records_total{{{I}}}[$__range]))", "{{reason}}")],
        "short",
        8,
        8,
        decimals=0,
        color="continuous-YlRd",
    ),
    panel(
        "stat",
        "Late records in the time range, by input",
        "Time reports and invoices over the time range that arrived too late to be analysed (more than the "
        "allowed lateness behind newer ones), by input (increase of tillsyn_late_events_total). They are kept "
        "on the late-events topic for a manual look. Normal: few.",
        [target(f"sum by (input) (increase(tillsyn_late_events_total{{{I}}}[$__range]))", "{{input}}")],
        "short",
        8,
        8,
        decimals=0,
    ),
    panel(
        "stat",
        "Invoices waiting for their time reports",
        "Invoices tillsyn holds until the time reports of their billing period are complete; they are "
        "compared with the visits then (tillsyn_pending_invoices). Normal: many at the end of a period, "
        "falling within days.",
        [target(f"sum(tillsyn_pending_invoices{{{I}}})", "waiting invoices")],
        "short",
        8,
        8,
        decimals=0,
        graph="area",
    ),
]

DASHBOARDS = {
    "tillsyn-operations.json": dashboard(
        "tillsyn-operations",
        "tillsyn — operations",
        "For the operators of tillsyn: is every instance ready and keeping up, what is rejected or late, "
        "how big the state is and how its checkpoints and restores go.",
        ["tillsyn", "operations"],
        OPERATIONS,
        time_from="now-3h",
    ),
    "tillsyn-fraud-overview.json": dashboard(
        "tillsyn-fraud-overview",
        "tillsyn — fraud overview",
        "For the municipality's fraud unit: alerts and open suspicions by rule and severity, and how much "
        "of the reported care was analysed. No provider, client or staff member is named here: the cases "
        "are on the alert topic.",
        ["tillsyn", "fraud"],
        FRAUD,
        refresh="5m",
        time_from="now-7d",
    ),
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "dashboards")
    os.makedirs(out, exist_ok=True)
    for name, board in DASHBOARDS.items():
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            json.dump(board, f, indent=2, ensure_ascii=False)
            f.write("\n")
        print(os.path.join(out, name))


if __name__ == "__main__":
    main()
