#!/usr/bin/env bash
# The evaluation of the README: for each seed, simulate the default
# municipality (40 providers, 6 months, all implemented patterns injected),
# replay it through the core and score the alerts against the ground truth.
# Usage: scripts/evaluate.sh [seed...]   (default: 1 2 3 4 5)
# Then the region scenario (three municipalities, companies with a branch
# in two, staff with two employers) for each of REGION_SEEDS (default
# "1 2"; empty to skip), reported in its own table.
# Every run is also replayed as 12 partitions (the topology the service
# runs: global peer table, staff stage); its alert file must be
# byte-identical to the one-partition reference.
# Then the default scenario with reference data (`--reference`: decisions,
# absences, the provider register, and the frauds that need them) for each
# of REFERENCE_SEEDS (default "1 2"; empty to skip), replayed with
# core.reference on, in its own table.
# With CHECK_TARGETS=1 it fails unless, pooled over the seeds, provider
# recall >= 0.95 and alert precision >= 0.90, and every seed's median
# detection delay is <= 24 h (the project's detection targets).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/tillsyn"
sim="${CARGO_TARGET_DIR:-target}/release/tillsyn-sim"
out=${OUT:-out/evaluation}
mkdir -p "$out"
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3 4 5)
# run DIR [simulate flags...]: simulate, replay as 1 and as 12 partitions,
# evaluate.
run() {
  local dir=$1
  shift
  mkdir -p "$dir"
  "$sim" simulate "$@" --out "$dir/events.ndjson" --truth "$dir/truth.json"
  "$bin" replay --events "$dir/events.ndjson" --alerts "$dir/alerts.ndjson" --dead-letter "$dir/dead-letter.ndjson" \
    --summary-json "$dir/summary.json" 2>"$dir/replay.txt"
  "$bin" replay --events "$dir/events.ndjson" --alerts "$dir/alerts-12.ndjson" --partitions 12 2>/dev/null
  if cmp -s "$dir/alerts.ndjson" "$dir/alerts-12.ndjson"; then
    echo "partitions 12: identical" > "$dir/partitions.txt"
  else
    echo "partitions 12: DIFFERENT" > "$dir/partitions.txt"
  fi
  "$sim" evaluate --alerts "$dir/alerts.ndjson" --truth "$dir/truth.json" | tee "$dir/evaluation.md"
  "$sim" evaluate --alerts "$dir/alerts.ndjson" --truth "$dir/truth.json" --json > "$dir/evaluation.json"
}
for seed in "${seeds[@]}"; do
  echo "## seed $seed"
  run "$out/seed-$seed" --seed "$seed"
done
region_seeds=(${REGION_SEEDS-1 2})
for seed in "${region_seeds[@]}"; do
  echo "## region, seed $seed"
  run "$out/region-$seed" --region --seed "$seed"
done

reference_seeds=(${REFERENCE_SEEDS-1 2})
for seed in "${reference_seeds[@]}"; do
  echo "## reference data, seed $seed"
  (export TILLSYN_CORE__REFERENCE__ENABLED=true; run "$out/reference-$seed" --reference --seed "$seed")
done

# All seeds pooled: one table for the README.
REGION_RUNS="${region_seeds[*]}" REFERENCE_RUNS="${reference_seeds[*]}" python3 - "$out" "${seeds[@]}" <<'PY'
import json, os, sys
out, seeds = sys.argv[1], sys.argv[2:]
runs = [json.load(open(f"{out}/seed-{s}/evaluation.json")) for s in seeds]
tot = lambda k: sum(r[k] for r in runs)
opened = sum(r["alerts"]["opened"] for r in runs)
def med(xs):
    xs = sorted(xs); n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2
