#!/usr/bin/env bash
# Runs every load scenario of docs/BENCHMARKS.md against fresh release servers on loopback and
# prints the results. Not part of the test suite (benchmarks are not timed tests).
#   scripts/bench.sh            all scenarios (about 3 minutes)
#   scripts/bench.sh fanout     one group: fanout, rooms, idle, storm, pages, firstload, media,
#                               relay, nat, cluster or reference (relay and nat compare with coturn; nat
#                               needs root for its network namespaces)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

if ! command -v wrk >/dev/null; then
  as_root apt-get install -y --no-install-recommends wrk
fi
# coturn is the point of comparison for the built-in TURN relay (the relay and nat groups).
if ! command -v turnserver >/dev/null; then
  as_root apt-get install -y --no-install-recommends coturn
fi

step "building the server, the site and room-bench (release)"
cargo leptos build --release --precompress
cargo build --release -p room-bench

# Each server and the load tool hold one descriptor per connection.
ulimit -n "$(ulimit -Hn)"
PORT=3999
SERVER_PID=
DATA_DIR=$(mktemp -d)

start_server() {
  target/release/room --addr "127.0.0.1:$PORT" --data-dir "$DATA_DIR" "$@" >/tmp/room-bench-server.log 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    grep -q "listening on" /tmp/room-bench-server.log 2>/dev/null && return
    sleep 0.1
  done
  echo "the server did not start" >&2
  exit 1
}

stop_server() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
trap 'stop_server; rm -rf "$DATA_DIR"' EXIT

load() {
  printf '\n--- room-bench load %s\n' "$*"
  target/release/room-bench load --addr "127.0.0.1:$PORT" --server-pid "$SERVER_PID" "$@"
}

media() {
  printf '\n--- room-bench media %s\n' "$*"
  target/release/room-bench media --addr "127.0.0.1:$PORT" --server-pid "$SERVER_PID" "$@"
}

# The chat rate limit (10 burst, 5/s), the room cap (100) and the per-address connection
# limit (200) protect real rooms; these scenarios raise them on purpose, since 50-100 messages
# a second per sender, from thousands of clients on one address, is the load being measured.
PER_IP=(--max-connections-per-ip 20000 --max-http-connections-per-ip 20000 --new-rooms-burst 20000)
RAISED=(--max-room-members 1000 --chat-burst 200 --chat-per-second 200 "${PER_IP[@]}")

group=${1:-all}

if [ "$group" = all ] || [ "$group" = fanout ]; then
  step "fan-out: 1,000 clients in one room"
  start_server "${RAISED[@]}"
  load --clients 1000 --rooms 1 --senders 10 --rate 50 --duration 10
  load --clients 1000 --rooms 1 --senders 10 --rate 100 --duration 10
  stop_server
fi

if [ "$group" = all ] || [ "$group" = rooms ]; then
  step "rooms: 1,000 clients in 10 rooms of 100"
  start_server "${RAISED[@]}"
  load --clients 1000 --rooms 10 --senders 100 --rate 10 --duration 10
  stop_server
fi

if [ "$group" = all ] || [ "$group" = idle ]; then
  step "idle: 10,000 connections in 100 rooms of 100, default settings but the per-address limit"
  start_server "${PER_IP[@]}"
  load --clients 10000 --rooms 100 --idle --duration 5
  stop_server
fi

if [ "$group" = all ] || [ "$group" = storm ]; then
  step "restart storm: 10,000 clients connect and join 100 rooms all at once"
  for run in 1 2 3; do
    start_server "${PER_IP[@]}"
    load --clients 10000 --rooms 100 --idle --duration 1 --connect-concurrency 10000
    stop_server
  done
fi

if [ "$group" = all ] || [ "$group" = media ]; then
  step "calls through the server: synthetic publishers and receivers (room-bench media)"
  start_server "${PER_IP[@]}" --media sfu --media-addr 127.0.0.1:0 --max-call-members 400 \
    --max-room-members 1000
  media --publishers 1 --subscribers 100 --duration 10 --layer h
  media --publishers 1 --subscribers 200 --duration 10 --layer h
  media --publishers 1 --subscribers 300 --duration 10 --layer h
  media --publishers 2 --subscribers 8 --rooms 10 --duration 10 --layer h
  # A large meeting: everyone sends the small layer, shows a page of 9 cameras, two talk.
  media --publishers 50 --subscribers 0 --duration 10 --layer q --tiles 9 --speakers 2 \
    --publish-layers 1
  stop_server
fi

