#!/usr/bin/env bash
# Gateway figures for the issue notes, every row side by side in the same run (other work on
# the machine moves absolute numbers; compare the ratios):
#
# - cold start to the first /healthz 200, idle RSS;
# - GET /healthz through the whole middleware stack beside a bare axum server answering the
#   same bytes (`cargo run --example bare-hello`);
# - signed webhook deliveries beside Debian's `webhook` (adnanh/webhook) verifying the same
#   HMAC-SHA256 signature and running /bin/true: pushes to another branch (verified, parsed,
#   filtered, a run row), and accepted pushes — each its own body and X-GitHub-Delivery, so each
#   is answered 202 after its replay keys were committed (the durable ledger), on SQLite and on
#   PostgreSQL. The accepted deliveries' syncs run GITOPS_GIT=/bin/true, so what is measured is
#   the gateway and its store, not git.
#
# Each load row is `wrk -t2 -c<N> -d$BENCH_DURATION --latency` for every N in
# BENCH_CONNECTIONS ("16 64"), with requests/s, p99 latency, and the server's CPU time per
# request (user + system, its children included: Debian's webhook forks one per request).
# BENCH_BASELINE_BIN=/path/to/another/hub-gateway adds its figures for the same rows (a build of
# an older commit, say). BENCH_STORES ("sqlite postgres") picks the stores; PostgreSQL is the
# one at TEST_PG_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres), a fresh
# database per gateway. Informational: prints tables, asserts only that the load was served.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null || { echo "bench: installing $2"; apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk
need webhook webhook
need curl curl
need psql postgresql-client
need sqlite3 sqlite3

