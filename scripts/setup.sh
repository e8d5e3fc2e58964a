#!/usr/bin/env bash
# Installs what building (and, with the argument "browser", testing) Room needs, skipping
# whatever is already there. Sourced by scripts/start.sh and scripts/test.sh, so it also puts
# the tools on PATH for them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CARGO_LEPTOS_VERSION=0.3.10
# cargo-leptos runs whatever wasm-bindgen is on PATH; it must equal the crate pinned in Cargo.toml.
WASM_BINDGEN_VERSION=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)"/\1/p' Cargo.toml)

export PATH="$PWD/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH"

step() { printf '\n==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

for component in clippy rustfmt; do
  if ! rustup component list --installed | grep -q "^$component"; then
    step "adding rustup component $component"
    rustup component add "$component"
  fi
done

if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
  step "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 4 minutes, once)"
  # Not --locked: its lockfile pins a yanked crate.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

if [ "$(cargo leptos --version 2>/dev/null)" != "cargo-leptos $CARGO_LEPTOS_VERSION" ]; then
  step "installing cargo-leptos $CARGO_LEPTOS_VERSION (about 25 minutes, once)"
  cargo install "cargo-leptos@$CARGO_LEPTOS_VERSION" --locked
fi

# npm packages: binaryen provides wasm-opt for release builds (cargo-leptos would otherwise
# try to download it), @playwright/test the end-to-end runner.
if ! (cd end2end && npm ls --depth=0 >/dev/null 2>&1); then
  step "installing npm packages in end2end/"
  (cd end2end && npm ci --no-audit --no-fund)
fi

if [ "${1:-}" = browser ] && ! [ -x /usr/bin/chromium ]; then
  step "installing Debian's chromium for the end-to-end tests"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
fi

# The recording test checks the downloaded file with ffprobe (Debian's ffmpeg).
if [ "${1:-}" = browser ] && ! command -v ffprobe >/dev/null 2>&1; then
  step "installing ffmpeg (ffprobe) for the recording test"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg
fi

# The NAT tests (end2end/tests/nat.spec.ts) build simulated homes with network namespaces,
# iptables and conntrack.
if [ "${1:-}" = browser ] && ! { command -v ip && command -v iptables && command -v conntrack; } >/dev/null 2>&1; then
  step "installing iproute2, iptables and conntrack for the NAT tests"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iproute2 iptables conntrack
fi

# The cluster tests (tests/cluster.rs, end2end/tests/cluster.spec.ts) start their own
# redis-server on a free loopback port; only the program is needed, not a running service.
if [ "${1:-}" = browser ] && ! command -v redis-server >/dev/null 2>&1; then
  step "installing redis-server for the cluster tests"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server
fi
