#!/usr/bin/env bash
# Multi-host network test bed (seed 003's rack: hosts under one rack-leaf router).
#
#   hosts:   network namespaces PFX-h1..PFX-hN, each with an underlay interface "ul0"
#            (192.168.10.(10+i)/24), a default route via the router, IPv4 forwarding on, and
#            its own BIRD2 (control socket $NETBED_RUN/h<i>.ctl) that learns the kernel routes
#            of protocol 200 (the agent's port /32s) and announces them with BGP.
#   router:  namespace PFX-r, 192.168.10.1/24, BIRD2 peering eBGP with every host (AS 65000 vs
#            6500<i>), BFD on each session, installing what it learns in its kernel.
#   underlay: namespace PFX-ul holding the bridge "br0" that joins them all.
#
# Sourced, it is a library: netbed_up PFX [N], netbed_down PFX, netbed_exec PFX NODE CMD...,
# netbed_bird PFX NODE BIRDC-ARGS..., netbed_kill_host PFX I (cuts host i off the underlay and
# kills its BIRD: a power loss as its peers see it), netbed_revive_host PFX I. Run, it takes
# the same verbs:
#   tests/net/netbed.sh up|down|exec|bird|kill-host|revive-host|status PFX [...]
# Every name a run creates starts with PFX (netns names, /run/photon-netbed/PFX); down removes
# all of it, port namespaces an agent made under PFX- included, and is safe to run twice.
set -euo pipefail

NETBED_ROOT=${NETBED_ROOT:-/run/photon-netbed}
NETBED_ROUTER_AS=65000
# BFD: 50 ms between packets, 5 missed = 250 ms to declare a host dead. BGP hold timers alone
# cannot go below 3 s (RFC 4271 minimum) and cost that much on every host death; BFD is what
# turns a silent host into a withdrawal within a few hundred ms. Five packets of slack keep a
# loaded machine (2 shared cores) from flapping sessions.
NETBED_BFD_INTERVAL_MS=${NETBED_BFD_INTERVAL_MS:-50}
NETBED_BFD_MULTIPLIER=${NETBED_BFD_MULTIPLIER:-5}
# Kernel route protocol number of the agent's port routes (what the host BIRD learns).
NETBED_PORT_PROTO=200

netbed_run_dir() { echo "$NETBED_ROOT/$1"; }
netbed_ns() { # PFX NODE → namespace name (NODE: r, ul, h1, h2, ...)
  echo "$1-$2"
}
netbed_host_ip() { echo "192.168.10.$((10 + $1))"; }

netbed_check_pfx() {
  [[ "$1" =~ ^[a-z][a-z0-9]{1,11}$ ]] || {
    echo "netbed: prefix '$1' must be 2-12 of [a-z0-9], starting with a letter" >&2
    return 2
  }
}

# Renders the host BIRD config (the agent renders the same through src/agent/net/bird.h).
netbed_host_bird_conf() { # I
  local ip
  ip=$(netbed_host_ip "$1")
  cat <<EOF
router id $ip;
protocol device { scan time 10; }
protocol kernel ports {
  ipv4 { import where krt_source = $NETBED_PORT_PROTO && net.len = 32; export none; };
  learn;
  scan time 10;
}
protocol bfd {
  interface "ul0" { interval $NETBED_BFD_INTERVAL_MS ms; multiplier $NETBED_BFD_MULTIPLIER; };
}
protocol bgp rack {
  local $ip as $((NETBED_ROUTER_AS + $1));
  neighbor 192.168.10.1 as $NETBED_ROUTER_AS;
  bfd yes;
  hold time 3; keepalive time 1; connect retry time 1; error wait time 1, 2;
  ipv4 { import none; export where proto = "ports"; };
}
EOF
}

