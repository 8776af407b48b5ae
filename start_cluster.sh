#!/usr/bin/env bash
# Starts the four-node cluster in the background: jiangsu :8080 (root) ← nanjing :8081 ← suqian :8082 and
# changzhou :8083 (peers of each other). Idempotent: a node that already answers is left alone.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/cnetd ] || make venv >/dev/null
mkdir -p /tmp/cnet
port_of() { .venv/bin/python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["agent"]["port"])' "$1"; }
healthy() { .venv/bin/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
              "http://127.0.0.1:$1/api/health" 2>/dev/null; }
for node in jiangsu nanjing suqian changzhou; do
  config="conf/config_$node.yaml"
  port=$(port_of "$config")
  if healthy "$port"; then
    echo "$node: already running on :$port"
    continue
  fi
  nohup .venv/bin/cnetd -config "$config" > "/tmp/cnet/$node.out" 2>&1 &
  echo $! > "/tmp/cnet/$node.pid"
  for _ in $(seq 1 600); do healthy "$port" && break; sleep 0.1; done
  if healthy "$port"; then
    echo "$node: started on :$port (pid $(cat "/tmp/cnet/$node.pid"), output /tmp/cnet/$node.out)"
  else
    echo "$node: did not become healthy; see /tmp/cnet/$node.out" >&2
    exit 1
  fi
done
