#!/usr/bin/env python3
"""Renders tillsyn's Grafana dashboards to PNG pictures, from the panels'
own queries against a Prometheus (no Grafana needed).

Usage:
  tests/ops/render_dashboards.py --prometheus URL [--range SECONDS | --start T --end T]
                                 [--scrape-interval 15s] [--width 1600]
                                 [--grafana-dir deploy/grafana] OUT_DIR

Writes OUT_DIR/<dashboard>.png for each dashboard of GRAFANA_DIR/dashboards/
(tillsyn-operations.png, tillsyn-fraud-overview.png): every panel at its
gridPos (24 columns, 30 px a height unit), rows as section headings, on
Grafana's dark theme. The queries are the panels' targets with the
variables replaced as tests/ops/check_dashboards.py replaces them (its
substitute(); $instance by the variable's All value), over the time range:
  timeseries  a /api/v1/query_range of each target (step: the range / 300,
              at least the scrape interval), a line (or stacked bars) per
              series, named by the legendFormat, the y axis in the panel's
              unit;
  stat        an instant query at the end of the range: the big number(s)
              in the panel's unit, value mappings and threshold colours, a
              sparkline when the panel has one;
  bargauge    an instant query: a horizontal bar per series;
  table       an instant query: a row per series, its labels and value.
$__range is the time range; $__interval the step; $__rate_interval, as
Grafana computes it, max($__interval + scrape interval, 4 x scrape interval).
Times are UTC.

--range SECONDS: the last SECONDS up to now; default: since Prometheus
started (/api/v1/status/runtimeinfo). --start/--end: unix seconds or ISO
8601 (UTC unless the time says otherwise).

Exit code 1 when a query failed (the panel shows the error; the pictures
are written anyway). Needs matplotlib (e.g. in the test venv:
~/.cache/tillsyn/tools/pyenv/bin/python -m pip install matplotlib).
"""
import argparse
import datetime
import io
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in tests/ops from the import below
from check_dashboards import (  # noqa: E402  (the checks' own reading of the dashboards)
    REPO,
    Failures,
    Prometheus,
    all_panels,
    load_boards,
    seconds,
    substitute,
    template_vars,
    variable_query,
)

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator  # noqa: E402
from PIL import Image  # noqa: E402  (a dependency of matplotlib)

# Grafana's dark theme.
PAGE, PANEL, BORDER, GRID = "#111217", "#181b1f", "#2c3036", "#24272c"
TEXT, DIM = "#ccccdc", "#8e8f9a"
COLORS = {"green": "#73BF69", "red": "#F2495C", "orange": "#FF9830", "yellow": "#FADE2A", "blue": "#5794F2",
          "purple": "#B877D9", "text": TEXT}
PALETTE = ["#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0",
           "#508642", "#CCA300", "#447EBC", "#C15C17"]
# Grafana's continuous colour schemes, from their low to their high end.
SCHEMES = {"continuous-YlRd": ("#FADE2A", "#F2495C"), "continuous-BlPu": ("#5794F2", "#B877D9")}

DPI = 100
PT = DPI / 72  # pixels per point
MARGIN, GUTTER, UNIT, HEADER, TITLE = 16, 8, 30, 64, 26
UTC = datetime.timezone.utc


class QueryError(Exception):
    pass


# ---------------------------------------------------------------- units


def number(v, decimals=None):
    if decimals is not None:
        return f"{v:.{decimals}f}"
    if v == 0 or abs(v) >= 1000:
        return f"{v:.0f}"
    return f"{v:.3g}"


def scaled(v, steps, decimals=None):
    for factor, suffix in steps:
        if abs(v) >= factor:
            break
    if v == 0:
        factor, suffix = next(s for s in steps if s[0] == 1)
    return number(v / factor, decimals) + suffix


