"""The pooled tables of scripts/evaluate.sh, and its gate.

Usage: evaluation_tables.py OUT SEED...   (the default scenario's seeds)
Env:   REGION_RUNS, REFERENCE_RUNS, INTENSITY_RUNS   seeds of those runs
       CHECK_TARGETS=1                               exit 1 when a target is missed

Reads OUT/<run>-<seed>/evaluation.json (`tillsyn-sim evaluate --json`) and
OUT/<run>-<seed>/partitions.txt (the 12-partition comparison) and prints
Markdown: one pooled table per kind of run, the patterns, and for the runs
at every intensity the buckets and the subtle-fraud targets (issue 15),
which CHECK_TARGETS=1 enforces with the others.
"""
import json
import math
import os
import sys


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def nearest_rank(xs, percent):
    """The nearest-rank percentile of `xs` (as `tillsyn-sim evaluate`)."""
    xs = sorted(xs)
    return xs[max(1, math.ceil(len(xs) * percent / 100)) - 1] if xs else None


def hours(x):
    return f"{x:.1f}" if x is not None else "n/a"


class Pool:
    """The runs of one kind (`kind`-`seed` under `out`), pooled."""

    def __init__(self, out, kind, seeds):
        self.seeds = seeds
        self.runs = [json.load(open(f"{out}/{kind}-{s}/evaluation.json")) for s in seeds]
        self.same = [open(f"{out}/{kind}-{s}/partitions.txt").read().strip().endswith("identical") for s in seeds]
        self.opened = sum(r["alerts"]["opened"] for r in self.runs)

    def total(self, key):
        return sum(r[key] for r in self.runs)

    @property
    def recall(self):
        return self.total("detectedProviders") / max(1, self.total("fraudulentProviders"))

    @property
    def precision(self):
        return self.total("trueAlerts") / max(1, self.opened)

    @property
    def false_rate(self):
        return 100 * self.total("falseAlerts") / self.total("cleanProviderMonths")

    @property
    def all_same(self):
        return all(self.same)

    def medians(self):
        return [r["delay"]["medianHours"] for r in self.runs]

    def pooled_p90(self):
        """The p90 of every detected label's delay, all seeds pooled."""
        return nearest_rank([h for r in self.runs for h in r["delay"]["hours"]], 90)

    def summary(self, title, providers="providers (fraudulent)", p90=False, provider_precision=False, count_same=False):
        print(f"\n## {title}\n")
        print("| figure | value |\n|---|---:|")
        print(f"| {providers} | {self.total('providers')} ({self.total('fraudulentProviders')}) |")
        print(f"| labels (detected) | {self.total('labels')} ({self.total('detectedLabels')}) |")
        print(f"| provider recall | {self.recall:.3f} |")
        if provider_precision:
            print(f"| provider precision | {self.total('detectedProviders') / max(1, self.total('alertedProviders')):.3f} |")
        strict = self.total("trueAlertsStrict") / max(1, self.opened)
        print(f"| alert precision, lenient (strict) | {self.precision:.3f} ({strict:.3f}) |")
        print(f"| opened alerts (false) | {self.opened} ({self.total('falseAlerts')}) |")
        if p90:
            delays = ", ".join("%.1f / %.1f" % (r["delay"]["medianHours"], r["delay"]["p90Hours"]) for r in self.runs)
            print(f"| median / p90 detection delay per seed (h) | {delays} |")
            print(f"| p90 detection delay, every label of the seeds pooled (h) | {hours(self.pooled_p90())} |")
        else:
            print("| median detection delay per seed (h) | " + ", ".join("%.1f" % m for m in self.medians()) + " |")
        print(f"| false alerts per 100 clean provider-months | {self.false_rate:.2f} |")
        same = "byte-identical to 1 partition" if self.all_same else "DIFFERENT from 1 partition"
        if count_same:
            same += f" ({sum(self.same)} of {len(self.same)} seeds)"
        print(f"| alerts with 12 partitions | {same} |")

    def patterns(self, only=None):
        """Per pattern: name, labels, detected, each run's median and p90 delay."""
        table = {}
        for r in self.runs:
            for p in r["patterns"]:
                if only is not None and p["pattern"] not in only:
                    continue
                d = table.setdefault(p["pattern"], {"name": p["name"], "labels": 0, "detected": 0, "medians": [], "p90": []})
                d["labels"] += p["labels"]
                d["detected"] += p["detected"]
                delay = p.get("delay", {})
                if delay.get("medianHours") is not None:
                    d["medians"].append(delay["medianHours"])
                    d["p90"].append(delay.get("p90Hours") or delay["medianHours"])
        return table

    def buckets(self):
        """Per intensity bucket: providers, detected, labels, detected, medians, every delay."""
        table = {}
        for r in self.runs:
            for b in r.get("intensity", []):
                d = table.setdefault(b["bucket"], {"p": 0, "dp": 0, "l": 0, "dl": 0, "med": [], "hours": []})
                d["p"] += b["providers"]
                d["dp"] += b["detectedProviders"]
                d["l"] += b["labels"]
                d["dl"] += b["detectedLabels"]
                if b["delay"].get("medianHours") is not None:
                    d["med"].append(b["delay"]["medianHours"])
                d["hours"] += b["delay"]["hours"]
        return table

    def cells(self):
        """Per pattern and bucket: [detected, labels]."""
        table = {}
        for r in self.runs:
            for p in r["patterns"]:
                row = table.setdefault(p["pattern"], {"name": p["name"]})
                for c in p.get("intensity", []):
                    x = row.setdefault(c["bucket"], [0, 0])
                    x[0] += c["detected"]
                    x[1] += c["labels"]
        return table


