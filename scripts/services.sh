#!/usr/bin/env bash
# Brings up what SentryK8s needs on this machine: PostgreSQL on
# 127.0.0.1:5432 (user postgres, trust auth) and RabbitMQ on
# 127.0.0.1:5672 (guest/guest). Installs them with apt-get when missing and
# starts them when stopped; does nothing when both already answer.
# Idempotent; safe to run before every test run.
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "services.sh: need root (or sudo) to run: $*" >&2; exit 1
  fi
}

missing=()
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql postgresql-client)
command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
if [ ${#missing[@]} -gt 0 ]; then
  echo "services.sh: installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# PostgreSQL
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! pg_up; then
  version=$(ls /etc/postgresql | sort -n | tail -1)
  echo "services.sh: starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 60); do pg_up && break; sleep 0.5; done
  pg_up || { echo "services.sh: PostgreSQL did not start" >&2; exit 1; }
fi
if ! psql -h 127.0.0.1 -U postgres -d postgres -qAtc 'SELECT 1' >/dev/null 2>&1; then
  # A fresh Debian install asks for a password on TCP; tests and the
  # newcomer command connect as postgres without one, on loopback only.
  version=$(ls /etc/postgresql | sort -n | tail -1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  echo "services.sh: allowing trust auth for postgres on 127.0.0.1 in $hba"
  as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  sleep 1
fi

# RabbitMQ
rabbit_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if ! rabbit_up; then
  echo "services.sh: starting RabbitMQ"
  as_root rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 120); do rabbit_up && break; sleep 0.5; done
  rabbit_up || { echo "services.sh: RabbitMQ did not start" >&2; exit 1; }
  as_root rabbitmqctl -q await_startup >/dev/null 2>&1 || true
fi
echo "services.sh: PostgreSQL and RabbitMQ are up"