if [ "$group" = all ] || [ "$group" = relay ]; then
  step "TURN relay: relayed calls of 2 Mbit/s each way, Room's relay and coturn side by side"
  # Both run in the same 30 s, so a noisy neighbour on the machine costs both alike: one
  # after the other, runs of the same server differed by a third.
  SECRET_FILE="$DATA_DIR/turn-secret"
  COTURN_SECRET=$(mktemp)
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$COTURN_SECRET"
  for calls in 1 1 1 10; do
    start_server --media mesh --turn on --turn-addr 127.0.0.1:3478 --turn-allow-peer 127.0.0.0/8 \
      --metrics-addr off
    turnserver -n --listening-ip 127.0.0.1 --listening-port 3479 --relay-ip 127.0.0.1 \
      --min-port 50000 --max-port 50999 --realm room --use-auth-secret \
      --static-auth-secret="$(cat "$COTURN_SECRET")" --no-cli --no-tls --no-dtls \
      --allow-loopback-peers --log-file stdout >/tmp/room-bench-coturn.log 2>&1 &
    COTURN_PID=$!
    for _ in $(seq 50); do
      grep -q "Total General servers" /tmp/room-bench-coturn.log 2>/dev/null && break
      sleep 0.1
    done
    sleep 0.5
    target/release/room-bench turn --server 127.0.0.1:3479 --secret-file "$COTURN_SECRET" \
      --server-pid "$COTURN_PID" --calls "$calls" --kbps 2000 --seconds 30 >/tmp/room-bench-coturn.txt &
    COTURN_BENCH=$!
    printf '\n--- room-bench turn --calls %s (Room)\n' "$calls"
    target/release/room-bench turn --server 127.0.0.1:3478 --secret-file "$SECRET_FILE" \
      --server-pid "$SERVER_PID" --calls "$calls" --kbps 2000 --seconds 30
    wait "$COTURN_BENCH"
    printf '\n--- room-bench turn --calls %s (coturn, the same 30 s)\n' "$calls"
    cat /tmp/room-bench-coturn.txt
    kill "$COTURN_PID" 2>/dev/null && wait "$COTURN_PID" 2>/dev/null || true
    stop_server
  done
  rm -f "$COTURN_SECRET"
fi

if [ "$group" = all ] || [ "$group" = nat ]; then
  step "calls through simulated NATs: time to connected, Room's relay against coturn (root)"
  (cd end2end && npx playwright test --config bench.config.ts bench/nat-connect.spec.ts)
fi

if [ "$group" = all ] || [ "$group" = firstload ]; then
  step "first load of the meeting page over 10 Mbit/s and 40 ms, first and second visit"
  for file in target/site/pkg/*.wasm target/site/pkg/*.wasm.br target/site/pkg/*.wasm.gz; do
    printf '%s: %s bytes\n' "$file" "$(stat -c %s "$file")"
  done
  (cd end2end && npx playwright test --config bench.config.ts bench/first-load.spec.ts)
fi

if [ "$group" = all ] || [ "$group" = cluster ]; then
  step "three nodes sharing rooms through Redis, against one node, in the same run"
  if ! command -v redis-server >/dev/null; then
    as_root apt-get install -y --no-install-recommends redis-server
  fi
  REDIS_PORT=6391
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >/tmp/room-bench-redis.log 2>&1 &
  REDIS_PID=$!
  sleep 0.5
  NODE_PIDS=()
  for n in 0 1 2; do
    mkdir -p "$DATA_DIR/node-$n"
    target/release/room --addr "127.0.0.1:$((PORT + 1 + n))" --data-dir "$DATA_DIR/node-$n" \
      --media-addr 127.0.0.1:0 --redis-url "redis://127.0.0.1:$REDIS_PORT" --node-id "node-$n" \
      "${RAISED[@]}" >"/tmp/room-bench-node-$n.log" 2>&1 &
    NODE_PIDS+=($!)
  done
  sleep 2
  printf '\n--- room-bench load, 3 nodes\n'
  target/release/room-bench load --addr "127.0.0.1:$((PORT + 1))" \
    --also "127.0.0.1:$((PORT + 2)),127.0.0.1:$((PORT + 3))" \
    --clients 1000 --rooms 10 --senders 100 --rate 10 --duration 10
  for pid in "${NODE_PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null || true
  start_server "${RAISED[@]}"
  load --clients 1000 --rooms 10 --senders 100 --rate 10 --duration 10
  stop_server
fi

if [ "$group" = all ] || [ "$group" = pages ]; then
  step "server-rendered pages: wrk, 64 connections, 10 s each"
  start_server
  for page in / /r/bench-room; do
    printf '\n--- wrk %s\n' "$page"
    wrk -t2 -c64 -d10s "http://127.0.0.1:$PORT$page"
  done
  stop_server
fi

if [ "$group" = all ] || [ "$group" = reference ]; then
  step "the tool's ceiling: the same fan-out against the minimal reference server"
  target/release/room-bench reference --addr "127.0.0.1:$PORT" >/tmp/room-bench-reference.log 2>&1 &
  SERVER_PID=$!
  sleep 0.5
  load --clients 1000 --rooms 1 --senders 10 --rate 100 --duration 10
  load --clients 1000 --rooms 1 --senders 10 --rate 150 --duration 10
  stop_server
fi
