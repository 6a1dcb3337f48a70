#!/usr/bin/env bash
# The evaluation of the README: for each seed, simulate the default
# municipality (40 providers, 6 months, all implemented patterns injected),
# replay it through the core and score the alerts against the ground truth.
# Usage: scripts/evaluate.sh [seed...]   (default: 1 2 3)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --release --quiet
bin=target/release/tillsyn
out=${OUT:-out/evaluation}
mkdir -p "$out"
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
for seed in "${seeds[@]}"; do
  dir="$out/seed-$seed"
  mkdir -p "$dir"
  "$bin" simulate --seed "$seed" --out "$dir/events.ndjson" --truth "$dir/truth.json"
  "$bin" replay --events "$dir/events.ndjson" --alerts "$dir/alerts.ndjson" --dead-letter "$dir/dead-letter.ndjson" \
    --summary-json "$dir/summary.json" 2>"$dir/replay.txt"
  echo "## seed $seed"
  "$bin" evaluate --alerts "$dir/alerts.ndjson" --truth "$dir/truth.json" | tee "$dir/evaluation.md"
  "$bin" evaluate --alerts "$dir/alerts.ndjson" --truth "$dir/truth.json" --json > "$dir/evaluation.json"
done
