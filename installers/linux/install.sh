#!/usr/bin/env bash
# Installs or upgrades plantlink as systemd services (see installers/README.md).
#
#   sudo ./install.sh --agent [--binary FILE] [--no-start]     install the agent
#   sudo ./install.sh --relay [--binary FILE] [--no-start]     install the relay
#   sudo ./install.sh [--binary FILE]                          upgrade what is installed
#
# Naming --agent / --relay also starts that service once its config is valid; a plain upgrade
# restarts only the services that were running.
#
# Upgrade = check the new binary against the current config, stop, swap the binary, start; the
# data folders (/var/lib/plantlink-agent with the outbox, /var/lib/plantlink-relay with the inbox)
# and /etc/plantlink are never touched. The previous binary stays as plantlink.previous, and
# if a service does not come up on the new binary, the previous one is put back and started.
#
# PLANTLINK_ROOT (tests only) prefixes every path the script writes.
set -euo pipefail

ROOT="${PLANTLINK_ROOT:-}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OPT=/opt/plantlink
BIN="$OPT/bin/plantlink"
UNIT_DIR=/etc/systemd/system
CONF=/etc/plantlink
USER_NAME=plantlink
START_WAIT="${PLANTLINK_START_WAIT:-5}"

say() { printf 'plantlink install: %s\n' "$*"; }
die() { printf 'plantlink install: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

roles=()
binary=""
start=1
while [ $# -gt 0 ]; do
  case "$1" in
    --agent) roles+=(agent) ;;
    --relay) roles+=(relay) ;;
    --binary) binary="${2:?--binary needs a file}"; shift ;;
    --no-start) start=0 ;;
    -h|--help) usage 0 ;;
    *) printf 'unknown option %s\n\n' "$1" >&2; usage 2 ;;
  esac
  shift
done

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0 ...)"
command -v systemctl >/dev/null || die "systemctl not found: this installer is for systemd hosts"

