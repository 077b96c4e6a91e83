#!/usr/bin/env bash
# make k3s-up / k3s-down / k3s-status, run against a stand-in kubectl (no cluster can run on
# these machines) that keeps namespaces and secrets as files and records every call. Checks:
# k3s-up creates the namespace and both secrets once, with random values that never reach its
# output, then applies k3s/; a second k3s-up creates nothing and keeps the secrets; k3s-down
# deletes by the label every deployed resource carries (checked on the kustomize build: all but
# the Namespace, which stays with its secrets and volumes); k3s-status lists the namespace; a
# kubectl that fails fails the target. Usage: check-k3s-targets.sh KUSTOMIZE_OUTPUT (from
# make check-k3s); PYTHON: a python3 with PyYAML (check-k3s passes its tools' venv).
set -euo pipefail
cd "$(dirname "$0")/.."
built=${1:?usage: $0 KUSTOMIZE_OUTPUT}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export KUBECTL_STATE=$work/state
mkdir "$KUBECTL_STATE"
fail() { echo "check-k3s-targets: $*" >&2; exit 1; }

cat > "$work/kubectl" <<'SH'
#!/usr/bin/env bash
# Stand-in kubectl: one line per call in $KUBECTL_STATE/calls; namespaces and secrets as files.
# Answers as kubectl does: exit 1 with kubectl's message when a get finds nothing.
state=${KUBECTL_STATE:?}
printf '%s\n' "$*" >> "$state/calls"
if [ -n "${KUBECTL_FAIL:-}" ]; then
  echo "The connection to the server 127.0.0.1:6443 was refused" >&2; exit 1
fi
case "$*" in
  "get namespace "*)
    test -e "$state/ns-$3" || { echo "Error from server (NotFound): namespaces \"$3\" not found" >&2; exit 1; } ;;
  "create namespace "*) touch "$state/ns-$3"; echo "namespace/$3 created" ;;
  "-n "*" get secret "*)
    test -e "$state/secret-$2-$5" || { echo "Error from server (NotFound): secrets \"$5\" not found" >&2; exit 1; } ;;
  "-n "*" create secret generic "*)
    test -e "$state/ns-$2" || { echo "Error from server (NotFound): namespaces \"$2\" not found" >&2; exit 1; }
    ns=$2 name=$6; shift 6; printf '%s\n' "$@" > "$state/secret-$ns-$name"; echo "secret/$name created" ;;
  "apply -k "* | "delete -k "* | "-n "*" get "*) echo "ok" ;;
  *) echo "stand-in kubectl: unexpected call: $*" >&2; exit 1 ;;
esac
SH
chmod +x "$work/kubectl"

k() { make -s --no-print-directory "$1" KUBECTL="$work/kubectl"; }
calls() { sed -n "$(( ${1:-0} + 1 )),\$p" "$KUBECTL_STATE/calls"; }

# First k3s-up: namespace, both secrets, then the apply.
out=$(k k3s-up 2>&1)
expected="get namespace observability
create namespace observability
-n observability get secret platform-secrets
-n observability get secret hub-secrets
apply -k k3s"
got=$(calls | sed -E 's/ --from-literal=.*//; /create secret generic/d')
[ "$got" = "$expected" ] || fail "k3s-up made other calls than expected:"$'\n'"$got"
for secret in platform-secrets hub-secrets; do
  grep -q -- "^-n observability create secret generic $secret --from-literal=" "$KUBECTL_STATE/calls" ||
    fail "k3s-up created no $secret"
  grep -q "created secret $secret" <<<"$out" || fail "k3s-up did not say it created $secret"
done
values=$(cat "$KUBECTL_STATE"/secret-observability-* | sed -n 's/^--from-literal=[a-z-]*=//p' | grep -vx hub)
[ "$(wc -l <<<"$values")" -eq 5 ] || fail "expected 5 random secret values, got:"$'\n'"$values"
[ "$(sort -u <<<"$values" | wc -l)" -eq 5 ] || fail "secret values repeat"
while read -r v; do
  [ "${#v}" -ge 24 ] || fail "a secret value of ${#v} characters"
  grep -qF -- "$v" <<<"$out" && fail "k3s-up printed a secret value"
done <<<"$values"
before=$(cat "$KUBECTL_STATE"/secret-observability-*)

# Second k3s-up: nothing created, secrets kept.
n=$(wc -l < "$KUBECTL_STATE/calls")
k k3s-up >/dev/null
calls "$n" | grep -q create && fail "a second k3s-up created something: $(calls "$n")"
[ "$(calls "$n" | tail -1)" = "apply -k k3s" ] || fail "a second k3s-up did not apply k3s/"
[ "$(cat "$KUBECTL_STATE"/secret-observability-*)" = "$before" ] || fail "k3s-up changed the secrets"

# k3s-down deletes by label; every deployed resource but the Namespace carries it.
n=$(wc -l < "$KUBECTL_STATE/calls")
k k3s-down >/dev/null
[ "$(calls "$n")" = "delete -k k3s --ignore-not-found --selector app.kubernetes.io/part-of=observability-hub" ] ||
  fail "k3s-down called: $(calls "$n")"
"${PYTHON:-python3}" - "$built" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
unlabelled = [f"{d['kind']}/{d['metadata']['name']}" for d in docs
              if d["kind"] != "Namespace"
              and d["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") != "observability-hub"]
if unlabelled:
    sys.exit("check-k3s-targets: make k3s-down would leave these (no part-of label): " + ", ".join(unlabelled))
ns = [d for d in docs if d["kind"] == "Namespace"]
if any(d["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") for d in ns):
    sys.exit("check-k3s-targets: the Namespace carries the part-of label: k3s-down would delete it and its volumes")
print(f"k3s-down: all {len(docs) - len(ns)} deployed resources carry the label it deletes by; the Namespace stays")
PY

# k3s-status lists the namespace.
n=$(wc -l < "$KUBECTL_STATE/calls")
k k3s-status >/dev/null
calls "$n" | grep -qx -- "-n observability get pods,services,statefulsets,daemonsets,deployments,jobs,pvc -o wide" ||
  fail "k3s-status called: $(calls "$n")"

# A failing kubectl fails each target.
for target in k3s-up k3s-down k3s-status; do
  if (export KUBECTL_FAIL=1; k "$target" >/dev/null 2>&1); then fail "$target succeeded although kubectl failed"; fi
done
echo "k3s: make k3s-up (twice), k3s-down, k3s-status checked against a recording stand-in kubectl"