SHORT = [(1e12, " Tri"), (1e9, " Bil"), (1e6, " Mil"), (1e3, " K"), (1, "")]
SECONDS = [(86400, " day"), (3600, " hour"), (60, " min"), (1, " s"), (1e-3, " ms"), (1e-6, " µs"), (1e-9, " ns")]
IEC = [(2**40, " TiB"), (2**30, " GiB"), (2**20, " MiB"), (2**10, " KiB"), (1, " B")]
SI_RATE = [(1e9, " GB/s"), (1e6, " MB/s"), (1e3, " kB/s"), (1, " B/s")]


def duration(v):
    """A duration in seconds, its two largest units: 62d 4h, 5m 12s."""
    rest, units = int(round(abs(v))), ((86400, "d"), (3600, "h"), (60, "m"), (1, "s"))
    for i, (size, name) in enumerate(units):
        if rest >= size or size == 1:
            text = f"{rest // size}{name}"
            if i + 1 < len(units) and (rest % size) // units[i + 1][0]:
                text += f" {(rest % size) // units[i + 1][0]}{units[i + 1][1]}"
            return ("-" if v < 0 else "") + text


def fmt(v, unit, decimals=None):
    """A value in a Grafana unit, the way Grafana shows it (roughly)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if unit in ("short", "none", None):
        return scaled(v, SHORT, decimals) if unit == "short" else number(v, decimals)
    if unit == "cps":
        return scaled(v, SHORT, decimals) + "/s"
    if unit == "s":
        return scaled(v, SECONDS, decimals)
    if unit == "bytes":
        return scaled(v, IEC, decimals)
    if unit == "Bps":
        return scaled(v, SI_RATE, decimals)
    if unit == "dtdurations":
        return duration(v)
    if unit == "dateTimeAsIso":
        return datetime.datetime.fromtimestamp(v / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{number(v, decimals)} {unit}"


def mapped(v, defaults):
    """(text, colour) of a value mapping of the value, or None."""
    for m in defaults.get("mappings", []):
        if m.get("type") == "value" and v is not None and not math.isnan(v):
            hit = m.get("options", {}).get(number(v, 0) if v == int(v) else str(v))
            if hit:
                return hit.get("text"), color(hit.get("color"))
    return None


def color(name):
    return COLORS.get(name, name or COLORS["green"])


def threshold_color(v, defaults):
    steps = (defaults.get("thresholds") or {}).get("steps") or [{"color": "green", "value": None}]
    chosen = steps[0]["color"]
    for s in steps:
        if s.get("value") is None or (v is not None and not math.isnan(v) and v >= s["value"]):
            chosen = s["color"]
    return color(chosen)


def value_color(v, defaults, top):
    mode = (defaults.get("color") or {}).get("mode", "thresholds")
    if mode in SCHEMES:
        frac = 0 if not top or v is None or math.isnan(v) else max(0.0, min(1.0, v / top))
        return LinearSegmentedColormap.from_list(mode, SCHEMES[mode])(frac)
    return threshold_color(v, defaults)


# -------------------------------------------------------------- queries


def legend(fmt_, metric, expr):
    if fmt_:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt_).strip()
    labels = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return metric.get("__name__", "") + "{" + labels + "}" if labels or metric else expr


class Source:
    """The panels' queries over one time range."""

    def __init__(self, prom, start, end, step):
        self.prom, self.start, self.end, self.step = prom, start, end, step
        self.times = np.arange(start, end + step / 2, step)

    def _get(self, path, params):
        body = self.prom.get(path, params)
        if body.get("status") != "success":
            raise QueryError(f"{body.get('errorType', '')} {body.get('error', body)}".strip())
        return body["data"]

    def range(self, expr):
        """[(labels, values on self.times, NaN where there is no sample)]"""
        data = self._get("/api/v1/query_range", {"query": expr, "start": self.start, "end": self.end, "step": self.step})
        out = []
        for s in data["result"]:
            values = np.full(len(self.times), np.nan)
            for t, v in s["values"]:
                i = int(round((float(t) - self.start) / self.step))
                if 0 <= i < len(values):
                    values[i] = float(v)
            out.append((s["metric"], values))
        return out

    def instant(self, expr):
        """[(labels, value)] at the end of the range"""
        data = self._get("/api/v1/query", {"query": expr, "time": self.end})
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(s["metric"], float(s["value"][1])) for s in data["result"]]