cargo build --release -q -p local-gateway --bin hub-gateway --example bare-hello
BIN=target/release/hub-gateway
BARE=target/release/examples/bare-hello
BASELINE=${BENCH_BASELINE_BIN:-}
WORK=$(mktemp -d)
DBS=()
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  for db in "${DBS[@]}"; do psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
SECRET=bench-secret
DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-16 64}
STORES=${BENCH_STORES:-sqlite postgres}
PG_ADMIN=${TEST_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
LUA=$PWD/scripts/signed-deliveries.lua

now_ns() { date +%s%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_200() { until curl -sf -o /dev/null "$1"; do sleep 0.002; done; }
# CPU ticks (user + system, reaped children included) of a process.
cpu_ticks() { awk '{sub(/.*\) /, ""); print $12 + $13 + $14 + $15}' "/proc/$1/stat"; }
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.2f", v}'; }

# load PID CONNS URL [SCRIPT]: one wrk run; prints "req/s p99(ms) cpu(us/req) non-2xx requests".
load() {
  local pid=$1 conns=$2 url=$3 script=${4:-} before after out rps p99 reqs bad
  before=$(cpu_ticks "$pid")
  out=$(wrk -t2 -c"$conns" -d"$DURATION" --latency ${script:+-s "$script"} "$url")
  after=$(cpu_ticks "$pid")
  rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  p99=$(awk '$1=="99%"{print $2}' <<<"$out" | to_ms)
  reqs=$(awk '/requests in/{print $1}' <<<"$out")
  bad=$(awk '/Non-2xx/{print $NF}' <<<"$out")
  printf '%s %s %s %s %s\n' "$rps" "$p99" \
    "$(awk -v t=$((after - before)) -v n="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.1f", t * 1e6 / hz / n}')" "${bad:-0}" "$reqs"
}

# gateway BIN STORE: starts a gateway on a fresh store; sets GW (pid), OP (operator port), PUB,
# DATA (its data directory) and DBURL (its PostgreSQL database, empty on SQLite).
gateway() {
  local bin=$1 store=$2
  OP=$(free_port); PUB=$(free_port); DBURL=""
  DATA="$WORK/var-$RANDOM$RANDOM"
  if [ "$store" = postgres ]; then
    local db="hub_bench_$RANDOM$RANDOM"
    psql -q "$PG_ADMIN" -c "CREATE DATABASE $db" >/dev/null
    DBS+=("$db")
    DBURL="${PG_ADMIN%/*}/$db"
  fi
  env ${DBURL:+DATABASE_URL=$DBURL} HUB_DATA_DIR="$DATA" PORT=$OP HUB_PUBLIC_PORT=$PUB \
    GITHUB_WEBHOOK_SECRET=$SECRET GITOPS_BASE_DIR="$WORK/gitops" GITOPS_GIT=/bin/true RUST_LOG=warn \
    "$bin" >/dev/null 2>&1 &
  GW=$!
  wait_200 "http://127.0.0.1:$OP/healthz"
}

stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

row() { printf '| %-52s | %5s | %10s | %9s | %12s |\n' "$@"; }
header() {
  printf '\n%s\n\n' "$1"
  row "server" "conns" "requests/s" "p99 ms" "CPU µs/req"
  row "---" "---" "---" "---" "---"
}
# report LABEL CONNS "rps p99 cpu bad requests"; sets REQS.
report() {
  read -r rps p99 cpu bad REQS <<<"$3"
  [ "$bad" = 0 ] || echo "bench: $1 answered $bad requests with a non-2xx status" >&2
  row "$1" "$2" "$rps" "$p99" "$cpu"
}

# Replay keys in the store of the last gateway (stopped): two per accepted delivery.
stored_keys() {
  local sql="SELECT count(*) FROM hub_seen_keys WHERE scope = 'webhook-gitops'"
  if [ -n "$DBURL" ]; then psql -qtA "$DBURL" -c "$sql"; else sqlite3 "$DATA/hub.db" "$sql"; fi
}

mkdir -p "$WORK/gitops/bench/.git"
touch "$WORK/gitops/bench/.gitops"

# Cold start: exec → first 200 from /healthz, fresh data dir each time (includes creating and
# migrating the SQLite store).
starts=()
for i in $(seq 1 10); do
  port=$(free_port)
  rm -rf "$WORK/cold"
  t0=$(now_ns)
  HUB_DATA_DIR="$WORK/cold" PORT=$port HUB_PUBLIC_PORT=0 GITHUB_WEBHOOK_SECRET=$SECRET GITOPS_BASE_DIR="$WORK" \
    "$BIN" >/dev/null 2>&1 &
  pid=$!
  wait_200 "http://127.0.0.1:$port/healthz"
  starts+=($(( ($(now_ns) - t0) / 1000000 )))
  stop "$pid"
done
cold=$(printf '%s\n' "${starts[@]}" | sort -n | sed -n '5p')

# The servers of the /healthz and filtered-push rows.
gateway "$BIN" sqlite
HUB=$GW HUB_OP=$OP HUB_PUB=$PUB
sleep 1
rss_idle=$(awk '/VmRSS/{print $2}' /proc/$HUB/status)
if [ -n "$BASELINE" ]; then gateway "$BASELINE" sqlite; BASE=$GW BASE_OP=$OP BASE_PUB=$PUB; fi
BARE_PORT=$(free_port)
"$BARE" "$BARE_PORT" &
BARE_PID=$!
wait_200 "http://127.0.0.1:$BARE_PORT/healthz"
PEER_PORT=$(free_port)
cat > "$WORK/hooks.json" <<JSON
[{"id":"gitops","execute-command":"/bin/true","response-message":"ok",
  "trigger-rule":{"match":{"type":"payload-hmac-sha256","secret":"$SECRET",
    "parameter":{"source":"header","name":"X-Hub-Signature-256"}}}}]
JSON
webhook -hooks "$WORK/hooks.json" -ip 127.0.0.1 -port "$PEER_PORT" >/dev/null 2>&1 &
PEER=$!

header "GET /healthz (wrk -t2, $DURATION)"
for c in $CONNECTIONS; do
  report "bare axum (examples/bare-hello)" "$c" "$(load $BARE_PID "$c" "http://127.0.0.1:$BARE_PORT/healthz")"
  report "hub-gateway, whole stack" "$c" "$(load $HUB "$c" "http://127.0.0.1:$HUB_OP/healthz")"
  [ -z "$BASELINE" ] || report "hub-gateway baseline" "$c" "$(load $BASE "$c" "http://127.0.0.1:$BASE_OP/healthz")"
done

# Pushes to another branch: verified, parsed and filtered; a run row each, no replay keys.
BODY='{"ref":"refs/heads/feature","repository":{"name":"bench"},"head_commit":{"message":"bench"}}'
SIG="sha256=$(printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)"
cat > "$WORK/filtered.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-GitHub-Event"] = "push"
wrk.headers["X-Hub-Signature-256"] = "$SIG"
LUA
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  -H 'X-GitHub-Event: push' -H "X-Hub-Signature-256: $SIG" -d "$BODY" "http://127.0.0.1:$HUB_PUB/api/webhook/gitops")
[ "$status" = 200 ] || { echo "bench: gateway answered $status to a signed delivery" >&2; exit 1; }
until curl -sf -o /dev/null -X POST -H "X-Hub-Signature-256: $SIG" -d "$BODY" "http://127.0.0.1:$PEER_PORT/hooks/gitops"; do sleep 0.01; done