netbed_router_bird_conf() { # N
  cat <<EOF
router id 192.168.10.1;
protocol device { scan time 10; }
protocol kernel {
  ipv4 { import none; export all; };
  scan time 10;
}
protocol bfd {
  interface "ul0" { interval $NETBED_BFD_INTERVAL_MS ms; multiplier $NETBED_BFD_MULTIPLIER; };
}
template bgp host {
  local 192.168.10.1 as $NETBED_ROUTER_AS;
  bfd yes;
  hold time 3; keepalive time 1; connect retry time 1; error wait time 1, 2;
  ipv4 { import where net.len = 32; export none; };
}
EOF
  local i
  for ((i = 1; i <= $1; i++)); do
    echo "protocol bgp h$i from host { neighbor $(netbed_host_ip "$i") as $((NETBED_ROUTER_AS + i)); }"
  done
}

netbed_start_bird() { # PFX NODE CONF
  local run ns
  run=$(netbed_run_dir "$1")
  ns=$(netbed_ns "$1" "$2")
  { echo "log \"$run/$2.log\" all;"
    echo "debug protocols { states };"
    echo 'timeformat log "%F %T.%3f";'
    printf '%s\n' "$3"; } >"$run/$2.conf"
  ip netns exec "$ns" bird -c "$run/$2.conf" -s "$run/$2.ctl" -P "$run/$2.pid"
}

# Joins namespace NODE to the underlay bridge with address ADDR/24 on its "ul0".
netbed_attach() { # PFX NODE ADDR
  local ul ns
  ul=$(netbed_ns "$1" ul)
  ns=$(netbed_ns "$1" "$2")
  ip -n "$ul" link add "$2" type veth peer name ul0 netns "$ns"
  ip -n "$ul" link set "$2" master br0 up
  ip -n "$ns" addr add "$3/24" dev ul0
  ip -n "$ns" link set ul0 up
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 \
    net.ipv4.conf.ul0.send_redirects=0
}

# A namespace whose IPv4 defaults do not come from the host's: new namespaces inherit the
# host's conf/default (devconf_inherit_init_net=0), and a node agent in mode ports on the host
# sets default.rp_filter=1, which drops the bed's asymmetric (DSR) paths.
netbed_ns_add() { # NS
  ip netns add "$1"
  ip netns exec "$1" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
}

# The underlay bridge stands for the rack's switch, which forwards frames without any IP
# firewall. br_netfilter (built into this kernel, and on in every namespace by default) made it
# run the IPv4/IPv6/ARP netfilter hooks on every frame it bridged, with an skb extension and a
# fake route per frame, though the namespace has no rules: twice per packet between two hosts
# (host -> router -> host), ~1.5 % of the CPU per byte of a port-to-port stream across hosts
# (perf, docs/network-node.md). NETBED_BRIDGE_NF=1 keeps them (to measure the difference).
netbed_switch_without_netfilter() { # NS
  [ "${NETBED_BRIDGE_NF:-0}" = 1 ] && return 0
  # Without br_netfilter (a module elsewhere, maybe not loaded) there is nothing to turn off.
  ip netns exec "$1" test -e /proc/sys/net/bridge/bridge-nf-call-iptables || return 0
  ip netns exec "$1" sysctl -qw net.bridge.bridge-nf-call-iptables=0 \
    net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0
}

netbed_up() { # PFX [N]
  netbed_check_pfx "$1"
  local pfx=$1 n=${2:-3} run i
  run=$(netbed_run_dir "$pfx")
  if [ -e "$run" ]; then
    echo "netbed: $pfx is already up ($run exists)" >&2
    return 1
  fi
  mkdir -p "$run"
  chmod 700 "$run"
  echo "$n" >"$run/hosts"
  netbed_ns_add "$(netbed_ns "$pfx" ul)"
  netbed_switch_without_netfilter "$(netbed_ns "$pfx" ul)"
  ip -n "$(netbed_ns "$pfx" ul)" link add br0 type bridge
  ip -n "$(netbed_ns "$pfx" ul)" link set br0 up
  netbed_ns_add "$(netbed_ns "$pfx" r)"
  netbed_attach "$pfx" r 192.168.10.1
  for ((i = 1; i <= n; i++)); do
    netbed_ns_add "$(netbed_ns "$pfx" "h$i")"
    netbed_attach "$pfx" "h$i" "$(netbed_host_ip "$i")"
    ip -n "$(netbed_ns "$pfx" "h$i")" route add default via 192.168.10.1 dev ul0
  done
  netbed_start_bird "$pfx" r "$(netbed_router_bird_conf "$n")"
  for ((i = 1; i <= n; i++)); do
    netbed_start_bird "$pfx" "h$i" "$(netbed_host_bird_conf "$i")"
  done
  netbed_wait_established "$pfx" 20
}