# -------------------------------------------------------------- drawing


class Canvas:
    """A figure addressed in pixels from its top left corner."""

    def __init__(self, width, height):
        self.w, self.h = width, height
        self.fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor=PAGE)

    def axes(self, x, y, w, h, **kw):
        return self.fig.add_axes([x / self.w, 1 - (y + h) / self.h, max(w, 1) / self.w, max(h, 1) / self.h], **kw)

    def pixel_axes(self, x, y, w, h):
        """Axes whose data coordinates are pixels from its top left."""
        ax = self.axes(x, y, w, h)
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.axis("off")
        return ax

    def text(self, x, y, s, **kw):
        self.fig.text(x / self.w, 1 - y / self.h, s, **kw)


def clip(text, width_px, size_pt):
    chars = max(4, int(width_px / (size_pt * PT * 0.6)))
    return text if len(text) <= chars else text[: chars - 1] + "…"


def fit(text, width_px, height_px, largest):
    """A font size (points) at which the text fits the box."""
    return max(6.0, min(largest, height_px / PT, width_px / (max(len(text), 1) * 0.62 * PT)))


def no_data(canvas, body, message="No data", col=DIM):
    x, y, w, h = body
    ax = canvas.pixel_axes(x, y, w, h)
    ax.text(w / 2, h / 2, clip(message, w, 9), color=col, ha="center", va="center", fontsize=11 if message == "No data" else 8,
            wrap=True)


def fitting(items, room, is_zero):
    """The items to list in `room` lines, and a note on the others (None
    when all fit). Those at 0 are left out first: the counters of every
    label combination are there from the start, most of them at 0."""
    if len(items) <= room:
        return items, None
    shown = [i for i in items if not is_zero(i)][: max(room - 1, 0)]
    rest, zeros = len(items) - len(shown), sum(1 for i in items if is_zero(i))
    return shown, f"+ {rest} more" + (", all 0" if zeros == rest else f", {zeros} of them 0" if zeros else "")


def style_axes(ax, unit, height_px):
    ax.set_facecolor(PANEL)
    for s in ax.spines.values():
        s.set_visible(False)
    ax.grid(True, color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    ax.tick_params(colors=DIM, labelsize=7, length=0, pad=3)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=max(2, int(height_px / 30)), min_n_ticks=2))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v, unit)))


def time_axis(ax, src, width_px):
    """Ticks at round times, none at the edges (where they would run into
    the y axis' labels or out of the panel)."""
    span = src.end - src.start
    step = next((s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
                 if span / s <= max(2, width_px / 90)), 86400 * math.ceil(span / 86400 / 4))
    ticks = [t for t in range(math.ceil(src.start / step) * step, src.end + 1, step)
             if min(t - src.start, src.end - t) > 0.05 * span]
    ax.set_xticks([datetime.datetime.fromtimestamp(t, UTC) for t in ticks])
    ax.xaxis.set_major_formatter(mdates.DateFormatter(
        "%H:%M:%S" if step < 60 else "%H:%M" if span <= 86400 else "%m-%d %H:%M", tz=UTC))


