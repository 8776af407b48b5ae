#!/usr/bin/env bash
# Stops the four-node cluster started by start_cluster.sh, and every workload it runs. Idempotent.
set -uo pipefail
for node in changzhou suqian nanjing jiangsu; do
  pidfile="/tmp/cnet/$node.pid"
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "$node: not running"
    rm -f "$pidfile"
    continue
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "$node: still running after 60 s (pid $pid)" >&2
  else
    echo "$node: stopped"
    rm -f "$pidfile"
  fi
done
