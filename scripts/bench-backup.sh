#!/usr/bin/env bash
# minio-backup's upload figures against Debian's rclone, to the same Garage (a real S3 server) in
# the same run. Informational: prints one table, asserts nothing.
#
# The stream: BENCH_BACKUP_MIB (2048) MiB of random bytes in a file, read by a stand-in pg_dump
# (`cat`) so both tools upload exactly the same bytes, unknown length, from a pipe:
#   minio-backup: `hub-gateway invoke minio-backup` with a postgres set whose BACKUP_PG_DUMP is
#                 the stand-in, BACKUP_VERIFY=false (rclone does not read back) — and once with the
#                 default read-back, to show what verification costs;
#   rclone:       `cat FILE | rclone rcat garage:bucket/key` (multipart, its default chunk size).
# Each is timed by /usr/bin/time (wall clock, peak RSS). Aim: minio-backup >= 1.0x rclone's MB/s
# with peak RSS <= 64 MiB.
#
# Needs: a release hub-gateway (built here), garage (`make test-deps` caches it), rclone
# (Debian's; installed if missing). About 3 minutes for 2 GiB on a 2-core machine.
#
# BENCH_BACKUP_RUNS (1) repeats the three uploads; the table shows medians. With BENCH_RESULTS set,
# every run's MB/s and peak RSS, and each tool's RSS every 0.5 s of the first run, are appended
# there for make bench's report.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-emit.sh

MIB=${BENCH_BACKUP_MIB:-2048}
RUNS=${BENCH_BACKUP_RUNS:-1}
GARAGE=${GARAGE_BIN:-$HOME/.cache/hub-tools/garage-2.5.0/bin/garage}
KEY_ID=GK0123456789abcdef01234567
SECRET=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
BUCKET=bench

command -v rclone >/dev/null || { apt-get install -y -qq rclone >/dev/null 2>&1 || \
  { apt-get update -qq && apt-get install -y -qq rclone; }; }
test -x "$GARAGE" || { echo "no garage at $GARAGE: run make test-deps"; exit 1; }
cargo build --release -q -p local-gateway

WORK=$(mktemp -d)
GARAGE_PID=
cleanup() {
  [ -n "$GARAGE_PID" ] && kill "$GARAGE_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPC=$(port); S3=$(port)
cat > "$WORK/garage.toml" <<EOF
metadata_dir = "$WORK/meta"
data_dir = "$WORK/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$RPC"
rpc_public_addr = "127.0.0.1:$RPC"
rpc_secret = "$(printf 'b%.0s' $(seq 64))"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3"
root_domain = ".s3.garage.localhost"
EOF
GARAGE_DEFAULT_ACCESS_KEY=$KEY_ID GARAGE_DEFAULT_SECRET_KEY=$SECRET GARAGE_DEFAULT_BUCKET=$BUCKET \
  RUST_LOG=garage=warn "$GARAGE" -c "$WORK/garage.toml" server --single-node --default-bucket \
  >"$WORK/garage.log" 2>&1 &
GARAGE_PID=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$S3) 2>/dev/null && break; sleep 0.1; done

echo "generating $MIB MiB of random bytes…" >&2
head -c $((MIB * 1024 * 1024)) /dev/urandom > "$WORK/stream.bin"
printf '#!/bin/sh\ncase "$1" in --version) echo "pg_dump (stand-in: cat)"; exit 0;; esac\nexec cat %s\n' \
  "$WORK/stream.bin" > "$WORK/pg_dump"
chmod +x "$WORK/pg_dump"

# "<seconds> <peak KiB>" of a command.
measure() {
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" || {
    cat "$WORK/err" >&2; exit 1; }
  cat "$WORK/time"
}

# "<seconds> <peak KiB>" of one minio-backup run (prefix hub-$1, BACKUP_VERIFY=$2).
hub() {
  mkdir -p "$WORK/hub-$1"
  measure env -i PATH="$PATH" HOME="$HOME" HUB_DATA_DIR="$WORK/hub-$1" RUST_LOG=warn \
    BACKUP_DATABASE_URL=postgres://bench@127.0.0.1/bench BACKUP_PG_DUMP="$WORK/pg_dump" \
    BACKUP_S3_ENDPOINT="http://127.0.0.1:$S3" BACKUP_S3_BUCKET=$BUCKET BACKUP_S3_PREFIX="hub-$1" \
    BACKUP_S3_REGION=garage BACKUP_S3_ACCESS_KEY_ID=$KEY_ID BACKUP_S3_SECRET_ACCESS_KEY=$SECRET \
    BACKUP_VERIFY="$2" target/release/hub-gateway invoke minio-backup
}