def timeseries(canvas, body, panel, src, queries):
    x, y, w, h = body
    defaults = panel["fieldConfig"]["defaults"]
    unit, custom = defaults.get("unit"), defaults.get("custom", {})
    series = []
    for t, expr in queries:
        for metric, values in sorted(src.range(expr), key=lambda s: legend(t.get("legendFormat"), s[0], expr)):
            series.append((legend(t.get("legendFormat"), metric, expr), values))
    if not series:
        return no_data(canvas, body)

    def zero(s):
        return not np.nanmax(np.abs(s[1]), initial=0) > 0

    series.sort(key=zero)  # stable: the colours and the legend go first to those not at 0
    # The legend under the plot, in as many columns as fit.
    longest = max(len(name) for name, _ in series)
    ncol = max(1, min(len(series), int(w // (min(longest, 60) * 7 * PT * 0.6 + 28))))
    max_rows = max(1, int(h * 0.4 / 14))  # the plot keeps most of the panel
    shown, note = fitting(series, ncol * max_rows, zero)
    rows = math.ceil((len(shown) + (note is not None)) / ncol)
    legend_h = rows * 14 + 6
    left, bottom = 62, 16
    plot_h = h - legend_h - bottom
    ax = canvas.axes(x + left, y, w - left, plot_h)
    style_axes(ax, unit, plot_h)
    when = [datetime.datetime.fromtimestamp(t, UTC) for t in src.times]
    stacked = custom.get("stacking", {}).get("mode") == "normal"
    base = np.zeros(len(src.times))
    handles = []
    for i, (name, values) in enumerate(series):
        c = PALETTE[i % len(PALETTE)]
        if custom.get("drawStyle") == "bars":
            v = np.nan_to_num(values)
            handles.append(ax.bar(when, v, width=src.step / 86400 * 0.9, bottom=base if stacked else None, color=c,
                                  alpha=0.85, linewidth=0))
            if stacked:
                base = base + v
        else:
            handles.append(ax.plot(when, values, color=c, linewidth=1.2)[0])
            finite = np.isfinite(values)
            alone = finite & ~np.r_[False, finite[:-1]] & ~np.r_[finite[1:], False]  # no line through them: a dot
            ax.plot(np.array(when)[alone], values[alone], "o", color=c, markersize=2.5)
            ax.fill_between(when, 0, values, color=c, alpha=custom.get("fillOpacity", 0) / 100, linewidth=0)
    ax.set_xlim(when[0], when[-1])
    time_axis(ax, src, w - left)
    top = np.nanmax([np.nanmax(s) if not np.all(np.isnan(s)) else 0 for _, s in series])
    if stacked:
        top = max(top, float(np.nanmax(base)))
    low = defaults.get("min", None)
    ax.set_ylim(bottom=low if low is not None else None, top=defaults.get("max", None if top > 0 else 1))
    if unit == "dtdurations":  # ticks at whole days, hours or minutes
        lo, hi = ax.get_ylim()
        base = next(b for b in (86400, 3600, 60, 1) if hi >= 2 * b or b == 1)
        nice = MaxNLocator(nbins=max(2, int(plot_h / 38)), integer=True).tick_values(lo / base, hi / base)
        ax.yaxis.set_major_locator(FixedLocator(nice * base))
    labels = [clip(name, w / ncol - 28, 7) for name, _ in shown]
    handles = handles[: len(shown)]
    if note:
        handles.append(Rectangle((0, 0), 0, 0, alpha=0))
        labels.append(note)
    canvas.fig.legend(
        handles, labels, loc="upper left", ncol=ncol, frameon=False, fontsize=7, labelcolor=TEXT,
        bbox_to_anchor=((x + 4) / canvas.w, 1 - (y + plot_h + bottom + 2) / canvas.h), borderaxespad=0,
        borderpad=0, handlelength=1.2, handleheight=0.5, handletextpad=0.5, columnspacing=1.5, labelspacing=0.45,
    )


def stat(canvas, body, panel, src, queries):
    x, y, w, h = body
    defaults, options = panel["fieldConfig"]["defaults"], panel.get("options", {})
    unit, decimals = defaults.get("unit"), defaults.get("decimals")
    cells = []
    for t, expr in queries:
        values = sorted(src.instant(expr), key=lambda s: legend(t.get("legendFormat"), s[0], expr))
        spark = {}
        if options.get("graphMode", "none") != "none":
            spark = {tuple(sorted(m.items())): v for m, v in src.range(expr)}
        for metric, v in values:
            cells.append((legend(t.get("legendFormat"), metric, expr), v, spark.get(tuple(sorted(metric.items())))))
    if not cells:
        return no_data(canvas, body)
    n = len(cells)
    cols = n if w >= h else 1
    rows = math.ceil(n / cols)
    cw, ch = (w - 6 * (cols - 1)) / cols, (h - 6 * (rows - 1)) / rows
    ax = canvas.pixel_axes(x, y, w, h)
    for i, (name, v, spark) in enumerate(cells):
        cx, cy = (i % cols) * (cw + 6), (i // cols) * (ch + 6)
        hit = mapped(v, defaults)
        text, c = hit if hit else (fmt(v, unit, decimals), threshold_color(v, defaults))
        background = options.get("colorMode") == "background"
        if background:
            ax.add_patch(Rectangle((cx, cy), cw, ch, color=c, alpha=0.9, linewidth=0))
        fg = "#ffffff" if background else c
        top = cy
        if n > 1:
            size = min(10.0, fit(name, cw * 0.9, ch * 0.16, 10))
            ax.text(cx + cw / 2, cy + ch * 0.1, clip(name, cw, size), color="#ffffff" if background else TEXT,
                    fontsize=size, ha="center", va="top")
            top = cy + ch * 0.12
        value_h = (cy + ch - top) * (0.55 if spark is not None else 0.8)
        size = fit(text, cw * 0.9, value_h * 0.55, 34)
        ax.text(cx + cw / 2, top + (cy + ch - top) * (0.4 if spark is not None else 0.5), text, color=fg,
                fontsize=size, ha="center", va="center", fontweight="bold")
        if spark is not None and not np.all(np.isnan(spark)):
            sh = ch * 0.3
            sax = canvas.axes(x + cx, y + cy + ch - sh, cw, sh)
            sax.axis("off")
            sax.set_xlim(src.times[0], src.times[-1])
            sax.plot(src.times, spark, color=fg, linewidth=1, alpha=0.8)
            sax.fill_between(src.times, 0, spark, color=fg, alpha=0.2, linewidth=0)
            sax.set_ylim(bottom=0, top=max(np.nanmax(spark), 1e-9) * 1.05)


def bargauge(canvas, body, panel, src, queries):
    x, y, w, h = body
    defaults = panel["fieldConfig"]["defaults"]
    unit, decimals = defaults.get("unit"), defaults.get("decimals")
    bars = []
    for t, expr in queries:
        for metric, v in sorted(src.instant(expr), key=lambda s: legend(t.get("legendFormat"), s[0], expr)):
            bars.append((legend(t.get("legendFormat"), metric, expr), v))
    if not bars:
        return no_data(canvas, body)
    top = defaults.get("max") or max([v for _, v in bars if not math.isnan(v)] + [0]) or 1
    bars, note = fitting(bars, int(h / 18), lambda b: not b[1])
    ax = canvas.pixel_axes(x, y, w, h)
    row = min(h / (len(bars) + (note is not None)), 44)
    if note:
        ax.text(0, h - 2, note, color=DIM, fontsize=7.5, va="bottom")
    beside = row < 30  # thin rows: the name left of its bar, as Grafana does
    left, value_w = (w * 0.35 if beside else 0), 76
    for i, (name, v) in enumerate(bars):
        ry = i * row
        if beside:
            ax.text(0, ry + row / 2, clip(name, left - 6, 7.5), color=TEXT, fontsize=7.5, va="center")
            bar_y, bar_h = ry + 2, min(row - 4, 20)
        else:
            ax.text(0, ry + 1, clip(name, w - value_w, 8), color=TEXT, fontsize=8, va="top")
            bar_y, bar_h = ry + 8 * PT + 4, max(4, row - 8 * PT - 8)
        c = value_color(v, defaults, top)
        ax.add_patch(Rectangle((left, bar_y), w - value_w - left, bar_h, color=TEXT, alpha=0.07, linewidth=0))
        frac = 0 if math.isnan(v) else max(0.0, min(1.0, v / top))
        ax.add_patch(Rectangle((left, bar_y), (w - value_w - left) * frac, bar_h, color=c, alpha=0.9, linewidth=0))
        text = fmt(v, unit, decimals)
        ax.text(w, bar_y + bar_h / 2, text, color=c, fontsize=min(12, fit(text, value_w - 8, bar_h * 1.2, 12)),
                ha="right", va="center", fontweight="bold")


def table(canvas, body, panel, src, queries):
    x, y, w, h = body
    defaults = panel["fieldConfig"]["defaults"]
    rename = {}
    for tr in panel.get("transformations", []):
        if tr.get("id") == "organize":
            rename.update(tr.get("options", {}).get("renameByName", {}))
    rows = []
    for _, expr in queries:
        rows += src.instant(expr)
    if not rows:
        return no_data(canvas, body)
    keys = sorted({k for m, _ in rows for k in m if k != "__name__"})
    header = keys + [rename.get("Value", "Value")]
    line = 19
    rows, note = fitting(sorted(rows, key=lambda r: [r[0].get(k, "") for k in keys]), int(h / line) - 1,
                         lambda r: not r[1])
    cells = [[m.get(k, "") for k in keys] + [fmt(v, defaults.get("unit"), defaults.get("decimals"))] for m, v in rows]
    widths = [max(len(str(r[i])) for r in cells + [header]) + 3 for i in range(len(header))]
    scale = w / sum(widths)
    ax = canvas.pixel_axes(x, y, w, h)
    for r, values in enumerate([header] + cells):
        cy, cx = r * line, 0
        if r:
            ax.plot([0, w], [cy, cy], color=BORDER, linewidth=0.8)
        for i, value in enumerate(values):
            cw = widths[i] * scale
            right = i == len(values) - 1
            ax.text(cx + cw - 6 if right else cx + 4, cy + line / 2, clip(str(value), cw - 8, 7.5),
                    color=DIM if r == 0 else TEXT, fontsize=7.5, va="center", ha="right" if right else "left",
                    fontweight="bold" if r == 0 else "normal")
            cx += cw
    if note:
        ax.text(4, (len(cells) + 1) * line + line / 2, note.replace("more", "more rows"), color=DIM, fontsize=7.5,
                va="center")


KINDS = {"timeseries": timeseries, "stat": stat, "bargauge": bargauge, "table": table}


def render(board, src, variables, width, instances, failures):
    panels = list(all_panels(board))
    units = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    height = HEADER + units * UNIT + MARGIN
    canvas = Canvas(width, height)
    col = (width - 2 * MARGIN + GUTTER) / 24
    start, end = (datetime.datetime.fromtimestamp(t, UTC) for t in (src.start, src.end))
    canvas.text(MARGIN, 26, board.get("title", ""), color=TEXT, fontsize=15, fontweight="bold", va="baseline")
    canvas.text(
        MARGIN, 48,
        f"{start:%Y-%m-%d %H:%M:%S} to {end:%H:%M:%S} UTC ({duration(src.end - src.start)}), "
        f"instance = All ({', '.join(instances) or 'none'}). Drawn by tests/ops/render_dashboards.py from the "
        f"dashboard's own queries against Prometheus: the panels as Grafana lays them out, not a Grafana screenshot.",
        color=DIM, fontsize=8, va="baseline",
    )
    for p in panels:
        g = p["gridPos"]
        px, py = MARGIN + g["x"] * col, HEADER + g["y"] * UNIT
        pw, ph = g["w"] * col - GUTTER, g["h"] * UNIT - GUTTER
        if p.get("type") == "row":
            canvas.text(px, py + UNIT / 2 + 1, "▾ " + p.get("title", ""), color=TEXT, fontsize=11, fontweight="bold",
                        va="center")
            continue
        frame = canvas.axes(px, py, pw, ph)
        frame.set_facecolor(PANEL)
        frame.set_xticks([])
        frame.set_yticks([])
        for s in frame.spines.values():
            s.set_color(BORDER)
        canvas.text(px + 8, py + TITLE / 2 + 1, clip(p.get("title", ""), pw - 16, 9), color=TEXT, fontsize=9,
                    fontweight="bold", va="center")
        body = (px + 8, py + TITLE + 2, pw - 16, ph - TITLE - 10)
        queries = [(t, substitute(t["expr"], variables)) for t in p.get("targets", []) if t.get("expr")]
        try:
            KINDS.get(p["type"], lambda *a: no_data(canvas, body, f"panel type {p['type']} not drawn"))(
                canvas, body, p, src, queries)
        except QueryError as e:
            failures.add(f"{board.get('title')} / {p.get('title')}", str(e))
            no_data(canvas, body, f"query failed: {e}", COLORS["red"])
    return canvas.fig


def timestamp(text):
    try:
        return float(text)
    except ValueError:
        t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", help="where to write the PNG files")
    ap.add_argument("--prometheus", required=True, help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    ap.add_argument("--range", type=int, help="the last SECONDS (default: since Prometheus started)")
    ap.add_argument("--start", type=timestamp, help="start of the time range (unix seconds or ISO 8601)")
    ap.add_argument("--end", type=timestamp, help="end of the time range (default: now)")
    ap.add_argument("--scrape-interval", default="15s", help="Prometheus' scrape interval (default 15s)")
    ap.add_argument("--width", type=int, default=1600, help="picture width in pixels (default 1600)")
    ap.add_argument("--grafana-dir", default=os.path.join(REPO, "deploy", "grafana"))
    args = ap.parse_args()
    prom = Prometheus(args.prometheus)
    end = args.end or datetime.datetime.now(UTC).timestamp()
    if args.start is not None:
        start = args.start
    elif args.range:
        start = end - args.range
    else:
        info = prom.get("/api/v1/status/runtimeinfo", {})
        if info.get("status") != "success":
            raise SystemExit(f"cannot read when Prometheus started: {info}")
        start = timestamp(re.sub(r"(\.\d{6})\d*", r"\1", info["data"]["startTime"]))
    start, end = int(start), int(end)
    if end - start < 10:
        raise SystemExit(f"time range of {end - start} s: too short to draw")
    scrape = seconds(args.scrape_interval)
    step = max(scrape, 1, round((end - start) / 300))
    variables = {
        "datasource": "prometheus",
        "__interval": f"{step}s",
        "__interval_ms": str(step * 1000),
        "__rate_interval": f"{max(step + scrape, 4 * scrape)}s",
        "__range": f"{end - start}s",
        "__range_s": str(end - start),
        "__range_ms": str((end - start) * 1000),
    }
    src = Source(prom, start, end, step)
    failures = Failures()
    boards = load_boards(args.grafana_dir, failures)
    os.makedirs(args.out_dir, exist_ok=True)
    for name, board in boards:
        inst = template_vars(board).get("instance", {})
        metric = re.sub(r"label_values\((\w+),.*", r"\1", variable_query(inst) or "")
        body = prom.get("/api/v1/label/instance/values", {"match[]": metric, "start": start, "end": end})
        instances = body.get("data") or []
        all_value = inst.get("allValue") or "(" + "|".join(re.escape(i) for i in instances) + ")"
        fig = render(board, src, dict(variables, instance=all_value), args.width, instances, failures)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, facecolor=PAGE)
        plt.close(fig)
        path = os.path.join(args.out_dir, name.removesuffix(".json") + ".png")
        # 256 colours: a third of the size, no visible difference on these.
        Image.open(buf).convert("RGB").quantize(256).save(path, optimize=True)
        print(f"{path}: {os.path.getsize(path) // 1024} KB")
    if failures:
        print(f"{len(failures.items)} problems:\n  " + "\n  ".join(failures.items))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
