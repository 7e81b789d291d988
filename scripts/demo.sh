#!/usr/bin/env bash
# The newcomer's first run: bring up PostgreSQL and RabbitMQ (installing
# them when missing), build, start a tiny local target, and run SentryK8s
# `standalone` on examples/checks.yaml. Within a minute the status table
# shows some checks UP and others DOWN (a 500, a timeout, a refused port).
# Ctrl-C stops everything. Extra arguments go to `sentryk8s standalone`.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/services.sh
if ! psql -h 127.0.0.1 -U postgres -d postgres -qAtc "SELECT 1 FROM pg_database WHERE datname = 'sentryk8s'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -d postgres -qc 'CREATE DATABASE sentryk8s'
fi

cargo build --bin sentryk8s --example demo_target

target_pid=
if ! (exec 3<>/dev/tcp/127.0.0.1/18080) 2>/dev/null; then
  target/debug/examples/demo_target &
  target_pid=$!
fi
# The example's Authorization header reads it (an unset variable is an error).
export EXAMPLE_TOKEN="${EXAMPLE_TOKEN:-demo-token}"
# The demo heartbeat's ping key, and the job that pings it every 20 s.
export EXAMPLE_PING_KEY="${EXAMPLE_PING_KEY:-demo-heartbeat-key}"
(while sleep 20; do curl -fsS -m 5 "http://127.0.0.1:8080/ping/$EXAMPLE_PING_KEY" >/dev/null 2>&1 || true; done) &
pinger_pid=$!
cleanup() {
  [ -n "$target_pid" ] && kill "$target_pid" 2>/dev/null || true
  kill "$pinger_pid" 2>/dev/null || true
}
trap cleanup EXIT

cat <<'EOF'
SentryK8s demo: once the checks have run (a minute or so), open
  the status page   http://127.0.0.1:8080/status/demo
  the dashboard     http://127.0.0.1:8080/  (sign in with a token from
                    target/debug/sentryk8s tokens create --name me --scope admin)
EOF
target/debug/sentryk8s --listen 127.0.0.1:9090 standalone --allow-env 'EXAMPLE_*' -f examples/checks.yaml "$@"