print(f"\n## all seeds ({', '.join(seeds)}) pooled\n")
print("| figure | value |\n|---|---:|")
print(f"| providers (fraudulent) | {tot('providers')} ({tot('fraudulentProviders')}) |")
print(f"| labels (detected) | {tot('labels')} ({tot('detectedLabels')}) |")
print(f"| provider recall | {tot('detectedProviders') / tot('fraudulentProviders'):.3f} |")
print(f"| provider precision | {tot('detectedProviders') / max(1, tot('alertedProviders')):.3f} |")
print(f"| alert precision, lenient (strict) | {tot('trueAlerts') / max(1, opened):.3f} ({tot('trueAlertsStrict') / max(1, opened):.3f}) |")
print(f"| opened alerts (false) | {opened} ({tot('falseAlerts')}) |")
delays = ", ".join("%.1f" % r["delay"]["medianHours"] for r in runs)
print(f"| median detection delay per seed (h) | {delays} |")
print(f"| false alerts per 100 clean provider-months | {100 * tot('falseAlerts') / tot('cleanProviderMonths'):.2f} |")
same = [open(f"{out}/seed-{s}/partitions.txt").read().strip().endswith("identical") for s in seeds]
print(f"| alerts with 12 partitions | {'byte-identical to 1 partition' if all(same) else 'DIFFERENT from 1 partition'} ({sum(same)} of {len(same)} seeds) |")
print("\n| # | pattern | labels | detected | recall | median delay (h) |\n|---:|---|---:|---:|---:|---:|")
patterns = {}
for r in runs:
    for p in r["patterns"]:
        d = patterns.setdefault(p["pattern"], {"name": p["name"], "labels": 0, "detected": 0, "medians": []})
        d["labels"] += p["labels"]; d["detected"] += p["detected"]
        if p.get("delay", {}).get("medianHours") is not None:
            d["medians"].append(p["delay"]["medianHours"])
for n in sorted(patterns):
    d = patterns[n]
    m = f"{med(d['medians']):.1f}" if d["medians"] else "n/a"
    print(f"| {n} | {d['name']} | {d['labels']} | {d['detected']} | {d['detected'] / max(1, d['labels']):.2f} | {m} |")

region_seeds = os.environ.get("REGION_RUNS", "").split()
region_same = True
if region_seeds:
    regions = [json.load(open(f"{out}/region-{s}/evaluation.json")) for s in region_seeds]
    rt = lambda k: sum(r[k] for r in regions)
    ropened = sum(r["alerts"]["opened"] for r in regions)
    region_same = all(open(f"{out}/region-{s}/partitions.txt").read().strip().endswith("identical") for s in region_seeds)
    print(f"\n## region ({len(region_seeds)} seeds: {', '.join(region_seeds)}) pooled: 3 municipalities, branches in two, staff with two employers\n")
    print("| figure | value |\n|---|---:|")
    print(f"| providers in a municipality (fraudulent) | {rt('providers')} ({rt('fraudulentProviders')}) |")
    print(f"| labels (detected) | {rt('labels')} ({rt('detectedLabels')}) |")
    print(f"| provider recall | {rt('detectedProviders') / rt('fraudulentProviders'):.3f} |")
    print(f"| alert precision, lenient (strict) | {rt('trueAlerts') / max(1, ropened):.3f} ({rt('trueAlertsStrict') / max(1, ropened):.3f}) |")
    print(f"| opened alerts (false) | {ropened} ({rt('falseAlerts')}) |")
    print("| median detection delay per seed (h) | " + ", ".join("%.1f" % r["delay"]["medianHours"] for r in regions) + " |")
    print(f"| false alerts per 100 clean provider-months | {100 * rt('falseAlerts') / rt('cleanProviderMonths'):.2f} |")
    print(f"| alerts with 12 partitions | {'byte-identical to 1 partition' if region_same else 'DIFFERENT from 1 partition'} |")

