#!/usr/bin/env python3
"""Checks tillsyn's Grafana dashboards and provisioning, and (given a
Prometheus URL) that every panel query returns data.

Usage:
  tests/ops/check_dashboards.py [--prometheus URL] [--range 5m]
                                [--rate-interval 1m] [--interval 15s]
                                [--expect UID/PANEL=N]... [--verbose]
                                [--grafana-dir deploy/grafana]
  tests/ops/check_dashboards.py --self-test

Structural checks (always), per dashboard in GRAFANA_DIR/dashboards/:
  - the JSON files are exactly what deploy/grafana/generate.py writes;
  - schemaVersion >= 36, a uid unique among the dashboards, a title;
  - template variables `datasource` (type datasource, query prometheus)
    and `instance` (label_values(tillsyn_service_ready, instance), multi,
    include All);
  - panel ids unique; panel types known (row, timeseries, stat, table,
    bargauge, gauge); gridPos integers with x >= 0, y >= 0, w and h >= 1,
    x + w <= 24, and no two panels overlapping;
  - every panel but a row: a title, a description of at least 100
    characters that says what is normal, the datasource ${datasource},
    at least one target with an `expr` (each target's datasource, if set,
    ${datasource} too), a known Grafana unit (required on timeseries,
    stat, bargauge and gauge panels);
  - every tillsyn_* metric in a query is in the README's metrics table
    (histograms with _bucket/_sum/_count) and its selector filters
    instance=~"$instance";
  - nothing that looks like an organisation or personal identity number;
  - provisioning: datasources/tillsyn.yaml is a Prometheus datasource with
    url ${PROMETHEUS_URL}; dashboards/tillsyn.yaml is a file provider whose
    path is where its comment mounts deploy/grafana/dashboards. (YAML read
    by a small parser of the block subset these files use; cross-checked
    with PyYAML when it is installed.)

Live checks (--prometheus): the instance variable's query has values, then
every target's expr, with $instance/${instance} replaced by the
variable's All value (or the regex of every instance found),
$__rate_interval, $__interval and $__range by the options' values, is
evaluated with /api/v1/query at the current time; it must parse (status
success) and return a non-empty result with at least one sample that is
not NaN (a 0 counts), and every series must carry the labels the panel
shows it by (the legend's {{label}}s; a table's `by (...)` labels).
First, three probes prove the evaluation can fail: a metric that does not
exist must come back empty, a syntax error as an error, a series without
a label the legend shows as missing it. On any failure the dashboard
title, panel title and expr are printed and the exit code is 1.
--expect UID/PANEL=N also compares what a panel shows (the sum of its
queries' values) with a number known from elsewhere (e.g. the alerts on
the alert topic).

--self-test breaks a copy of a dashboard and of the provisioning in
nineteen ways and checks that the structural checks catch each one (no
Prometheus needed).

Python 3.11 standard library only.
"""
import argparse
import copy
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD_FILES = ("tillsyn-operations.json", "tillsyn-fraud-overview.json")
PANEL_TYPES = {"row", "timeseries", "stat", "table", "bargauge", "gauge"}
UNIT_REQUIRED = {"timeseries", "stat", "bargauge", "gauge"}
# Grafana unit ids (packages/grafana-data/src/valueFormats/categories.ts):
# the ones a dashboard of counts, rates, times and sizes needs.
UNITS = {
    "none", "short", "locale", "percent", "percentunit",
    "ns", "µs", "ms", "s", "m", "h", "d", "dtdurationms", "dtdurations", "dthms", "dtdhms",
    "dateTimeAsIso", "dateTimeAsIsoNoDateIfToday", "dateTimeFromNow",
    "bits", "bytes", "kbytes", "mbytes", "gbytes", "decbits", "decbytes", "deckbytes", "decmbytes", "decgbytes",
    "pps", "bps", "Bps", "KBs", "MBs", "GBs",
    "cps", "ops", "reqps", "rps", "wps", "iops", "cpm", "opm", "rpm", "wpm",
}
GRID_WIDTH = 24
MIN_DESCRIPTION = 100
# An organisation number (NNNNNN-NNNN) or a personal identity number
# (YYMMDD-NNNN, YYYYMMDD-NNNN, with or without the dash).
IDENTIFIER = re.compile(r"(?<![\d.])(\d{6}|\d{8})[-+]?\d{4}(?![\d.])")
METRIC = re.compile(r"\btillsyn_[a-z0-9_]+")
INSTANCE_FILTER = 'instance=~"$instance"'