def pool(out, kind, env):
    seeds = os.environ.get(env, "").split()
    return Pool(out, kind, seeds) if seeds else None


def main():
    out, seeds = sys.argv[1], sys.argv[2:]
    default = Pool(out, "seed", seeds)
    default.summary(f"all seeds ({', '.join(seeds)}) pooled", provider_precision=True, count_same=True)
    print("\n| # | pattern | labels | detected | recall | median delay (h) |\n|---:|---|---:|---:|---:|---:|")
    for n, d in sorted(default.patterns().items()):
        m = hours(median(d["medians"]) if d["medians"] else None)
        print(f"| {n} | {d['name']} | {d['labels']} | {d['detected']} | {d['detected'] / max(1, d['labels']):.2f} | {m} |")

    region = pool(out, "region", "REGION_RUNS")
    if region:
        region.summary(
            f"region ({len(region.seeds)} seeds: {', '.join(region.seeds)}) pooled: 3 municipalities, branches in two, "
            "staff with two employers",
            providers="providers in a municipality (fraudulent)",
        )

    reference = pool(out, "reference", "REFERENCE_RUNS")
    reference_delay, reference_label_recall = 0.0, 1.0
    if reference:
        reference.summary(
            f"with reference data ({len(reference.seeds)} seeds: {', '.join(reference.seeds)}) pooled: decisions, "
            "absences, the provider register"
        )
        print("\n| # | pattern | labels | detected | median delay (h) | p90 delay (h) |\n|---:|---|---:|---:|---:|---:|")
        needing = reference.patterns(only=(11, 15, 16))
        for n, d in sorted(needing.items()):
            m = hours(median(d["medians"]) if d["medians"] else None)
            q = hours(max(d["p90"]) if d["p90"] else None)
            print(f"| {n} | {d['name']} | {d['labels']} | {d['detected']} | {m} | {q} |")
        # The patterns that need the reference data: every seed's median
        # delay of each, and their labels found.
        reference_delay = max((x for d in needing.values() for x in d["medians"]), default=float("inf"))
        found = sum(d["detected"] for d in needing.values())
        reference_label_recall = found / max(1, sum(d["labels"] for d in needing.values()))

    wide = pool(out, "intensity", "INTENSITY_RUNS")
    subtle_missed = []
    if wide:
        wide.summary(
            f"every intensity ({len(wide.seeds)} seeds: {', '.join(wide.seeds)}) pooled: subtle to blatant fraud", p90=True
        )
        print(
            "\n| intensity | providers (detected) | provider recall | labels (detected) | median delay (h) | p90 delay, pooled (h) |"
            "\n|---|---:|---:|---:|---:|---:|"
        )
        buckets = wide.buckets()
        for name in ("subtle", "moderate", "blatant"):
            if name in buckets:
                d = buckets[name]
                m = hours(median(d["med"]) if d["med"] else None)
                q = hours(nearest_rank(d["hours"], 90))
                print(f"| {name} | {d['p']} ({d['dp']}) | {d['dp'] / max(1, d['p']):.3f} | {d['l']} ({d['dl']}) | {m} | {q} |")
        print("\n| # | pattern | subtle | moderate | blatant |\n|---:|---|---:|---:|---:|")
        for n, row in sorted(wide.cells().items()):
            cell = lambda b: f"{row[b][0]}/{row[b][1]}" if b in row else "-"
            print(f"| {n} | {row['name']} | {cell('subtle')} | {cell('moderate')} | {cell('blatant')} |")
        bucket_recall = min((d["dp"] / max(1, d["p"]) for d in buckets.values()), default=1.0)
        pooled_p90 = wide.pooled_p90() or 0.0
        worst_median = max((r["delay"]["medianHours"] or 0.0) for r in wide.runs)
        subtle_missed = [name for name, ok in [
            (f"provider recall in every bucket {bucket_recall:.3f} >= 0.95", bucket_recall >= 0.95),
            (f"alert precision {wide.precision:.3f} >= 0.95", wide.precision >= 0.95),
            (f"median delay {worst_median:.1f} h <= 24 h in every seed", worst_median <= 24.0),
            (f"p90 delay {pooled_p90:.1f} h <= 168 h, the seeds' labels pooled", pooled_p90 <= 168.0),
            (f"false alerts per 100 clean provider-months {wide.false_rate:.2f} <= 0.5", wide.false_rate <= 0.5),
        ] if not ok]
        print("\nsubtle-fraud targets (issue 15): " + ("all met" if not subtle_missed else "missed: " + "; ".join(subtle_missed)))

    if os.environ.get("CHECK_TARGETS") == "1":
        worst_delay = max(default.medians())
        same = lambda p: p is None or p.all_same
        reference_recall = reference.recall if reference else 1.0
        reference_precision = reference.precision if reference else 1.0
        failed = [name for name, ok in [
            (f"provider recall {default.recall:.3f} >= 0.95", default.recall >= 0.95),
            (f"alert precision {default.precision:.3f} >= 0.90", default.precision >= 0.90),
            (f"median detection delay {worst_delay:.1f} h <= 24 h in every seed", worst_delay <= 24.0),
            ("the same alerts with 12 partitions as with 1", default.all_same),
            ("the region's alerts the same with 12 partitions as with 1", same(region)),
            (f"with reference data, provider recall {reference_recall:.3f} >= 0.95", reference_recall >= 0.95),
            (f"with reference data, alert precision {reference_precision:.3f} >= 0.90", reference_precision >= 0.90),
            ("with reference data, the same alerts with 12 partitions as with 1", same(reference)),
            ("at every intensity, the same alerts with 12 partitions as with 1", same(wide)),
            (f"with reference data, label recall of patterns 11, 15, 16 {reference_label_recall:.3f} >= 0.95", reference_label_recall >= 0.95),
            (f"with reference data, median delay of patterns 11, 15, 16 {reference_delay:.1f} h <= 24 h in every seed", reference_delay <= 24.0),
        ] if not ok] + [f"at every intensity, {name}" for name in subtle_missed]
        if failed:
            print("\nDETECTION TARGETS MISSED: " + "; ".join(failed))
            sys.exit(1)
        print(
            f"\ndetection targets met: recall {default.recall:.3f}, precision {default.precision:.3f}, "
            f"worst median delay {worst_delay:.1f} h"
        )


if __name__ == "__main__":
    main()
