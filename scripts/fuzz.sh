#!/usr/bin/env bash
# Runs both fuzz targets for a bounded time each (default 60 s); fails on
# any crash, leaving the input in fuzz/artifacts/<target>/.
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 allows them on the
# stable toolchain this project builds with.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
for target in checks_file job_decode; do
  mkdir -p "fuzz/corpus/$target"
  cp -n fuzz/seeds/$target/* "fuzz/corpus/$target/" 2>/dev/null || true
  echo "fuzz: $target for ${seconds}s"
  # No sanitizer: the code under test is safe Rust, and AddressSanitizer
  # would double the build and slow every run for nothing it could find.
  (cd fuzz && cargo fuzz run --sanitizer none "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -4)
  if [ -n "$(ls -A "fuzz/artifacts/$target" 2>/dev/null)" ]; then
    echo "fuzz: $target found a crash: $(ls fuzz/artifacts/$target)" >&2
    exit 1
  fi
done
