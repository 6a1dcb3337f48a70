#!/usr/bin/env bash
# The demo of the README: simulate a municipality with labelled fraud, run
# the detection core over it, show the alerts as a case officer would read
# them, and score them against the simulator's ground truth.
# Usage: scripts/demo.sh [seed]
set -euo pipefail
cd "$(dirname "$0")/.."
seed=${1:-1}
out=out/demo
mkdir -p "$out"
echo "== building (release)"
cargo build --locked --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/tillsyn"
sim="${CARGO_TARGET_DIR:-target}/release/tillsyn-sim"
echo "== simulating a municipality: 40 providers, 2,500 clients, 6 months, seed $seed"
"$sim" simulate --seed "$seed" --out "$out/events.ndjson" --truth "$out/truth.json"
echo "== replaying the events through the detection core"
"$bin" replay --events "$out/events.ndjson" --alerts "$out/alerts.ndjson" --dead-letter "$out/dead-letter.ndjson"
echo
echo "== the first opened alerts (all in $out/alerts.ndjson)"
python3 - "$out/alerts.ndjson" <<'PY'
import json, sys
shown = 0
for line in open(sys.argv[1]):
    a = json.loads(line)
    if a.get("status") != "ALERT_STATUS_OPENED":
        continue
    sev = a["severity"].removeprefix("SEVERITY_").lower()
    obs, exp = a.get("observed", {}), a.get("expected", {})
    print(f"[{a['detectedAt'][:16]}] {sev:<8} {a['ruleId']} (pattern {a['pattern']}) provider {a['providerId']}")
    print(f"    observed {obs.get('value', 0):.2f} {obs.get('unit', '')}, expected {exp.get('value', 0):.2f} {exp.get('unit', '')}")
    print(f"    {a['explanation']}")
    print(f"    evidence: {', '.join(a.get('evidenceEventIds', [])[:4])}")
    shown += 1
    if shown == 8:
        break
PY
echo
echo "== how well the alerts match the injected fraud"
"$sim" evaluate --alerts "$out/alerts.ndjson" --truth "$out/truth.json"