header "signed pushes to another branch, filtered (wrk -t2, $DURATION)"
for c in $CONNECTIONS; do
  report "webhook 2.8 (Debian), /bin/true per hook" "$c" "$(load $PEER "$c" "http://127.0.0.1:$PEER_PORT/hooks/gitops" "$WORK/filtered.lua")"
  report "hub-gateway (SQLite)" "$c" "$(load $HUB "$c" "http://127.0.0.1:$HUB_PUB/api/webhook/gitops" "$WORK/filtered.lua")"
  [ -z "$BASELINE" ] || report "hub-gateway baseline (SQLite)" "$c" "$(load $BASE "$c" "http://127.0.0.1:$BASE_PUB/api/webhook/gitops" "$WORK/filtered.lua")"
done
rss_load=$(awk '/VmRSS/{print $2}' /proc/$HUB/status)
rss_peer=$(awk '/VmRSS/{print $2}' /proc/$PEER/status)
stop "$HUB"; [ -z "$BASELINE" ] || stop "$BASE"

# Accepted pushes: a fresh gateway per store and per binary, so every row starts on an empty
# ledger. The keys stored afterwards must be two per request wrk counted (every one a 202).
header "signed pushes accepted (202 after the replay keys are committed) (wrk -t2, $DURATION)"
for c in $CONNECTIONS; do
  report "webhook 2.8 (Debian), /bin/true per hook" "$c" "$(BENCH_NONCE=peer$c load $PEER "$c" "http://127.0.0.1:$PEER_PORT/hooks/gitops" "$LUA")"
  for store in $STORES; do
    for bin in "$BIN" ${BASELINE:+"$BASELINE"}; do
      label="hub-gateway ($store)"; [ "$bin" = "$BIN" ] || label="hub-gateway baseline ($store)"
      gateway "$bin" "$store"
      report "$label" "$c" "$(BENCH_NONCE=$store$c$RANDOM load $GW "$c" "http://127.0.0.1:$PUB/api/webhook/gitops" "$LUA")"
      stop "$GW"
      keys=$(stored_keys)
      # wrk stops with requests in flight: their keys may be stored without being counted.
      [ "$keys" -ge $((2 * REQS)) ] || echo "bench: $label stored $keys replay keys for $REQS accepted deliveries" >&2
    done
  done
done

printf '\n| %-44s | %14s | %14s |\n' "measure" "hub-gateway" "webhook (peer)"
printf '| %-44s | %14s | %14s |\n' "---" "---" "---"
printf '| %-44s | %14s | %14s |\n' "cold start to /healthz 200 (median of 10)" "${cold} ms" "-"
printf '| %-44s | %14s | %14s |\n' "RSS idle" "$((rss_idle / 1024)) MiB" "-"
printf '| %-44s | %14s | %14s |\n' "RSS after the filtered-push load" "$((rss_load / 1024)) MiB" "$((rss_peer / 1024)) MiB"
echo
echo "RUST_LOG=warn on every gateway (as a quiet production setting); SQLite in a temporary directory."
