#!/usr/bin/env bash
# Issue 12 item 5: a secured broker, checked with the independent Python
# client. Starts deploy/local/secure-broker.sh (SASL_SSL on
# $TILLSYN_BROKER_PORT, default 29092; state in out/secure-check), runs
# check.py against it (right credentials work; wrong password, unknown user,
# untrusted CA, SASL/PLAIN fail fast with _AUTHENTICATION/_SSL; the gaps of
# tansu 0.6.0), shows that tansu refuses --cert with --key, and stops the
# broker. Exits non-zero when a check fails.
# Usage: tests/ops/secure/run.sh [--reauth]   (--reauth: +75 s, see check.py)
# Env: TILLSYN_BROKER_PORT, TILLSYN_STATE_DIR, TILLSYN_MTLS, TILLSYN_PYTHON,
#      TILLSYN_TANSU as in deploy/local/secure-broker.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
export TILLSYN_BROKER_PORT=${TILLSYN_BROKER_PORT:-29092}
export TILLSYN_STATE_DIR=${TILLSYN_STATE_DIR:-$repo/out/secure-check}
export TILLSYN_PYTHON=${TILLSYN_PYTHON:-$("$repo/deploy/local/install-test-client.sh" | tail -n 1)}
export TILLSYN_TANSU=${TILLSYN_TANSU:-$("$repo/deploy/local/install-tansu.sh" | tail -n 1)}
tport=${TILLSYN_TANSU_PORT:-$((TILLSYN_BROKER_PORT + 1))}

trap '"$repo/deploy/local/secure-broker.sh" stop >/dev/null 2>&1' EXIT
"$repo/deploy/local/secure-broker.sh" start
rc=0
"$TILLSYN_PYTHON" "$here/check.py" "$TILLSYN_STATE_DIR/client.properties" "$tport" "$@" || rc=1

# tansu 0.6.0 puts --cert and --key in one clap group, so they exclude each
# other: no TLS listener can be configured (clap fails before binding).
tls=$("$repo/deploy/local/tls.sh" 2>/dev/null)
set +e
out=$("$TILLSYN_TANSU" broker --listener-url "tcp://127.0.0.1:$tport" \
    --cert "$tls/broker.crt" --key "$tls/broker.key" 2>&1)
code=$?
set -e
if [[ $code == 2 && $out == *"'--cert <CERT>' cannot be used with '--key <KEY>'"* ]]; then
    echo "PASS tansu-cert-with-key     tansu 0.6.0 refuses it (exit 2): ${out%%$'\n'*}"
else
    echo "FAIL tansu-cert-with-key     exit $code (tansu changed? revisit the TLS terminator): ${out%%$'\n'*}"
    rc=1
fi
exit $rc
