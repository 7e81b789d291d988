#!/usr/bin/env bash
# The whole test suite, as CI runs it: services up, formatting, lints, then
# every test against the real PostgreSQL and RabbitMQ.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/services.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
./helm/tests/run.sh
