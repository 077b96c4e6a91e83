#!/usr/bin/env bash
# `make run`: the gateway on its embedded defaults, with hub-collector beside it pushing this
# host's samples every minute through a token generated on first start (var/collector.token).
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p local-gateway -p host-collector
export HUB_DATA_DIR="${HUB_DATA_DIR:-var}"
mkdir -p "$HUB_DATA_DIR"
token_file="$HUB_DATA_DIR/collector.token"
if [ ! -s "$token_file" ]; then
  (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$token_file")
fi
export HUB_COLLECTOR_TOKEN_FILE="$token_file"
port="${PORT:-8085}"

target/release/hub-gateway serve &
gateway=$!
trap 'kill $gateway ${collector:-} 2>/dev/null; wait' EXIT INT TERM
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 $gateway 2>/dev/null || exit 1
  sleep 0.1
done
HUB_GATEWAY_URL="http://127.0.0.1:$port" \
  HUB_COLLECTOR_SPOOL_DIR="$HUB_DATA_DIR/collector-spool" \
  target/release/hub-collector &
collector=$!
echo "hub-gateway on http://127.0.0.1:$port/ — hub-collector pushing this host's metrics every minute" >&2
wait $gateway
