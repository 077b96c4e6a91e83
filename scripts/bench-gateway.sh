#!/usr/bin/env bash
# Gateway figures for the issue notes: cold start to /healthz 200, idle RSS, and signed webhook
# requests/s under wrk, side by side with Debian's `webhook` (adnanh/webhook) verifying the same
# HMAC-SHA256 signature. Informational: prints a table, asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null || { echo "bench: installing $2"; apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk
need webhook webhook
need curl curl

cargo build --release -q -p local-gateway
BIN=target/release/hub-gateway
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
SECRET=bench-secret
PORT=$((20000 + RANDOM % 20000))
PEER_PORT=$((PORT + 1))
DURATION=${BENCH_DURATION:-10s}
CONNS=${BENCH_CONNECTIONS:-16}

now_ns() { date +%s%N; }
wait_200() { until curl -sf -o /dev/null "$1"; do sleep 0.002; done; }

# Cold start: exec → first 200 from /healthz, fresh data dir each time (includes creating and
# migrating the SQLite store).
starts=()
for i in $(seq 1 10); do
  rm -rf "$WORK/var"
  t0=$(now_ns)
  HUB_DATA_DIR="$WORK/var" PORT=$PORT HUB_PUBLIC_PORT=0 GITHUB_WEBHOOK_SECRET=$SECRET GITOPS_BASE_DIR="$WORK" \
    "$BIN" >/dev/null 2>&1 &
  pid=$!
  wait_200 "http://127.0.0.1:$PORT/healthz"
  starts+=($(( ($(now_ns) - t0) / 1000000 )))
  kill "$pid"; wait "$pid" || true
done
cold=$(printf '%s\n' "${starts[@]}" | sort -n | sed -n '5p')

HUB_DATA_DIR="$WORK/var" PORT=$PORT HUB_PUBLIC_PORT=0 GITHUB_WEBHOOK_SECRET=$SECRET GITOPS_BASE_DIR="$WORK" RUST_LOG=warn \
  "$BIN" >/dev/null 2>&1 &
GW=$!
wait_200 "http://127.0.0.1:$PORT/healthz"
sleep 1
rss_idle=$(awk '/VmRSS/{print $2}' /proc/$GW/status)

# Signed deliveries. A push to another branch is verified, parsed and filtered (no store, no git):
# the per-request cost of the webhook path itself.
BODY='{"ref":"refs/heads/feature","repository":{"name":"bench"},"head_commit":{"message":"bench"}}'
SIG="sha256=$(printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)"
cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-GitHub-Event"] = "push"
wrk.headers["X-Hub-Signature-256"] = "$SIG"
LUA
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  -H 'X-GitHub-Event: push' -H "X-Hub-Signature-256: $SIG" -d "$BODY" "http://127.0.0.1:$PORT/api/webhook/gitops")
[ "$status" = 200 ] || { echo "bench: gateway answered $status to a signed delivery" >&2; exit 1; }
rps_gw=$(wrk -t2 -c"$CONNS" -d"$DURATION" -s "$WORK/post.lua" "http://127.0.0.1:$PORT/api/webhook/gitops" | awk '/Requests\/sec/{print $2}')
rss_load=$(awk '/VmRSS/{print $2}' /proc/$GW/status)

# Peer: adnanh/webhook with a payload-hmac-sha256 rule running `true`.
cat > "$WORK/hooks.json" <<JSON
[{"id":"gitops","execute-command":"/bin/true","response-message":"ok",
  "trigger-rule":{"match":{"type":"payload-hmac-sha256","secret":"$SECRET",
    "parameter":{"source":"header","name":"X-Hub-Signature-256"}}}}]
JSON
webhook -hooks "$WORK/hooks.json" -ip 127.0.0.1 -port "$PEER_PORT" >/dev/null 2>&1 &
PEER=$!
wait_200_post() { until curl -sf -o /dev/null -X POST -H "X-Hub-Signature-256: $SIG" -d "$BODY" "$1"; do sleep 0.01; done; }
wait_200_post "http://127.0.0.1:$PEER_PORT/hooks/gitops"
rps_peer=$(wrk -t2 -c"$CONNS" -d"$DURATION" -s "$WORK/post.lua" "http://127.0.0.1:$PEER_PORT/hooks/gitops" | awk '/Requests\/sec/{print $2}')
rss_peer=$(awk '/VmRSS/{print $2}' /proc/$PEER/status)

printf '\n%-44s %14s %14s\n' "measure" "hub-gateway" "webhook (peer)"
printf '%-44s %14s %14s\n' "cold start to /healthz 200 (median of 10)" "${cold} ms" "-"
printf '%-44s %14s %14s\n' "RSS idle" "$((rss_idle / 1024)) MiB" "-"
printf '%-44s %14s %14s\n' "signed webhook requests/s (wrk -c$CONNS $DURATION)" "$rps_gw" "$rps_peer"
printf '%-44s %14s %14s\n' "RSS after load" "$((rss_load / 1024)) MiB" "$((rss_peer / 1024)) MiB"
