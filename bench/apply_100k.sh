#!/usr/bin/env bash
# Benchmark: `sentryk8s checks apply` of one file with N checks (default
# 100,000) into a fresh database, then the same file again (a no-op that
# must write nothing), then with every check changed.
#
#   bench/apply_100k.sh [N]
#
# Needs PostgreSQL (scripts/services.sh starts it) and builds the release
# binary. The database is created and dropped by this script. Targets are
# never contacted: apply only writes the declarations.
set -euo pipefail
cd "$(dirname "$0")/.."

N="${1:-100000}"
ADMIN_URL="${SENTRYK8S_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB="sk_bench_apply_$$"
WORK="$(mktemp -d)"
DB_URL="${ADMIN_URL%/*}/$DB"

cleanup() {
    psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --release --quiet
BIN=target/release/sentryk8s

# Realistic checks: a header with a ${VAR}, status list, body and JSON
# assertions, labels and alerts, four different intervals.
generate() { # $1 = path suffix that makes every check differ from the last run
    awk -v n="$N" -v suffix="$1" 'BEGIN {
        print "alerts:\n  ops: { type: webhook, url: \"http://127.0.0.1:18090/hooks/ops\" }\ndefaults:\n  timeout: 5s\n  labels: { env: bench }\nchecks:";
        split("10s 30s 60s 5m", iv, " ");
        for (i = 0; i < n; i++) {
            printf "  - name: svc-%06d\n", i;
            printf "    url: https://svc-%06d.example.com/health%s\n", i, suffix;
            printf "    interval: %s\n", iv[i % 4 + 1];
            printf "    headers:\n      Authorization: \"Bearer ${BENCH_TOKEN}\"\n";
            printf "    expect:\n      status: [200, \"3xx\"]\n      body_contains: ok\n      json: { /status: UP }\n";
            printf "    labels: { team: team-%d, tier: \"%d\" }\n", i % 50, i % 3;
            printf "    alerts: [ops]\n";
        }
    }'
}
generate "" >"$WORK/checks.yaml"
generate "?v=2" >"$WORK/changed.yaml"
echo "generated $N checks: $(du -h "$WORK/checks.yaml" | cut -f1), $(wc -l <"$WORK/checks.yaml") lines"

psql "$ADMIN_URL" -qc "CREATE DATABASE \"$DB\"" >/dev/null
export SENTRYK8S_DATABASE_URL="$DB_URL" BENCH_TOKEN="bench-token"
"$BIN" migrate >/dev/null

run() { # $1 = label, $2 = file
    local start end
    start=$(date +%s.%N)
    "$BIN" checks apply -f "$2" >"$WORK/out.txt"
    end=$(date +%s.%N)
    printf '%-28s %6.2f s   %s\n' "$1" "$(echo "$end - $start" | bc)" "$(tail -n 1 "$WORK/out.txt")"
}
run "first apply (create all)" "$WORK/checks.yaml"
run "second apply (no-op)" "$WORK/checks.yaml"
run "third apply (update all)" "$WORK/changed.yaml"
psql "$DB_URL" -Atc "SELECT count(*) || ' rows, max version ' || max(version) FROM checks"
