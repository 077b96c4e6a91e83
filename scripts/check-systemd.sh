#!/usr/bin/env bash
# make check-deploy, systemd part: `make install DESTDIR=<temp root>` with the debug binaries
# (what landed, with which modes; ExecStart= following PREFIX; hub.env not overwritten), then
# `systemd-analyze verify` (unknown keys fail) and `systemd-analyze security` (exposure ≤ 2.0)
# on the installed units, then `make uninstall` removes what install put there.
set -euo pipefail
cd "$(dirname "$0")/.."

THRESHOLD=20 # systemd-analyze counts exposure in tenths: 20 = 2.0
cargo build --quiet -p local-gateway -p host-collector
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
fail() { echo "check-systemd: $*" >&2; exit 1; }

make -s install DESTDIR="$root" HUB_BIN_DIR=target/debug >/dev/null
units=$(cd systemd && ls ./*.service ./*.timer | sed 's|^\./||')
for b in hub-gateway hub-collector; do
  test -x "$root/usr/local/bin/$b" || fail "$b not installed"
  "$root/usr/local/bin/$b" --version >/dev/null || fail "$b --version failed"
done
for u in $units; do
  f="$root/etc/systemd/system/$u"
  test -f "$f" || fail "$u not installed"
  [ "$(stat -c %a "$f")" = 644 ] || fail "$u mode $(stat -c %a "$f")"
  ! grep -q @BINDIR@ "$f" || fail "$u: @BINDIR@ left"
done
grep -qx 'ExecStart=/usr/local/bin/hub-gateway serve' "$root/etc/systemd/system/hub-gateway.service" ||
  fail "hub-gateway.service ExecStart does not follow PREFIX"
test -f "$root/usr/local/lib/sysusers.d/observability-hub.conf" || fail "sysusers file missing"
for f in hub.env collector.env; do
  [ "$(stat -c %a "$root/etc/observability-hub/$f")" = 600 ] || fail "$f missing or not 0600"
done
[ "$(stat -c %a "$root/etc/observability-hub/credentials")" = 700 ] || fail "credentials dir not 0700"

# The units as installed: verify prints nothing and exits 0 when clean.
for u in $units; do
  out=$(cd "$root/etc/systemd/system" && systemd-analyze verify --recursive-errors=no --root="$root" "$u" 2>&1) ||
    fail "verify $u: $out"
  [ -z "$out" ] || fail "verify $u: $out"
done
echo "systemd-analyze verify: clean ($(echo $units | wc -w) units)"
for u in $units; do
  case $u in *.service) ;; *) continue ;; esac
  out=$(systemd-analyze security --offline=yes --root="$root" --threshold=$THRESHOLD "$u" 2>&1) ||
    fail "security $u above 2.0: $(echo "$out" | tail -1)"
  echo "systemd-analyze security $u: $(echo "$out" | grep -o 'exposure level for .*' | sed 's/exposure level for [^:]*: //')"
done

# A second install keeps the operator's settings; another PREFIX moves ExecStart= with it.
echo 'PORT=9999' >"$root/etc/observability-hub/hub.env"
make -s install DESTDIR="$root" HUB_BIN_DIR=target/debug >/dev/null
grep -qx 'PORT=9999' "$root/etc/observability-hub/hub.env" || fail "install overwrote hub.env"
make -s install DESTDIR="$root" PREFIX=/opt/hub HUB_BIN_DIR=target/debug >/dev/null
test -x "$root/opt/hub/bin/hub-gateway" || fail "PREFIX=/opt/hub: no binary"
grep -qx 'ExecStart=/opt/hub/bin/hub-collector --once' "$root/etc/systemd/system/hub-collector-once.service" ||
  fail "PREFIX=/opt/hub: ExecStart not moved"

# Uninstall removes what install put there and keeps settings and secrets.
make -s uninstall DESTDIR="$root" PREFIX=/opt/hub >/dev/null
make -s uninstall DESTDIR="$root" >/dev/null
left=$(cd "$root" && find . -type f -o -type l | grep -v '^./etc/observability-hub/' || true)
[ -z "$left" ] || fail "uninstall left: $left"
grep -qx 'PORT=9999' "$root/etc/observability-hub/hub.env" || fail "uninstall removed hub.env"
echo "install/uninstall: ok"