export RCLONE_CONFIG_GARAGE_TYPE=s3 RCLONE_CONFIG_GARAGE_PROVIDER=Other \
  RCLONE_CONFIG_GARAGE_ACCESS_KEY_ID=$KEY_ID RCLONE_CONFIG_GARAGE_SECRET_ACCESS_KEY=$SECRET \
  RCLONE_CONFIG_GARAGE_ENDPOINT="http://127.0.0.1:$S3" RCLONE_CONFIG_GARAGE_REGION=garage \
  RCLONE_CONFIG_GARAGE_FORCE_PATH_STYLE=true
rclone_rcat() {
  env -u AWS_CA_BUNDLE bash -c \
    "/usr/bin/time -f '%e %M' -o '$WORK/time' sh -c 'cat $WORK/stream.bin | rclone rcat garage:$BUCKET/rclone/stream.bin' && cat '$WORK/time'"
}

# "<ms since start> <KiB>" of the newest process named $1, every 0.5 s, into $2, until killed.
sample_rss() {
  local t0 pid kb
  t0=$(date +%s%N)
  while sleep 0.5; do
    pid=$(pgrep -n -x "$1") || continue
    kb=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
    [ -z "$kb" ] || echo "$(( ($(date +%s%N) - t0) / 1000000 )) $kb" >> "$2"
  done
}
# Runs "$@" (which prints "<seconds> <peak KiB>") with the RSS of process $1 sampled into $2.
sampled() {
  local name=$1 out=$2 sampler; shift 2
  : > "$out"
  sample_rss "$name" "$out" & sampler=$!
  "$@"
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
}

mbs() { python3 -c "print(f'{$MIB*1.048576/$1:.0f}')"; }
mib() { python3 -c "print(f'{$1/1024:.1f}')"; }
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
: > "$WORK/runs"
for run in $(seq 1 "$RUNS"); do
  echo "run $run of $RUNS…" >&2
  if [ "$run" = 1 ]; then
    read -r HUB_S HUB_KB < <(sampled hub-gateway "$WORK/rss.hub" hub plain false)
    read -r VER_S VER_KB < <(hub verified true)
    read -r RC_S RC_KB < <(sampled rclone "$WORK/rss.rclone" rclone_rcat)
    for tool in hub rclone; do
      while read -r ms kb; do
        emit backup_rss_mib "$tool" "$(awk -v k="$kb" 'BEGIN { printf "%.1f", k / 1024 }')" \
          "$(awk -v m="$ms" 'BEGIN { printf "%.1f", m / 1000 }')"
      done < "$WORK/rss.$tool"
    done
  else
    read -r HUB_S HUB_KB < <(hub "plain$run" false)
    read -r VER_S VER_KB < <(hub "verified$run" true)
    read -r RC_S RC_KB < <(rclone_rcat)
  fi
  echo "$HUB_S $HUB_KB $VER_S $VER_KB $RC_S $RC_KB" >> "$WORK/runs"
  emit backup_mb_per_s hub "$(mbs "$HUB_S")"
  emit backup_mb_per_s hub-verified "$(mbs "$VER_S")"
  emit backup_mb_per_s rclone "$(mbs "$RC_S")"
  emit backup_peak_rss_mib hub "$(mib "$HUB_KB")"
done
col() { awk -v c="$1" '{ print $c }' "$WORK/runs" | median; }
HUB_S=$(col 1) HUB_KB=$(col 2) VER_S=$(col 3) VER_KB=$(col 4) RC_S=$(col 5) RC_KB=$(col 6)

echo
echo "minio-backup upload: $MIB MiB from a pipe to Garage on loopback (median of $RUNS)"
echo
echo "| tool | time | MB/s | peak RSS |"
echo "|---|---|---|---|"
echo "| minio-backup (BACKUP_VERIFY=false) | ${HUB_S} s | $(mbs "$HUB_S") | $(mib "$HUB_KB") MiB |"
echo "| minio-backup (read back and SHA-256 checked) | ${VER_S} s | $(mbs "$VER_S") | $(mib "$VER_KB") MiB |"
echo "| rclone rcat | ${RC_S} s | $(mbs "$RC_S") | $(mib "$RC_KB") MiB |"
echo
echo "minio-backup / rclone: $(python3 -c "print(f'{$RC_S/$HUB_S:.2f}')")x the throughput (aim >= 1.0x), peak RSS $(mib "$HUB_KB") MiB (aim <= 64)"
