#!/bin/sh
# Installs CNET from this bundle, with no package registry: a venv from the bundle's wheels, the config, the
# system service (where systemd runs; otherwise cnetd is started directly), then waits for the node.
#
#   ./install.sh [--prefix /opt/cnet] [--config-dir /etc/cnet] [--state-dir /var/lib/cnet] [--no-start]
#
# Run it again from a newer bundle to upgrade: the venv is upgraded in place, and a running node is
# reloaded (its workloads keep running). Remove: systemctl disable --now cnet; rm -r PREFIX
# /etc/systemd/system/cnet.service (and CONFIG-DIR, STATE-DIR to forget the node's state).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=/opt/cnet CONFIG_DIR=/etc/cnet STATE_DIR=/var/lib/cnet START=yes
PYTHON=${PYTHON:-/usr/bin/python3}
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=$2; shift 2 ;;
    --config-dir) CONFIG_DIR=$2; shift 2 ;;
    --state-dir) STATE_DIR=$2; shift 2 ;;
    --no-start) START=no; shift ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
say() { echo "cnet-install: $*"; }
die() { echo "cnet-install: $*" >&2; exit 1; }

. "$HERE/bundle.env"  # CNET_VERSION, PYTHON_TAG, EXTRAS: what this bundle was built for
have=$("$PYTHON" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")' 2>/dev/null) \
  || die "no Python at $PYTHON (set PYTHON=...)"
[ "$have" = "$PYTHON_TAG" ] || die "this bundle is for Python $PYTHON_TAG; $PYTHON is $have"
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "$PYTHON has no venv module (Debian: apt install python3-venv)"

CONFIG=$CONFIG_DIR/config.yaml
mkdir -p "$PREFIX" "$CONFIG_DIR" "$STATE_DIR"
chmod 0711 "$STATE_DIR"  # workloads (workloads.user) pass through to their own dirs below it
[ -x "$PREFIX/venv/bin/python" ] || "$PYTHON" -m venv "$PREFIX/venv"
WHEEL=$(ls "$HERE"/cnet-*.whl)
"$PREFIX/venv/bin/pip" install --quiet --no-index --find-links "$HERE/wheelhouse" --upgrade \
  "$WHEEL${EXTRAS:+[$EXTRAS]}"
cp "$HERE/README.md" "$PREFIX/README.md"
say "installed cnet $CNET_VERSION into $PREFIX/venv"
if [ ! -e "$CONFIG" ]; then
  sed -e "s|@NODE_ID@|$(hostname -s 2>/dev/null || echo cnet)|" -e "s|@STATE@|$STATE_DIR|g" \
    "$HERE/config.yaml" > "$CONFIG"
  chmod 0600 "$CONFIG"
  say "wrote $CONFIG"
fi

if [ -d /run/systemd/system ]; then
  sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@CONFIG@|$CONFIG|g" "$HERE/cnet.service" > /etc/systemd/system/cnet.service
  systemctl daemon-reload
  if [ "$START" = yes ]; then
    if systemctl is-active --quiet cnet; then systemctl reload cnet; else systemctl enable --now cnet; fi
  fi
  say "service cnet (journalctl -u cnet; systemctl reload cnet after an upgrade)"
elif [ "$START" = yes ]; then
  if "$PREFIX/venv/bin/cnetd" reload -config "$CONFIG" >/dev/null 2>&1; then
    say "reloaded the running node on cnet $CNET_VERSION"
  else
    # No systemd (a container, a test host): cnetd runs in the background, its output in STATE_DIR.
    nohup "$PREFIX/venv/bin/cnetd" -config "$CONFIG" >> "$STATE_DIR/cnetd.log" 2>&1 &
    echo $! > "$STATE_DIR/cnetd.pid"
    say "started cnetd (pid $!; log $STATE_DIR/cnetd.log; stop: kill \$(cat $STATE_DIR/cnetd.pid))"
  fi
fi
if [ "$START" = yes ]; then
  "$PREFIX/venv/bin/python" - "$CONFIG" <<'PY' || die "the node did not answer (see $STATE_DIR)"
import sys, time, urllib.request
import yaml
agent = (yaml.safe_load(open(sys.argv[1])) or {}).get("agent", {})
host = agent.get("address", "127.0.0.1")
url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{agent.get('port', 8080)}"
deadline = time.monotonic() + 60
while True:
    try:
        urllib.request.urlopen(f"{url}/api/health", timeout=2)
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.5)
print(f"cnet-install: node ready at {url}/")
PY
fi
