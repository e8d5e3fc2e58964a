#!/usr/bin/env bash
# Builds Room (release) and starts it on http://127.0.0.1:3000. Extra arguments go to the
# server, e.g. scripts/start.sh --addr 0.0.0.0:8080 (see target/release/room --help).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

echo "==> building Room (release)"
cargo leptos build --release --precompress
exec target/release/room "$@"
