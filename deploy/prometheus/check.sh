#!/usr/bin/env bash
# CI check of tillsyn's Prometheus rules and Alertmanager configuration:
# promtool check rules / test rules / check config, amtool check-config and
# routing tests. Needs promtool (Debian package prometheus) and amtool
# (prometheus-alertmanager); starts no server and writes nothing.
# Exits non-zero on any failure; prints one summary line.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
am_config=$here/../alertmanager/alertmanager.yml
cd "$here"

for tool in promtool:prometheus amtool:prometheus-alertmanager; do
    if ! command -v "${tool%%:*}" >/dev/null; then
        echo "check.sh: ${tool%%:*} not found (apt-get install ${tool#*:})" >&2
        exit 2
    fi
done

failures=0
# run NAME COMMAND...: runs it, shows its output only when it fails.
run() {
    local name=$1 out
    shift
    if ! out=$("$@" 2>&1); then
        echo "FAILED: $name: $*" >&2
        echo "$out" >&2
        failures=$((failures + 1))
    fi
}

rule_files=(rules/*.yaml)
test_files=(tests/*.yaml)

run "rules" promtool check rules "${rule_files[@]}"
run "rule tests" promtool test rules "${test_files[@]}"
run "prometheus config" promtool check config prometheus.yml
run "alertmanager config" amtool check-config "$am_config"

# Routing: expected receiver, then the alert's labels.
routes=(
    "fraud-unit alertname=TillsynCriticalFraudAlert team=fraud-unit severity=critical rule=phantom-clients"
    "fraud-unit alertname=TillsynCriticalFraudAlert team=fraud-unit severity=warning rule=duplicate-billing"
    "operations-page alertname=TillsynConsumerStalled team=operations severity=critical topic=tillsyn.time-reports.v1"
    "operations-page alertname=TillsynDown team=operations severity=critical"
    "operations-ticket alertname=TillsynDeadLetterRate team=operations severity=warning topic=tillsyn.invoices.v1"
    "operations-ticket alertname=SomethingWithoutTeam severity=critical"
)
for route in "${routes[@]}"; do
    read -r receiver labels <<<"$route"
    # shellcheck disable=SC2086 # labels are separate arguments
    run "route to $receiver" amtool config routes test --config.file="$am_config" \
        --verify.receivers="$receiver" $labels
done

# Every alerting rule has a test where it fires and one where it must not.
alerts=$(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\).*/\1/p' rules/*.yaml | sort -u)
coverage=$(awk '
    /^ *alertname: / { name = $2 }
    /^ *exp_alerts: *\[\] *$/ { quiet[name] = 1 }
    /^ *exp_alerts: *$/ { fires[name] = 1 }
    END { for (n in fires) if (n in quiet) print n }' "${test_files[@]}" | sort -u)
untested=$(comm -23 <(echo "$alerts") <(echo "$coverage"))
if [[ -n $untested ]]; then
    echo "FAILED: alerting rules without a firing and a non-firing test:" $untested >&2
    failures=$((failures + 1))
fi

n_record=$(grep -c '^ *- record:' "${rule_files[@]}" | awk -F: '{ s += $NF } END { print s }')
n_alert=$(echo "$alerts" | grep -c .)
n_alert_cases=$(grep -ch '^ *alertname:' "${test_files[@]}" | awk '{ s += $1 } END { print s }')
n_expr_cases=$(grep -ch '^ *- expr:' "${test_files[@]}" | awk '{ s += $1 } END { print s }')
status=ok
((failures == 0)) || status="FAILED ($failures)"
echo "prometheus/alertmanager check: $status: $n_record recording and $n_alert alerting rules;" \
    "$n_alert_cases alert and $n_expr_cases expression test cases; ${#routes[@]} route tests"
((failures == 0))
