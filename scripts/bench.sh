#!/usr/bin/env bash
# Speed and memory figures: criterion benchmarks of the core and the
# national-scale memory run. Prints the figures; compare with the targets in
# the README (>= 3 M events/s on one core, <= 2 GiB at national scale).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --locked -p tillsyn-sim --bench core -- --noplot
cargo run --locked --release -p tillsyn-sim --example national_scale -- "${DAYS:-100}"