# Waits until the router has every BGP session Established (and BFD up), or fails.
netbed_wait_established() { # PFX SECONDS
  local n deadline up
  n=$(cat "$(netbed_run_dir "$1")/hosts")
  deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    up=$(netbed_bird "$1" r show protocols 2>/dev/null | grep -c 'BGP .* Established' || true)
    if [ "$up" -eq "$n" ]; then return 0; fi
    sleep 0.1
  done
  echo "netbed: only $up of $n BGP sessions established after $2 s" >&2
  netbed_bird "$1" r show protocols >&2 || true
  return 1
}

netbed_exec() { # PFX NODE CMD...
  local ns
  ns=$(netbed_ns "$1" "$2")
  shift 2
  ip netns exec "$ns" "$@"
}

netbed_bird() { # PFX NODE BIRDC-ARGS...
  local sock
  sock="$(netbed_run_dir "$1")/$2.ctl"
  shift 2
  birdc -s "$sock" "$@"
}

netbed_kill_pidfile() {
  local pid
  [ -f "$1" ] || return 0
  pid=$(cat "$1")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid" 2>/dev/null || true
    # Gone once it is no longer running: a daemon's zombie waits for init, which may be slow.
    while [ -e "/proc/$pid" ] && ! grep -q '^[^)]*) Z' "/proc/$pid/stat" 2>/dev/null; do
      sleep 0.01
    done
  fi
  rm -f "$1"
}

netbed_kill_host() { # PFX I
  ip -n "$(netbed_ns "$1" ul)" link set "h$2" down
  netbed_kill_pidfile "$(netbed_run_dir "$1")/h$2.pid"
}

# Brings a killed host back: underlay port up, its BIRD restarted with its config.
netbed_revive_host() { # PFX I
  local run
  run=$(netbed_run_dir "$1")
  ip -n "$(netbed_ns "$1" ul)" link set "h$2" up
  netbed_kill_pidfile "$run/h$2.pid"
  rm -f "$run/h$2.ctl"
  ip netns exec "$(netbed_ns "$1" "h$2")" bird -c "$run/h$2.conf" -s "$run/h$2.ctl" -P "$run/h$2.pid"
  netbed_wait_established "$1" 20
}

netbed_down() { # PFX
  netbed_check_pfx "$1"
  local run ns pidf pid
  run=$(netbed_run_dir "$1")
  for pidf in "$run"/*.pid; do
    [ -e "$pidf" ] && netbed_kill_pidfile "$pidf"
  done
  # Any process still inside one of the bed's namespaces (an agent, a test's workload) goes too:
  # a namespace with a live process would outlive its name.
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^$1-" || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
      kill -9 "$pid" 2>/dev/null || true
    done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$run"
}

netbed_status() { # PFX
  local ns
  ip netns list | awk '{print $1}' | grep -E "^$1-" || true
  netbed_bird "$1" r show protocols 2>/dev/null || echo "router BIRD not running"
  netbed_bird "$1" r show route 2>/dev/null || true
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  verb=${1:-}
  shift || true
  case "$verb" in
  up) netbed_up "$@" ;;
  down) netbed_down "$@" ;;
  exec) netbed_exec "$@" ;;
  bird) netbed_bird "$@" ;;
  kill-host) netbed_kill_host "$@" ;;
  revive-host) netbed_revive_host "$@" ;;
  status) netbed_status "$@" ;;
  host-bird-conf) netbed_host_bird_conf "$@" ;;
  *)
    echo "usage: $0 up PFX [HOSTS] | down PFX | exec PFX NODE CMD... | bird PFX NODE ARGS... |" \
      "kill-host PFX I | status PFX" >&2
    exit 2
    ;;
  esac
fi
