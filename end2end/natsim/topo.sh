#!/bin/bash
# Build / tear down the simulated-NAT topology.
#   ./topo.sh up        build everything (nat1 = port-restricted cone, nat2 = symmetric)
#   ./topo.sh nat2 cone|symmetric   switch nat2's MASQUERADE flavour (flushes conntrack)
#   ./topo.sh nat1 cone|symmetric   the same for nat1
#   ./topo.sh udp home1|home2 block|allow   a strict firewall: drop all UDP to and from a home
#   ./topo.sh down      delete all namespaces
#
# Given with the project (shared/natsim); kept here so CI's clean checkout has it. Room's
# Playwright NAT tests (end2end/tests/nat.spec.ts) run it as root.
#
#  home1 10.99.1.2 --- 10.99.1.1 [nat1] 203.0.113.21 --+
#                                                      +-- br0 [pub] 203.0.113.10 (signaling :8080, coturn :3478)
#                                                      +-- [void] 203.0.113.254 (default gw of all, drops everything)
#  home2 10.99.2.2 --- 10.99.2.1 [nat2] 203.0.113.22 --+
set -e
NS="np-pub np-void np-nat1 np-nat2 np-home1 np-home2"
x() { ip netns exec "$@"; }

nat_rules() { # $1=ns  $2=lan-subnet  $3=extra MASQUERADE flags
  x $1 iptables -F; x $1 iptables -t nat -F
  x $1 iptables -P FORWARD DROP
  x $1 iptables -A FORWARD -i lan -o wan -j ACCEPT
  x $1 iptables -A FORWARD -i wan -o lan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  # drop unsolicited inbound to the router itself: otherwise the kernel confirms
  # a conntrack entry for the dropped packet, which later collides with the
  # outbound mapping and makes even the "cone" NAT pick a new port.
  x $1 iptables -A INPUT -i wan -m conntrack --ctstate NEW,INVALID -j DROP
  x $1 iptables -t nat -A POSTROUTING -s $2 -o wan -j MASQUERADE $3
  x $1 conntrack -F >/dev/null 2>&1 || true
}

case "$1" in
up)
  for n in $NS; do ip netns add $n; x $n ip link set lo up; done
  # public "internet": a bridge
  x np-pub ip link add br0 type bridge
  x np-pub ip addr add 203.0.113.10/24 dev br0
  x np-pub ip link set br0 up
  x np-pub sysctl -qw net.ipv4.ip_forward=0
  # "Rest of the internet": np-void at 203.0.113.254 is everyone's default
  # gateway and, with forwarding off, silently drops what is not for it.
  # Without a default route in np-pub, coturn's sendto() to a peer's private
  # host candidate (10.99.x.x) fails with ENETUNREACH and coturn 4.6.1 tears
  # the whole allocation down ("closed ... reason: general") -> flaky TURN.
  ip link add eth0 netns np-void type veth peer name upv netns np-pub
  x np-pub ip link set upv master br0 up
  x np-void ip addr add 203.0.113.254/24 dev eth0
  x np-void ip link set eth0 up
  x np-void sysctl -qw net.ipv4.ip_forward=0
  x np-pub ip route add default via 203.0.113.254
  for i in 1 2; do
    # nat<i> WAN side on the bridge
    ip link add wan netns np-nat$i type veth peer name up$i netns np-pub
    x np-pub ip link set up$i master br0 up
    x np-nat$i ip addr add 203.0.113.2$i/24 dev wan
    x np-nat$i ip link set wan up
    x np-nat$i ip route add default via 203.0.113.254
    # home<i> <-> nat<i> LAN
    ip link add lan netns np-nat$i type veth peer name eth0 netns np-home$i
    x np-nat$i ip addr add 10.99.$i.1/24 dev lan
    x np-nat$i ip link set lan up
    x np-home$i ip addr add 10.99.$i.2/24 dev eth0
    x np-home$i ip link set eth0 up
    x np-home$i ip route add default via 10.99.$i.1
    x np-nat$i sysctl -qw net.ipv4.ip_forward=1
  done
  nat_rules np-nat1 10.99.1.0/24 ""                 # endpoint-independent mapping, port-restricted filtering
  nat_rules np-nat2 10.99.2.0/24 "--random-fully"   # new random port per destination = symmetric
  ;;
nat1|nat2)
  i=${1#nat}
  if [ "$2" = cone ]; then nat_rules np-nat$i 10.99.$i.0/24 ""; else nat_rules np-nat$i 10.99.$i.0/24 "--random-fully"; fi
  ;;
udp)
  i=${2#home}
  if [ "$3" = block ]; then
    x np-nat$i iptables -I FORWARD -i lan -p udp -j DROP
    x np-nat$i iptables -I FORWARD -o lan -p udp -j DROP
  else
    x np-nat$i iptables -D FORWARD -i lan -p udp -j DROP 2>/dev/null || true
    x np-nat$i iptables -D FORWARD -o lan -p udp -j DROP 2>/dev/null || true
  fi
  x np-nat$i conntrack -F >/dev/null 2>&1 || true
  ;;
flush)
  for i in 1 2; do x np-nat$i conntrack -F >/dev/null 2>&1 || true; done
  ;;
down)
  for n in $NS; do ip netns del $n 2>/dev/null || true; done
  ;;
*) echo "usage: $0 up|down|nat1 cone|symmetric|nat2 cone|symmetric|udp home1|home2 block|allow|flush"; exit 1;;
esac
