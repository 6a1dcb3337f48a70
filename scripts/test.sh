#!/usr/bin/env bash
# The test command of the README: unit, property and integration tests of
# the whole crate, then the detection targets on the simulated evaluation
# scenario (5 seeds, release build), which fails the run if they are missed.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --all-targets
mkdir -p out
CHECK_TARGETS=1 OUT=out/test-evaluation scripts/evaluate.sh 1 2 3 4 5 > out/test-evaluation.md 2>&1 || {
  cat out/test-evaluation.md
  exit 1
}
tail -n 1 out/test-evaluation.md
