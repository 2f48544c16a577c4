#!/usr/bin/env bash
# Builds every fuzz target and runs each for a bounded time (FUZZ_SECONDS, default 60), one after
# the other; a crash stops the script with the input saved under fuzz/artifacts/<target>/.
#   cargo install cargo-fuzz      # once
#   fuzz/run.sh                   # FUZZ_SECONDS=10 fuzz/run.sh for a smoke run
# FUZZ_DEV=1 builds without optimisation (faster to build, slower to run): what CI does, to check
# that every target builds and survives a few seconds. Stable Rust works without sanitizers
# (-s none) when RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags; a nightly toolchain needs
# neither.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
profile=()
if [ -n "${FUZZ_DEV:-}" ]; then
  profile=(--dev)
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none "${profile[@]}"
for target in $(cargo fuzz list); do
  echo "== $target for ${seconds}s"
  cargo fuzz run -s none "${profile[@]}" "$target" -- -max_total_time="$seconds"
done
