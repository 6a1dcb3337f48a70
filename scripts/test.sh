#!/usr/bin/env bash
# The test command of the README: formatting-independent unit, property and
# integration tests of the whole crate.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --all-targets
