#!/usr/bin/env bash
# Fuzzes tillsyn's record decoders, validator and engine with libFuzzer
# (the cargo project in fuzz/) on the stable toolchain, one target after the
# other, and prints per target: executions, exec/s, corpus size, crashes.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#        (default 1800 s each; targets: decode_protobuf decode_json
#        validate_event engine_sequence)
# Env:   TILLSYN_TOOLS        cache root for cargo-fuzz (default: $HOME/.cache/tillsyn/tools)
#        FUZZ_NICE            niceness of builds and runs (default 10: leaves room for other builds)
#        FUZZ_JOBS            targets fuzzed at the same time (default 1; one core each)
#        TILLSYN_FUZZ_STRICT  1: known, reported deviations (fuzz/src/lib.rs KNOWN_ISSUES) fail too
#
# Installs cargo-fuzz once into the cache (about a minute) and the Debian
# packages the build needs if missing; builds the targets into fuzz/target
# with sanitizer coverage and debug assertions, without AddressSanitizer
# (the crate has no unsafe code, and ASan's C flags break the librdkafka
# build the crate pulls in); writes seed corpora from the simulator to
# fuzz/seeds/; keeps the growing corpora in fuzz/corpus/<target>, crash
# inputs in fuzz/artifacts/<target>/, logs and a summary in fuzz/logs/
# (summary.md). One instance at a time (a lock in fuzz/target).
# A target that crashes is restarted for the rest of its time (at most 20
# crashes per target). Exits 1 if any target crashed, else 0.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
ALL_TARGETS=(decode_protobuf decode_json validate_event engine_sequence)
MAX_CRASHES=20

