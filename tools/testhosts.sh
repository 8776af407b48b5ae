#!/usr/bin/env bash
# testhosts.sh (from ../shared/recipes, plus `join`): several test "hosts" on one machine, each a network namespace with its own address,
# joined by a bridge that lives in a hub namespace. Nothing is routed anywhere else: the hosts have
# no default route, and the addresses come from 198.51.100.0/24 (TEST-NET-2, never a real network).
#
# Usage (as root):
#   testhosts.sh up PREFIX N          hosts PREFIX1..PREFIXN at 198.51.100.1..N (/24), lo up, bridge in PREFIXhub
#   testhosts.sh addr PREFIX I        prints host I's address
#   testhosts.sh run PREFIX I CMD...  runs CMD inside host I (same filesystem; see "private files" below)
#   testhosts.sh cut PREFIX I         partition host I: DROP everything in and out except loopback
#   testhosts.sh heal PREFIX I        undo cut
#   testhosts.sh join PREFIX          give this (the root) namespace 198.51.100.254 on the bridge, so a test
#                                     process reaches every host (and a cut host not)
#   testhosts.sh down PREFIX          delete every namespace of PREFIX (safe to repeat)
#
# Private files per host: a mount namespace inside the network namespace, e.g.
#   ip netns exec PREFIX2 unshare -m sh -c 'mount -t tmpfs none /some/dir && exec CMD...'
# gives host 2 its own empty /some/dir while every other path is shared.
#
# Verified here: hosts reach each other by address (HTTP and ZeroMQ over TCP), loopback inside a host
# works, `cut` makes connections to and from the host time out (not refuse) and `heal` restores them,
# and `down` leaves no namespace, veth or bridge behind. Namespace names must be short (<= 12 chars).
set -euo pipefail
NET=198.51.100

die() { echo "testhosts: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"

up() {
  local p=$1 n=$2 i
  [ "$n" -ge 1 ] && [ "$n" -le 200 ] || die "N must be 1..200"
  ip netns add "${p}hub"
  ip -n "${p}hub" link set lo up
  ip -n "${p}hub" link add br0 type bridge
  ip -n "${p}hub" link set br0 up
  for i in $(seq 1 "$n"); do
    ip netns add "${p}${i}"
    ip -n "${p}${i}" link set lo up
    ip link add "${p}v${i}" type veth peer name "${p}b${i}"
    ip link set "${p}v${i}" netns "${p}${i}"
    ip link set "${p}b${i}" netns "${p}hub"
    ip -n "${p}${i}" link set "${p}v${i}" name eth0
    ip -n "${p}${i}" addr add "${NET}.${i}/24" dev eth0
    ip -n "${p}${i}" link set eth0 up
    ip -n "${p}hub" link set "${p}b${i}" master br0
    ip -n "${p}hub" link set "${p}b${i}" up
  done
}

join() {
  local p=$1
  ip link add "${p}vr" type veth peer name "${p}br"
  ip link set "${p}br" netns "${p}hub"
  ip -n "${p}hub" link set "${p}br" master br0
  ip -n "${p}hub" link set "${p}br" up
  ip addr add "${NET}.254/24" dev "${p}vr"
  ip link set "${p}vr" up
}

down() {
  local p=$1 ns
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^${p}([0-9]+|hub)$" || true); do
    ip netns del "$ns" || true
  done
  ip link del "${p}vr" 2>/dev/null || true  # gone with the hub already, unless the hub was never made
}

cmd=${1:-}; shift || true
case "$cmd" in
  up)   [ $# -eq 2 ] || die "usage: up PREFIX N"; up "$1" "$2" ;;
  addr) [ $# -eq 2 ] || die "usage: addr PREFIX I"; echo "${NET}.$2" ;;
  run)  [ $# -ge 3 ] || die "usage: run PREFIX I CMD..."; p=$1 i=$2; shift 2; exec ip netns exec "${p}${i}" "$@" ;;
  cut)  [ $# -eq 2 ] || die "usage: cut PREFIX I"
        ip netns exec "$1$2" iptables -I INPUT -i eth0 -j DROP
        ip netns exec "$1$2" iptables -I OUTPUT -o eth0 -j DROP ;;
  heal) [ $# -eq 2 ] || die "usage: heal PREFIX I"
        ip netns exec "$1$2" iptables -D INPUT -i eth0 -j DROP || true
        ip netns exec "$1$2" iptables -D OUTPUT -o eth0 -j DROP || true ;;
  join) [ $# -eq 1 ] || die "usage: join PREFIX"; join "$1" ;;
  down) [ $# -eq 1 ] || die "usage: down PREFIX"; down "$1" ;;
  *)    sed -n '2,23p' "$0"; exit 2 ;;
esac
