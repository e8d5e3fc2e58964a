#!/usr/bin/env bash
# Runs every check and test of Room: formatting, clippy for the server and the wasm32 client,
# unit and integration tests, a release build, and the Playwright suite in Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh browser

# A clean CI run gains nothing from incremental caches and they cost gigabytes of disk.
if [[ -n "${CI:-}" ]]; then
  export CARGO_INCREMENTAL=0
fi
printf 'disk before the build: %s free\n' "$(df -h --output=avail . | tail -1 | tr -d ' ')"

timed() {
  local name=$1
  shift
  local start=$SECONDS
  printf '\n==> %s\n' "$name"
  "$@"
  printf '<== %s took %ss\n' "$name" $((SECONDS - start))
}

timed "rustfmt" cargo fmt --all -- --check
timed "clippy (server and room-bench, ssr)" \
  cargo clippy --workspace --features room/ssr --all-targets -- -D warnings
timed "clippy (client, hydrate on wasm32)" \
  cargo clippy -p room --target wasm32-unknown-unknown --features hydrate --all-targets -- -D warnings
timed "unit and integration tests" cargo test --workspace --features room/ssr
timed "release build (server and WASM client)" cargo leptos build --release --precompress
timed "end-to-end tests (Playwright, Chromium)" bash -c 'cd end2end && npx playwright test'
printf 'disk after the build: %s free, target/ holds %s\n' \
  "$(df -h --output=avail . | tail -1 | tr -d ' ')" "$(du -sh target | cut -f1)"
printf '\nAll checks passed.\n'