seconds=${1:-1800}
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || { echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2; }
shift || true
targets=("$@")
((${#targets[@]})) || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
    [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || { echo "fuzz: unknown target $t (have: ${ALL_TARGETS[*]})" >&2; exit 2; }
done

tools=${TILLSYN_TOOLS:-$HOME/.cache/tillsyn/tools}
nice_level=${FUZZ_NICE:-10}
jobs=${FUZZ_JOBS:-1}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: FUZZ_JOBS must be a positive number" >&2; exit 2; }
root="$tools/cargo-fuzz-$CARGO_FUZZ_VERSION"
bin="$root/bin/cargo-fuzz"
log() { echo "fuzz: $*" >&2; }

# ------------------------------------------------------------ tools

works() {
    [[ -x $bin ]] && "$bin" --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"
}

# Debian packages: C and C++ compilers (libFuzzer is C++; librdkafka, zstd
# are C), pkg-config and OpenSSL headers for rdkafka's TLS.
# shellcheck source=deploy/local/debian-packages.sh
source deploy/local/debian-packages.sh
if ! ensure_debian_packages gcc g++ make libc6-dev pkg-config libssl-dev ca-certificates; then
    command -v c++ >/dev/null 2>&1 || { log "no C++ compiler (c++) found; install one first"; exit 1; }
fi
command -v cargo >/dev/null 2>&1 || { log "cargo not found: install the Rust toolchain (rustup) first"; exit 1; }

if ! works; then
    mkdir -p "$tools"
    # One install at a time.
    exec 9>"$tools/.cargo-fuzz-$CARGO_FUZZ_VERSION.lock"
    command -v flock >/dev/null 2>&1 && flock 9
    if ! works; then
        log "installing cargo-fuzz $CARGO_FUZZ_VERSION into $root (about a minute)"
        nice -n "$nice_level" cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$root" >&2
        works || { log "$bin does not run after the install"; exit 1; }
    fi
    exec 9>&-
fi

# ------------------------------------------------------------ build

# One instance at a time: they would share the build, seeds and corpora.
mkdir -p fuzz/target
exec 8>fuzz/target/.fuzz-sh.lock
if command -v flock >/dev/null 2>&1 && ! flock -n 8; then
    log "another scripts/fuzz.sh is running"
    exit 1
fi

# cargo-fuzz's flags: sancov (inline 8-bit counters, PC table, trace-cmp),
# --cfg fuzzing, debug assertions and overflow checks, -O. No -Z flag is
# passed without a sanitizer, so the stable toolchain builds it as it is
# (RUSTC_BOOTSTRAP is not needed).
fuzz_build=(nice -n "$nice_level" "$bin" build --fuzz-dir fuzz --release --debug-assertions --sanitizer none)
log "building the fuzz targets (first time: 4 to 8 min on 2 cores)"
started=$(date +%s)
"${fuzz_build[@]}" >&2
log "built in $(($(date +%s) - started)) s"
exe_dir=fuzz/target/x86_64-unknown-linux-gnu/release

log "writing seed corpora from the simulator into fuzz/seeds"
rm -rf fuzz/seeds
nice -n "$nice_level" cargo run --quiet --manifest-path fuzz/Cargo.toml --example seeds -- fuzz/seeds >&2

# ------------------------------------------------------------ run

# Fuzzes one target for $seconds; writes its summary row to fuzz/logs/$1.row.
fuzz_one() {
    local t=$1
    local corpus=fuzz/corpus/$t artifacts=fuzz/artifacts/$t run_log=fuzz/logs/$t.log
    mkdir -p "$corpus" "$artifacts"
    local seeds=() extra=()
    [[ -d fuzz/seeds/$t ]] && seeds=("fuzz/seeds/$t")
    [[ $t == decode_json ]] && extra=(-dict=fuzz/dict/json.dict)
    : > "$run_log"
    log "$t: ${seconds} s (log: $run_log)"
    local t0 crashes=0 executions=0 left before after rc n
    t0=$(date +%s)
    while :; do
        left=$((seconds - ($(date +%s) - t0)))
        ((left > 0)) || break
        before=$(find "$artifacts" -type f | wc -l)
        set +e
        nice -n "$nice_level" "$exe_dir/$t" "$corpus" "${seeds[@]}" "${extra[@]}" \
            -max_total_time="$left" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$artifacts/" > "$run_log.part" 2>&1
        rc=$?
        set -e
        cat "$run_log.part" >> "$run_log"
        # Executions of this run (libFuzzer's final statistics).
        n=$(grep -a '^stat::number_of_executed_units:' "$run_log.part" | tail -n 1 | awk '{print $2}' || true)
        executions=$((executions + ${n:-0}))
        ((rc == 0)) && break
        after=$(find "$artifacts" -type f | wc -l)
        if ((after > before)); then
            crashes=$((crashes + after - before))
            log "$t: crash: $(grep -a -A1 'panicked at' "$run_log.part" | tail -n 1 | cut -c1-200)"
        else
            log "$t: libFuzzer exited with $rc without an artifact; see $run_log"
            crashes=$((crashes + 1))
        fi
        ((crashes < MAX_CRASHES)) || { log "$t: $MAX_CRASHES crashes, stopping this target"; break; }
    done
    rm -f "$run_log.part"
    local elapsed rate files cov
    elapsed=$(($(date +%s) - t0))
    rate=$((executions / (elapsed > 0 ? elapsed : 1)))
    files=$(find "$corpus" -type f | wc -l)
    cov=$(grep -a -E '^#[0-9]+' "$run_log" | tail -n 1 | sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/\1\/\2/p' || true)
    echo "| $t | $elapsed | $executions | $rate | $files | ${cov:-?} | $crashes |" > "fuzz/logs/$t.row"
    log "$t: done, $executions executions, $crashes crashes"
}

mkdir -p fuzz/logs
rm -f fuzz/logs/*.row
started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
if ((jobs <= 1)); then
    for t in "${targets[@]}"; do
        fuzz_one "$t"
    done
else
    for t in "${targets[@]}"; do
        while (($(jobs -rp | wc -l) >= jobs)); do
            wait -n || true
        done
        fuzz_one "$t" &
    done
    wait
fi

summary=fuzz/logs/summary.md
any_crash=0
{
    echo "# Fuzzing, started $started_at, ${seconds} s per target, $jobs at a time"
    echo
    echo "| target | seconds | executions | exec/s | corpus (files) | coverage (cov/ft) | crashes |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for t in "${targets[@]}"; do
        if [[ -f fuzz/logs/$t.row ]]; then
            cat "fuzz/logs/$t.row"
            [[ $(awk -F'|' '{gsub(/ /, "", $8); print $8}' "fuzz/logs/$t.row") == 0 ]] || any_crash=1
        else
            echo "| $t | | | | | | did not finish |"
            any_crash=1
        fi
    done
} > "$summary"
rm -f fuzz/logs/*.row

if ((any_crash)); then
    {
        echo
        echo "Crash inputs are in fuzz/artifacts/<target>/; reproduce one with"
        echo "\`$exe_dir/<target> <file>\` (panic message and backtrace in fuzz/logs/<target>.log)."
    } >> "$summary"
fi
cat "$summary"
exit "$any_crash"
