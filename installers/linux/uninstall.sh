#!/usr/bin/env bash
# Removes the plantlink services and binary (see installers/README.md).
#
#   sudo ./uninstall.sh            keeps /etc/plantlink, /var/lib/plantlink-* (outbox, inbox) and the user
#   sudo ./uninstall.sh --purge    removes those too: undelivered events are lost
#
# PLANTLINK_ROOT (tests only) prefixes every path the script removes.
set -euo pipefail

ROOT="${PLANTLINK_ROOT:-}"
OPT=/opt/plantlink
UNIT_DIR=/etc/systemd/system
CONF=/etc/plantlink
USER_NAME=plantlink

say() { printf 'plantlink uninstall: %s\n' "$*"; }

purge=0
case "${1:-}" in
  "") ;;
  --purge) purge=1 ;;
  -h|--help) sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) printf 'unknown option %s\n' "$1" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { say "run as root (sudo $0)" >&2; exit 1; }

for r in agent relay; do
  if [ -f "$ROOT$UNIT_DIR/plantlink-$r.service" ]; then
    # SIGTERM and wait: the service closes its database cleanly before the files go.
    systemctl disable --now --quiet "plantlink-$r.service" || true
    rm -f "$ROOT$UNIT_DIR/plantlink-$r.service"
    say "removed plantlink-$r.service"
  fi
done
command -v systemctl >/dev/null && systemctl daemon-reload || true

if [ "$(readlink "$ROOT/usr/local/bin/plantlink" 2>/dev/null)" = "$OPT/bin/plantlink" ]; then
  rm -f "$ROOT/usr/local/bin/plantlink"
fi
rm -rf "$ROOT$OPT"
say "removed $OPT"

if [ "$purge" -eq 0 ]; then
  kept=()
  for d in "$CONF" /var/lib/plantlink-agent /var/lib/plantlink-relay; do [ -e "$ROOT$d" ] && kept+=("$d"); done
  [ ${#kept[@]} -eq 0 ] || say "kept ${kept[*]} and user $USER_NAME (reinstalling picks them up; --purge removes them)"
  exit 0
fi
rm -rf "$ROOT$CONF" "$ROOT/var/lib/plantlink-agent" "$ROOT/var/lib/plantlink-relay" "$ROOT/var/cache/plantlink-agent" "$ROOT/var/cache/plantlink-relay"
say "purged $CONF, /var/lib/plantlink-agent, /var/lib/plantlink-relay and the caches"
if getent passwd "$USER_NAME" >/dev/null; then
  userdel "$USER_NAME"
  say "removed user $USER_NAME"
fi
if getent group "$USER_NAME" >/dev/null; then groupdel "$USER_NAME" || true; fi
