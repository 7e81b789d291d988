#!/usr/bin/env bash
# The whole test suite, as CI runs it: relative links of the docs, services
# up, formatting, lints, the dependency policy, the layering of src/, every
# test against the real PostgreSQL and RabbitMQ, the chaos run (its
# accounting table printed), the Kubernetes delivery checks, and a bounded
# fuzzing run. Tools it needs and lacks are installed
# (cargo-deny, cargo-fuzz from crates.io; openapi-spec-validator by
# tests/api/install.sh; helm, Python tools, prometheus and shellcheck by
# helm/tests/run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# Every relative link of README.md, docs/ and the chart READMEs resolves
# (file and #anchor): under a second, so first.
./scripts/check_links.sh

./scripts/services.sh

# Debian packages the tests use, installed when missing:
# - libfaketime: the clock-jump test (tests/integration/clock_jumps.rs)
#   steps the real binary's wall clock;
# - chromium: the page tests drive a real headless browser
#   (tests/integration/support/browser.rs).
missing=()
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || missing+=(libfaketime)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

# Dependency policy (deny.toml): bans, licenses, sources. The GitHub
# workflow also checks RustSec advisories, whose database lives on GitHub.
command -v cargo-deny >/dev/null 2>&1 || cargo install --locked cargo-deny
cargo deny check bans licenses sources

# The layering of src/ (no import cycles, roles apart, imports point down
# the layers of docs/development.md): reads the sources, takes seconds.
cargo test --locked --test layering

# The OpenAPI validator the API test runs on the served document
# (tests/integration/web_openapi.rs finds it in .tools/api-venv), in a venv
# of its own: seconds once installed. Nothing is exported: a SENTRYK8S_*
# variable would be read as configuration by the tests' Config::defaults().
./tests/api/install.sh >/dev/null

# Unit and integration tests (parallel, isolated per test), then the serial
# binaries that restart PostgreSQL and RabbitMQ: cargo runs test binaries
# one after another, so nothing runs beside a restart.
cargo test --locked --lib --bins --test integration
cargo test --locked --test restarts
cargo test --locked --test chaos -- --nocapture

./helm/tests/run.sh
./scripts/fuzz.sh "${SENTRYK8S_FUZZ_SECONDS:-30}"