# Without --agent/--relay: upgrade the services already installed (and start only those that ran).
explicit=${#roles[@]}
if [ "$explicit" -eq 0 ]; then
  for r in agent relay; do [ -f "$ROOT$UNIT_DIR/plantlink-$r.service" ] && roles+=("$r"); done
  [ ${#roles[@]} -gt 0 ] || die "nothing installed yet: say --agent or --relay"
fi

# The binary: --binary, else next to this script (release archive), else the build output (checkout).
if [ -z "$binary" ]; then
  for candidate in "$HERE/plantlink-linux-x64" "$HERE/plantlink" "$HERE/../../dist/plantlink-linux-x64"; do
    if [ -f "$candidate" ]; then binary="$candidate"; break; fi
  done
  [ -n "$binary" ] || die "no plantlink binary found next to this script or in dist/: build it (npm run package) or pass --binary FILE"
fi
[ -f "$binary" ] || die "$binary: no such file"
new_version="$("$binary" --version 2>&1)" || die "$binary does not run on this machine: $new_version"

# A file the installer ships: next to this script (release archive) or in the checkout.
shipped() {
  for candidate in "$HERE/$1" "$HERE/../../config/$1" "$HERE/../$1"; do
    if [ -f "$candidate" ]; then printf '%s\n' "$candidate"; return 0; fi
  done
  return 1
}

# Exports the KEY=VALUE lines of an environment file as systemd's EnvironmentFile reads them:
# nothing expanded or run (never `.` it: this runs as root, and a secret may hold `$` or a
# space), comments (# or ;) and blank lines skipped, one pair of surrounding quotes removed.
export_env_file() {
  local line key value
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line%$'\r'}"
    line="${line#"${line%%[![:space:]]*}"}"
    case "$line" in '' | '#'* | ';'*) continue ;; esac
    [[ "$line" == *=* ]] || continue
    key="${line%%=*}"
    key="${key%"${key##*[![:space:]]}"}"
    value="${line#*=}"
    value="${value#"${value%%[![:space:]]*}"}"
    value="${value%"${value##*[![:space:]]}"}"
    [[ "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    if [ "${#value}" -ge 2 ] && { [[ "$value" == \"*\" ]] || [[ "$value" == \'*\' ]]; }; then
      value="${value:1:${#value}-2}"
    fi
    export "$key=$value"
  done <"$1"
}

# `plantlink <role> check` with the service's environment file, as systemd would run it.
check_config() {
  local bin="$1" role="$2"
  (
    if [ -f "$ROOT$CONF/$role.env" ]; then export_env_file "$ROOT$CONF/$role.env"; fi
    "$bin" "$role" check --config "$ROOT$CONF/$role.yaml"
  )
}

# 1. The service user.
if ! getent passwd "$USER_NAME" >/dev/null; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --comment "plantlink services" "$USER_NAME"
  say "created system user $USER_NAME"
fi

# 2. Config and secrets: written once from the examples, never overwritten.
mkdir -p "$ROOT$CONF"
chown "root:$USER_NAME" "$ROOT$CONF"
chmod 0750 "$ROOT$CONF"
for r in "${roles[@]}"; do
  if [ ! -e "$ROOT$CONF/$r.yaml" ]; then
    example="$(shipped "$r.example.yaml")" || die "$r.example.yaml not found next to this script: cannot write a starter $CONF/$r.yaml"
    # The unit's StateDirectory is the only writable data folder: point dataDir at it.
    sed -E "s|^(  dataDir:)[^#]*|\\1 /var/lib/plantlink-$r   |" "$example" >"$ROOT$CONF/$r.yaml"
    chown "root:$USER_NAME" "$ROOT$CONF/$r.yaml"
    chmod 0640 "$ROOT$CONF/$r.yaml"
    say "wrote a starter $CONF/$r.yaml from $(basename "$example"): edit it"
  fi
  grep -Eq "^  dataDir: /var/lib/plantlink-$r([[:space:]]|$)" "$ROOT$CONF/$r.yaml" ||
    say "warning: $CONF/$r.yaml: dataDir is not /var/lib/plantlink-$r, the only folder the service may write (ProtectSystem=strict)"
  if [ ! -e "$ROOT$CONF/$r.env" ]; then
    if [ "$r" = agent ]; then
      printf '# Environment of plantlink-agent (systemd EnvironmentFile). Keep secret.\n# The token printed by `plantlink relay add-agent` at the relay:\nPLANTLINK_AGENT_TOKEN=\n' >"$ROOT$CONF/$r.env"
    else
      printf '# Environment of plantlink-relay (systemd EnvironmentFile). Keep secret.\n# The variables relay.yaml names as ${VAR}, for example:\nSALESFORCE_CLIENT_ID=\nSALESFORCE_CLIENT_SECRET=\n' >"$ROOT$CONF/$r.env"
    fi
    chown "root:$USER_NAME" "$ROOT$CONF/$r.env"
    chmod 0640 "$ROOT$CONF/$r.env"
    say "wrote $CONF/$r.env: put the secrets there"
  fi
done

# 3. An upgrade must not stop a working service for a binary that rejects its config.
upgrading=0
[ -f "$ROOT$BIN" ] && upgrading=1
if [ "$upgrading" -eq 1 ]; then
  say "upgrading $("$ROOT$BIN" --version 2>/dev/null || echo '?') -> $new_version"
  for r in "${roles[@]}"; do
    out="$(check_config "$binary" "$r" 2>&1)" || die "the new binary refuses $CONF/$r.yaml, nothing changed:
$out"
  done
fi

# 4. Stage the new binary next to the old one (same filesystem, so the swap is one rename).
mkdir -p "$ROOT$OPT/bin"
install -m 0755 "$binary" "$ROOT$BIN.new"
"$ROOT$BIN.new" --version >/dev/null || die "the copied binary does not run"
if readme="$(shipped README.md)"; then install -m 0644 "$readme" "$ROOT$OPT/README.md"; fi

# 5. Stop, swap, start. SIGTERM lets each service finish its batch and close its database.
was_active=()
for r in "${roles[@]}"; do
  if systemctl is-active --quiet "plantlink-$r.service"; then
    was_active+=("$r")
    say "stopping plantlink-$r"
    systemctl stop "plantlink-$r.service"
  fi
done
[ -f "$ROOT$BIN" ] && ln -f "$ROOT$BIN" "$ROOT$BIN.previous"
mv -f "$ROOT$BIN.new" "$ROOT$BIN"
mkdir -p "$ROOT/usr/local/bin"
ln -sfn "$BIN" "$ROOT/usr/local/bin/plantlink"
mkdir -p "$ROOT$UNIT_DIR"
had_units=""
for r in "${roles[@]}"; do
  [ -f "$ROOT$UNIT_DIR/plantlink-$r.service" ] && had_units="$had_units $r"
  unit="$(shipped "plantlink-$r.service")" || die "plantlink-$r.service not found next to this script"
  install -m 0644 "$unit" "$ROOT$UNIT_DIR/plantlink-$r.service"
done
systemctl daemon-reload
for r in "${roles[@]}"; do systemctl enable --quiet "plantlink-$r.service"; done
say "installed $BIN ($new_version)"

rollback() {
  say "plantlink-$1 did not stay up on $new_version; putting the previous binary back"
  for r in "${roles[@]}"; do systemctl stop "plantlink-$r.service" || true; done
  mv -f "$ROOT$BIN.previous" "$ROOT$BIN"
  for r in "${was_active[@]}"; do systemctl start "plantlink-$r.service" || true; done
  die "upgrade rolled back; see: journalctl -u plantlink-$1 -n 50"
}

[ "$start" -eq 1 ] || { say "not started (--no-start): sudo systemctl start ${roles[*]/#/plantlink-}"; exit 0; }
started=()
for r in "${roles[@]}"; do
  if [[ "$explicit" -eq 0 && " $had_units " == *" $r "* && " ${was_active[*]} " != *" $r "* ]]; then
    say "plantlink-$r was stopped before the upgrade: left stopped"
    continue
  fi
  if ! out="$(check_config "$ROOT$BIN" "$r" 2>&1)"; then
    say "plantlink-$r is enabled but not started: $CONF/$r.yaml is not valid yet:"
    printf '%s\n' "$out" >&2
    say "fix it (secrets in $CONF/$r.env), then: sudo systemctl start plantlink-$r"
    continue
  fi
  say "starting plantlink-$r"
  systemctl start "plantlink-$r.service"
  started+=("$r")
done
[ ${#started[@]} -gt 0 ] || exit 0
# Type=simple services count as started at once: look again after a few seconds.
sleep "$START_WAIT"
for r in "${started[@]}"; do
  if ! systemctl is-active --quiet "plantlink-$r.service"; then
    if [ "$upgrading" -eq 1 ] && [ -f "$ROOT$BIN.previous" ]; then rollback "$r"; fi
    die "plantlink-$r is not running; see: journalctl -u plantlink-$r -n 50"
  fi
  say "plantlink-$r is running"
done