reference_seeds = os.environ.get("REFERENCE_RUNS", "").split()
reference_same, reference_recall, reference_precision = True, 1.0, 1.0
reference_delay, reference_label_recall = 0.0, 1.0
if reference_seeds:
    refs = [json.load(open(f"{out}/reference-{s}/evaluation.json")) for s in reference_seeds]
    ft = lambda k: sum(r[k] for r in refs)
    fopened = sum(r["alerts"]["opened"] for r in refs)
    reference_same = all(open(f"{out}/reference-{s}/partitions.txt").read().strip().endswith("identical") for s in reference_seeds)
    reference_recall = ft("detectedProviders") / ft("fraudulentProviders")
    reference_precision = ft("trueAlerts") / max(1, fopened)
    print(f"\n## with reference data ({len(reference_seeds)} seeds: {', '.join(reference_seeds)}) pooled: decisions, absences, the provider register\n")
    print("| figure | value |\n|---|---:|")
    print(f"| providers (fraudulent) | {ft('providers')} ({ft('fraudulentProviders')}) |")
    print(f"| labels (detected) | {ft('labels')} ({ft('detectedLabels')}) |")
    print(f"| provider recall | {reference_recall:.3f} |")
    print(f"| alert precision, lenient (strict) | {reference_precision:.3f} ({ft('trueAlertsStrict') / max(1, fopened):.3f}) |")
    print(f"| opened alerts (false) | {fopened} ({ft('falseAlerts')}) |")
    print("| median detection delay per seed (h) | " + ", ".join("%.1f" % r["delay"]["medianHours"] for r in refs) + " |")
    print(f"| false alerts per 100 clean provider-months | {100 * ft('falseAlerts') / ft('cleanProviderMonths'):.2f} |")
    print(f"| alerts with 12 partitions | {'byte-identical to 1 partition' if reference_same else 'DIFFERENT from 1 partition'} |")
    print("\n| # | pattern | labels | detected | median delay (h) | p90 delay (h) |\n|---:|---|---:|---:|---:|---:|")
    fp = {}
    for r in refs:
        for p in r["patterns"]:
            if p["pattern"] not in (11, 15, 16):
                continue
            d = fp.setdefault(p["pattern"], {"name": p["name"], "labels": 0, "detected": 0, "medians": [], "p90": []})
            d["labels"] += p["labels"]; d["detected"] += p["detected"]
            if p.get("delay", {}).get("medianHours") is not None:
                d["medians"].append(p["delay"]["medianHours"])
                d["p90"].append(p["delay"].get("p90Hours") or p["delay"]["medianHours"])
    for n in sorted(fp):
        d = fp[n]
        m = f"{med(d['medians']):.1f}" if d["medians"] else "n/a"
        q = f"{max(d['p90']):.1f}" if d["p90"] else "n/a"
        print(f"| {n} | {d['name']} | {d['labels']} | {d['detected']} | {m} | {q} |")
    # The patterns that need the reference data: every seed's median delay
    # of each, and their labels found.
    reference_delay = max((x for d in fp.values() for x in d["medians"]), default=float("inf"))
    reference_label_recall = sum(d["detected"] for d in fp.values()) / max(1, sum(d["labels"] for d in fp.values()))

if os.environ.get("CHECK_TARGETS") == "1":
    recall = tot("detectedProviders") / tot("fraudulentProviders")
    precision = tot("trueAlerts") / max(1, opened)
    worst_delay = max(r["delay"]["medianHours"] for r in runs)
    failed = [name for name, ok in [
        (f"provider recall {recall:.3f} >= 0.95", recall >= 0.95),
        (f"alert precision {precision:.3f} >= 0.90", precision >= 0.90),
        (f"median detection delay {worst_delay:.1f} h <= 24 h in every seed", worst_delay <= 24.0),
        ("the same alerts with 12 partitions as with 1", all(same)),
        ("the region's alerts the same with 12 partitions as with 1", region_same),
        (f"with reference data, provider recall {reference_recall:.3f} >= 0.95", reference_recall >= 0.95),
        (f"with reference data, alert precision {reference_precision:.3f} >= 0.90", reference_precision >= 0.90),
        ("with reference data, the same alerts with 12 partitions as with 1", reference_same),
        (f"with reference data, label recall of patterns 11, 15, 16 {reference_label_recall:.3f} >= 0.95", reference_label_recall >= 0.95),
        (f"with reference data, median delay of patterns 11, 15, 16 {reference_delay:.1f} h <= 24 h in every seed", reference_delay <= 24.0),
    ] if not ok]
    if failed:
        print("\nDETECTION TARGETS MISSED: " + "; ".join(failed))
        sys.exit(1)
    print(f"\ndetection targets met: recall {recall:.3f}, precision {precision:.3f}, worst median delay {worst_delay:.1f} h")
PY