class Failures:
    def __init__(self):
        self.items = []

    def add(self, where, message):
        self.items.append(f"{where}: {message}")

    def __bool__(self):
        return bool(self.items)


# ---------------------------------------------------------------- YAML


def parse_yaml(text):
    """The block subset of YAML the provisioning files use: mappings,
    lists of scalars or mappings, plain or quoted scalars, comments."""
    lines = []
    for raw in text.splitlines():
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ValueError(f"tab in indentation: {raw!r}")
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        lines.append((len(raw) - len(raw.lstrip(" ")), _uncomment(raw).strip()))
    value, end = _block(lines, 0, lines[0][0] if lines else 0)
    if end != len(lines):
        raise ValueError(f"unexpected indentation at {lines[end][1]!r}")
    return value


def _uncomment(line):
    """The line without a comment (` #` outside quotes)."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def _scalar(text):
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "True"):
        return True
    if text in ("false", "False"):
        return False
    if text in ("null", "~"):
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


def _block(lines, i, indent):
    if i >= len(lines):
        return None, i
    if lines[i][1].startswith("- ") or lines[i][1] == "-":
        items = []
        while i < len(lines) and lines[i][0] == indent and (lines[i][1].startswith("- ") or lines[i][1] == "-"):
            rest = lines[i][1][2:].strip()
            if not rest:
                value, i = _block(lines, i + 1, lines[i + 1][0])
            elif re.match(r"^[^'\"]+?:(\s|$)", rest):
                sub = [(indent + 2, rest)]
                j = i + 1
                while j < len(lines) and lines[j][0] > indent:
                    sub.append(lines[j])
                    j += 1
                value, used = _block(sub, 0, indent + 2)
                if used != len(sub):
                    raise ValueError(f"unexpected indentation at {sub[used][1]!r}")
                i = j
            else:
                value, i = _scalar(rest), i + 1
            items.append(value)
        return items, i
    mapping = {}
    while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("- "):
        key, sep, rest = lines[i][1].partition(":")
        if not sep or (rest and not rest.startswith(" ")):
            raise ValueError(f"not a mapping entry: {lines[i][1]!r}")
        key, rest = key.strip(), rest.strip()
        if key in mapping:
            raise ValueError(f"duplicate key {key!r}")
        if rest:
            mapping[key], i = _scalar(rest), i + 1
        elif i + 1 < len(lines) and (
            lines[i + 1][0] > indent or (lines[i + 1][0] == indent and lines[i + 1][1].startswith("- "))
        ):
            mapping[key], i = _block(lines, i + 1, lines[i + 1][0])
        else:
            mapping[key], i = None, i + 1
    return mapping, i


def load_yaml(path, failures):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        data = parse_yaml(text)
    except ValueError as e:
        failures.add(path, f"not YAML this check can read: {e}")
        return None, text
    try:
        import yaml  # only to cross-check the small parser, when installed
    except ImportError:
        return data, text
    if yaml.safe_load(text) != data:
        failures.add(path, "PyYAML reads it differently from this check's parser")
    return data, text


def check_provisioning(grafana_dir, failures):
    prov = os.path.join(grafana_dir, "provisioning")
    path = os.path.join(prov, "datasources", "tillsyn.yaml")
    if not os.path.isfile(path):
        failures.add(path, "missing")
    else:
        data, text = load_yaml(path, failures)
        if data is not None:
            if data.get("apiVersion") != 1:
                failures.add(path, "apiVersion must be 1")
            sources = data.get("datasources")
            if not isinstance(sources, list) or len(sources) != 1 or not isinstance(sources[0], dict):
                failures.add(path, "expected one datasource")
            else:
                ds = sources[0]
                if ds.get("type") != "prometheus":
                    failures.add(path, f"datasource type {ds.get('type')!r}, expected prometheus")
                if ds.get("url") != "${PROMETHEUS_URL}":
                    failures.add(path, f"url {ds.get('url')!r}, expected ${{PROMETHEUS_URL}}")
                for key in ("name", "uid", "access"):
                    if not ds.get(key):
                        failures.add(path, f"datasource without {key}")
            if not re.search(r"#.*PROMETHEUS_URL.*|#.*http://\S+:9090", text):
                failures.add(path, "no comment saying what PROMETHEUS_URL should be")
    path = os.path.join(prov, "dashboards", "tillsyn.yaml")
    if not os.path.isfile(path):
        failures.add(path, "missing")
        return
    data, text = load_yaml(path, failures)
    if data is None:
        return
    if data.get("apiVersion") != 1:
        failures.add(path, "apiVersion must be 1")
    providers = data.get("providers")
    if not isinstance(providers, list) or len(providers) != 1 or not isinstance(providers[0], dict):
        failures.add(path, "expected one provider")
        return
    provider = providers[0]
    if provider.get("type") != "file":
        failures.add(path, f"provider type {provider.get('type')!r}, expected file")
    folder_path = (provider.get("options") or {}).get("path")
    if not folder_path:
        failures.add(path, "provider without options.path")
    elif f"deploy/grafana/dashboards:{folder_path}" not in text:
        failures.add(path, f"options.path {folder_path} is not where the comment mounts deploy/grafana/dashboards")
    if not os.path.isdir(os.path.join(grafana_dir, "dashboards")):
        failures.add(path, "deploy/grafana/dashboards does not exist")


# ---------------------------------------------------------- dashboards


def known_metrics():
    """Metric names of the README's metrics table, with the series names
    a histogram adds."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    names = set()
    for name, kind in re.findall(r"^\| `(tillsyn_[a-z0-9_]+)` \| (\w+) \|", readme, re.M):
        names.add(name)
        if kind == "histogram":
            names.update(name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


def all_panels(board):
    for p in board.get("panels", []):
        yield p
        if p.get("type") == "row":
            yield from p.get("panels", [])


def is_datasource_var(ds):
    return isinstance(ds, dict) and ds.get("uid") in ("${datasource}", "$datasource")


def template_vars(board):
    return {v.get("name"): v for v in board.get("templating", {}).get("list", []) if isinstance(v, dict)}


def variable_query(var):
    q = var.get("query")
    return q.get("query") if isinstance(q, dict) else q


def check_selectors(expr, metrics, where, failures):
    for match in METRIC.finditer(expr):
        name = match.group(0)
        if name not in metrics:
            failures.add(where, f"{name} is not a metric of the README's metrics table")
        rest = expr[match.end():]
        if not rest.startswith("{"):
            failures.add(where, f"{name} without a selector: it must filter {INSTANCE_FILTER}")
            continue
        selector = rest[: rest.find("}") + 1]
        if INSTANCE_FILTER not in selector:
            failures.add(where, f"{name}{selector} does not filter {INSTANCE_FILTER}")


def check_board(name, board, metrics, failures):
    title = board.get("title") or name
    if not board.get("title"):
        failures.add(name, "no title")
    schema = board.get("schemaVersion")
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 36:
        failures.add(title, f"schemaVersion {schema!r}, expected an integer >= 36")
    if not board.get("uid"):
        failures.add(title, "no uid")
    variables = template_vars(board)
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        failures.add(title, "no template variable `datasource` of type datasource with query prometheus")
    inst = variables.get("instance")
    if not inst:
        failures.add(title, "no template variable `instance`")
    else:
        if re.sub(r"\s+", "", variable_query(inst) or "") != "label_values(tillsyn_service_ready,instance)":
            failures.add(title, "variable instance: query must be label_values(tillsyn_service_ready, instance)")
        if not inst.get("multi") or not inst.get("includeAll"):
            failures.add(title, "variable instance: must be multi-value and include All")
        if not is_datasource_var(inst.get("datasource")):
            failures.add(title, "variable instance: datasource must be ${datasource}")
    ids = {}
    boxes = []
    panels = list(all_panels(board))
    if not [p for p in panels if p.get("type") != "row"]:
        failures.add(title, "no panels")
    for p in panels:
        ptitle = p.get("title") or f"panel id {p.get('id')}"
        where = f"{title} / {ptitle}"
        pid = p.get("id")
        if not isinstance(pid, int) or isinstance(pid, bool):
            failures.add(where, f"id {pid!r} is not an integer")
        elif pid in ids:
            failures.add(where, f"id {pid} also used by {ids[pid]!r}")
        else:
            ids[pid] = ptitle
        kind = p.get("type")
        if kind not in PANEL_TYPES:
            failures.add(where, f"unknown panel type {kind!r}")
        pos = p.get("gridPos") or {}
        values = [pos.get(k) for k in ("x", "y", "w", "h")]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            failures.add(where, f"gridPos {pos} is not four integers x, y, w, h")
        else:
            x, y, w, h = values
            if x < 0 or y < 0 or w < 1 or h < 1 or x + w > GRID_WIDTH:
                failures.add(where, f"gridPos {pos}: needs x >= 0, y >= 0, w >= 1, h >= 1, x + w <= {GRID_WIDTH}")
            for other, (ox, oy, ow, oh) in boxes:
                if x < ox + ow and ox < x + w and y < oy + oh and oy < y + h:
                    failures.add(where, f"gridPos {pos} overlaps {other!r}")
            boxes.append((ptitle, (x, y, w, h)))
        if kind == "row":
            continue
        if not p.get("title"):
            failures.add(where, "no title")
        description = p.get("description") or ""
        if len(description) < MIN_DESCRIPTION or "normal" not in description.lower():
            failures.add(where, f"description shorter than {MIN_DESCRIPTION} characters or not saying what is normal")
        if not is_datasource_var(p.get("datasource")):
            failures.add(where, "datasource must be ${datasource}")
        unit = ((p.get("fieldConfig") or {}).get("defaults") or {}).get("unit")
        if unit is None and kind in UNIT_REQUIRED:
            failures.add(where, "no unit (fieldConfig.defaults.unit)")
        elif unit is not None and unit not in UNITS:
            failures.add(where, f"unit {unit!r} is not a Grafana unit id this check knows")
        targets = p.get("targets") or []
        if not [t for t in targets if isinstance(t, dict) and (t.get("expr") or "").strip()]:
            failures.add(where, "no target with an expr")
        refs = set()
        for t in targets:
            if not isinstance(t, dict):
                failures.add(where, "a target is not an object")
                continue
            if t.get("refId") in refs:
                failures.add(where, f"refId {t.get('refId')} twice")
            refs.add(t.get("refId"))
            if "datasource" in t and not is_datasource_var(t["datasource"]):
                failures.add(where, f"target {t.get('refId')}: datasource must be ${{datasource}}")
            if not (t.get("expr") or "").strip():
                failures.add(where, f"target {t.get('refId')} without expr")
                continue
            check_selectors(t["expr"], metrics, f"{where} [{t.get('refId')}]", failures)
    text = json.dumps(board, ensure_ascii=False)
    for m in IDENTIFIER.finditer(text):
        failures.add(title, f"{m.group(0)!r} looks like an organisation or personal identity number")


def load_boards(grafana_dir, failures):
    boards = []
    folder = os.path.join(grafana_dir, "dashboards")
    found = sorted(f for f in os.listdir(folder) if f.endswith(".json")) if os.path.isdir(folder) else []
    for name in DASHBOARD_FILES:
        if name not in found:
            failures.add(os.path.join(folder, name), "missing")
    for name in found:
        path = os.path.join(folder, name)
        try:
            with open(path, encoding="utf-8") as f:
                boards.append((name, json.load(f)))
        except (OSError, json.JSONDecodeError) as e:
            failures.add(path, f"not JSON: {e}")
    return boards


def check_generated(grafana_dir, boards, failures):
    generator = os.path.join(grafana_dir, "generate.py")
    if not os.path.isfile(generator):
        return
    with tempfile.TemporaryDirectory() as out:
        run = subprocess.run([sys.executable, generator, out], capture_output=True, text=True)
        if run.returncode != 0:
            failures.add(generator, f"failed: {run.stderr.strip()}")
            return
        generated = sorted(f for f in os.listdir(out) if f.endswith(".json"))
        present = {name: board for name, board in boards}
        for name in generated:
            with open(os.path.join(out, name), encoding="utf-8") as f:
                expected = json.load(f)
            if present.get(name) != expected:
                failures.add(
                    os.path.join(grafana_dir, "dashboards", name),
                    "differs from what deploy/grafana/generate.py writes (run it)",
                )
        for name in present:
            if name not in generated:
                failures.add(os.path.join(grafana_dir, "dashboards", name), "not written by deploy/grafana/generate.py")


def structural(grafana_dir, boards, failures):
    metrics = known_metrics()
    uids = {}
    for name, board in boards:
        check_board(name, board, metrics, failures)
        uid = board.get("uid")
        if uid in uids:
            failures.add(name, f"uid {uid} also used by {uids[uid]}")
        uids[uid] = name
    check_provisioning(grafana_dir, failures)


# ---------------------------------------------------------------- live


class Prometheus:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def get(self, path, params):
        url = f"{self.url}{path}?{urllib.parse.urlencode(params, doseq=True)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:  # 400/422: a bad query, with a JSON body
            try:
                return json.load(e)
            except ValueError:
                return {"status": "error", "error": f"HTTP {e.code}"}

    def query(self, expr, labels=()):
        """(None, n) when the result has n series with a value that is not
        NaN, n > 0, each series with every label of `labels`; (reason, 0)
        otherwise."""
        body = self.get("/api/v1/query", {"query": expr})
        if body.get("status") != "success":
            return f"query failed: {body.get('errorType', '')} {body.get('error', body)}".strip(), 0
        data = body.get("data", {})
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar" or kind == "string":
            values = [result[1]]
        elif kind == "vector":
            values = [s["value"][1] for s in result]
        elif kind == "matrix":
            values = [v[1] for s in result for v in s["values"]]
        else:
            return f"unexpected result type {kind!r}", 0
        if not values:
            return "empty result", 0
        real = [v for v in values if not (isinstance(v, str) and v.lower() == "nan") and not (
            isinstance(v, float) and math.isnan(v))]
        if not real:
            return f"only NaN ({len(values)} samples)", 0
        if kind in ("vector", "matrix"):
            for series in result:
                missing = [name for name in labels if not series["metric"].get(name)]
                if missing:
                    return f"a series without the label(s) {', '.join(missing)} it is shown by: {series['metric']}", 0
        self.last_values = [float(v) for v in real]
        return None, len(result) if kind != "scalar" else 1


def shown_labels(panel, target):
    """Labels a panel shows its series by: the legend's {{label}}s, and for
    a table the labels of the query's outer `by (...)`."""
    labels = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat") or ""))
    if panel.get("type") == "table":
        m = re.match(r"\s*\w+\s+by\s*\(([^)]*)\)", target.get("expr", ""))
        if m:
            labels.update(x.strip() for x in m.group(1).split(",") if x.strip())
    return sorted(labels)


def substitute(expr, variables):
    def value(m):
        name = m.group(1) or m.group(2)
        if name not in variables:
            raise KeyError(name)
        return variables[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", value, expr)


def live(url, boards, args, failures, wrong):
    prom = Prometheus(url)
    # Probes: the evaluation must be able to fail.
    probe_empty, _ = prom.query('tillsyn_metric_that_does_not_exist{instance=~".*"}')
    probe_syntax, _ = prom.query("sum by (rule (tillsyn_produced_alerts_total)")
    probe_label, _ = prom.query('sum by (no_such_label) (up{instance=~".*"})', ["no_such_label"])
    if (
        probe_empty != "empty result"
        or not (probe_syntax or "").startswith("query failed")
        or not (probe_label or "").startswith("a series without")
    ):
        failures.add(url, f"probes not rejected as they must be: {probe_empty!r}, {probe_syntax!r}, {probe_label!r}")
        return 0, 0
    checked = panels_seen = 0
    expected = dict(args.expect)
    for name, board in boards:
        title = board.get("title") or name
        inst = template_vars(board).get("instance", {})
        body = prom.get(
            "/api/v1/label/instance/values", {"match[]": re.sub(r"label_values\((\w+),.*", r"\1", variable_query(inst) or "")}
        )
        instances = body.get("data") or []
        if body.get("status") != "success" or not instances:
            failures.add(f"{title} / variable instance", f"{variable_query(inst)} has no values: {body}")
            continue
        all_value = inst.get("allValue") or "(" + "|".join(re.escape(i) for i in instances) + ")"
        variables = {
            "instance": all_value,
            "datasource": "prometheus",
            "__rate_interval": args.rate_interval,
            "__interval": args.interval,
            "__range": args.range,
            "__range_s": str(seconds(args.range)),
            "__range_ms": str(seconds(args.range) * 1000),
            "__interval_ms": str(seconds(args.interval) * 1000),
        }
        for p in all_panels(board):
            if p.get("type") == "row":
                continue
            panels_seen += 1
            key = f"{board.get('uid')}/{p.get('title')}"
            total, want = 0.0, expected.pop(key, None)
            for t in p.get("targets", []):
                expr = t.get("expr", "")
                where = f"{title} / {p.get('title')} [{t.get('refId')}]"
                try:
                    query = substitute(expr, variables)
                except KeyError as e:
                    failures.add(where, f"unknown variable ${e.args[0]} in: {expr}")
                    continue
                reason, series = prom.query(query, shown_labels(p, t))
                checked += 1
                if reason:
                    failures.add(where, f"{reason}\n    expr: {expr}\n    sent: {query}")
                else:
                    total += sum(prom.last_values)
                    if args.verbose:
                        print(f"ok  {where}: {series} series")
            if want is not None:
                slack = max(0.5, 0.05 * want)
                verdict = "ok" if abs(total - want) <= slack else "WRONG"
                print(f"{verdict}  {title} / {p.get('title')}: shows {total:g}, expected {want:g} (±{slack:g})")
                if verdict != "ok":
                    wrong.add(f"{title} / {p.get('title')}", f"shows {total:g}, expected {want:g} (±{slack:g})")
    for key in expected:
        wrong.add(key, "--expect names no panel (dashboard uid/panel title)")
    return checked, panels_seen


def expectation(text):
    key, sep, value = text.rpartition("=")
    if not sep or "/" not in key:
        raise argparse.ArgumentTypeError(f"not UID/PANEL TITLE=NUMBER: {text!r}")
    return key, float(value)


def seconds(duration):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d|w)", duration)
    if not m:
        raise SystemExit(f"not a duration: {duration!r} (e.g. 15s, 1m, 5m)")
    return int(int(m.group(1)) * units[m.group(2)])


# ----------------------------------------------------------- self-test


def self_test(grafana_dir):
    """Each breakage must be caught by the structural checks."""
    failures = Failures()
    boards = load_boards(grafana_dir, failures)
    structural(grafana_dir, boards, failures)
    if failures:
        print("self-test: the dashboards themselves fail:\n  " + "\n  ".join(failures.items))
        return 1
    metrics = known_metrics()
    name, board = boards[0]

    def first(b, kind=None):
        return next(p for p in all_panels(b) if p.get("type") != "row" and (kind is None or p["type"] == kind))

    def overlap(b):
        ps = [p for p in all_panels(b) if p.get("type") != "row"]
        ps[1]["gridPos"] = dict(ps[0]["gridPos"])

    breakages = {
        "duplicate panel id": lambda b: first(b, "timeseries").update(id=first(b)["id"]),
        "overlapping panels": overlap,
        "panel wider than the grid": lambda b: first(b)["gridPos"].update(x=20, w=8),
        "gridPos not an integer": lambda b: first(b)["gridPos"].update(h=7.5),
        "unknown panel type": lambda b: first(b).update(type="graph"),
        "no description": lambda b: first(b).pop("description"),
        "no unit": lambda b: first(b, "timeseries")["fieldConfig"]["defaults"].pop("unit"),
        "unknown unit": lambda b: first(b, "timeseries")["fieldConfig"]["defaults"].update(unit="records"),
        "fixed datasource": lambda b: first(b).update(datasource={"type": "prometheus", "uid": "abc"}),
        "no expr": lambda b: first(b)["targets"][0].update(expr=""),
        "no instance filter": lambda b: first(b, "timeseries")["targets"][0].update(
            expr="sum(rate(tillsyn_consumed_records_total[5m]))"
        ),
        "unknown metric": lambda b: first(b)["targets"][0].update(
            expr='sum(tillsyn_consumed_record_total{instance=~"$instance"})'
        ),
        "old schema": lambda b: b.update(schemaVersion=27),
        "no instance variable": lambda b: b["templating"].update(
            list=[v for v in b["templating"]["list"] if v["name"] != "instance"]
        ),
        "an organisation number": lambda b: first(b).update(title="provider 556677-8899"),
    }
    missed = []
    for what, breakage in breakages.items():
        broken = copy.deepcopy(board)
        breakage(broken)
        found = Failures()
        check_board(name, broken, metrics, found)
        if not found:
            missed.append(what)
    # Provisioning: a copy with one thing wrong at a time.
    for what, rel, old, new in (
        ("datasource URL not ${PROMETHEUS_URL}", "datasources/tillsyn.yaml", "url: ${PROMETHEUS_URL}", "url: http://x:9090"),
        ("datasource not Prometheus", "datasources/tillsyn.yaml", "type: prometheus", "type: loki"),
        ("provider path elsewhere", "dashboards/tillsyn.yaml", "path: /var/lib/grafana/dashboards/tillsyn", "path: /tmp/x"),
        ("provider not a file provider", "dashboards/tillsyn.yaml", "type: file", "type: git"),
    ):
        with tempfile.TemporaryDirectory() as tmp:
            copy_dir = os.path.join(tmp, "grafana")
            shutil.copytree(grafana_dir, copy_dir)
            target = os.path.join(copy_dir, "provisioning", rel)
            with open(target, encoding="utf-8") as f:
                text = f.read()
            if old not in text:
                missed.append(f"{what} (the self-test's {old!r} is not in {rel})")
                continue
            with open(target, "w", encoding="utf-8") as f:
                f.write(text.replace(old, new))
            found = Failures()
            check_provisioning(copy_dir, found)
            if not found:
                missed.append(what)
        breakages[what] = None
    # YAML: the parser reads what it must and refuses what it cannot read.
    sample = "a: 1\nb:\n  - name: x\n    url: ${U}  # c\n  - y\nc: 'q # r'\n"
    if parse_yaml(sample) != {"a": 1, "b": [{"name": "x", "url": "${U}"}, "y"], "c": "q # r"}:
        missed.append("YAML sample read wrong")
    try:
        parse_yaml("a: 1\n   b: 2\n")
        missed.append("bad YAML indentation accepted")
    except ValueError:
        pass
    if missed:
        print("self-test: not caught: " + ", ".join(missed))
        return 1
    print(f"self-test: all {len(breakages)} breakages of a dashboard or its provisioning caught, YAML parser ok")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prometheus", help="Prometheus base URL, e.g. http://127.0.0.1:9090 (omit: structural checks only)")
    ap.add_argument("--grafana-dir", default=os.path.join(REPO, "deploy", "grafana"))
    ap.add_argument("--range", default="5m", help="value of $__range (default 5m)")
    ap.add_argument("--rate-interval", default="1m", help="value of $__rate_interval (default 1m)")
    ap.add_argument("--interval", default="15s", help="value of $__interval (default 15s)")
    ap.add_argument(
        "--expect",
        action="append",
        default=[],
        type=expectation,
        metavar="UID/PANEL=N",
        help="the sum of every value the panel's queries return must be N (within 5 %%, at least ±0.5: "
        "increase() extrapolates); repeatable",
    )
    ap.add_argument("--verbose", action="store_true", help="print every query that passed")
    ap.add_argument("--self-test", action="store_true", help="check that the structural checks catch breakages")
    args = ap.parse_args()
    for d in (args.range, args.rate_interval, args.interval):
        seconds(d)
    if args.self_test:
        return self_test(args.grafana_dir)
    failures = Failures()
    boards = load_boards(args.grafana_dir, failures)
    check_generated(args.grafana_dir, boards, failures)
    structural(args.grafana_dir, boards, failures)
    panels = sum(1 for _, b in boards for p in all_panels(b) if p.get("type") != "row")
    queries = sum(len(p.get("targets", [])) for _, b in boards for p in all_panels(b) if p.get("type") != "row")
    if failures:
        print(f"{len(failures.items)} problems in the dashboards or provisioning:")
        print("\n".join("  " + f for f in failures.items))
        return 1
    print(f"structure: {panels} panels with {queries} queries in {len(boards)} dashboards, provisioning ok")
    if not args.prometheus:
        return 0
    wrong = Failures()
    checked, seen = live(args.prometheus, boards, args, failures, wrong)
    if failures:
        print(f"{len(failures.items)} of {checked} panel queries failed against {args.prometheus}:")
        print("\n".join("  " + f for f in failures.items))
    else:
        print(f"{checked} panel queries of {seen} panels in {len(boards)} dashboards checked, all non-empty")
    if wrong:
        print(f"{len(wrong.items)} panels do not show what they must:")
        print("\n".join("  " + f for f in wrong.items))
    return 1 if failures or wrong else 0


if __name__ == "__main__":
    sys.exit(main())
