#!/usr/bin/env bash
# One command per benchmark (docs/performance.md):
#
#   bench/run.sh probe       # worker vs blackbox_exporter vs check_http   (~1 min)
#   bench/run.sh capacity    # end-to-end capacity steps                   (~7 min)
#   bench/run.sh scheduler   # scheduler scale at 100k and 1M, takeover    (~5 min)
#   bench/run.sh autoscale   # HPA on worker CPU vs RabbitMQ backlog       (~9 min)
#   bench/run.sh history     # history reads at 10,000 checks              (~3 min)
#   bench/run.sh web         # REST API with 10,000 checks: list, cached reads, PUTs (~2 min)
#   bench/run.sh status-page # the status page of 200 checks, 90 days: p99, page weight (~1 min)
#   bench/run.sh queue-ceiling # one quorum queue: confirmed/acked msgs/s, beam.smp CPU per message (~1.5 min)
#
# Installs what the benchmark needs (Debian packages: nginx-light,
# prometheus-blackbox-exporter, monitoring-plugins-basic), starts
# PostgreSQL and RabbitMQ (scripts/services.sh), enables RabbitMQ's
# Prometheus endpoint (:15692) for the autoscaling experiment, builds the
# release binary and runs the bench under a shared lock on the services
# (so no test restarts them meanwhile). All traffic stays on 127.0.0.1.
# Reports, CSV and SVG plots land in bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -eq 1 ] || usage
case "$1" in
  probe) bench=worker_probe; packages=(nginx-light prometheus-blackbox-exporter monitoring-plugins-basic) ;;
  capacity) bench=capacity; packages=(nginx-light) ;;
  scheduler) bench=scheduler_scale; packages=() ;;
  autoscale) bench=autoscale; packages=() ;;
  history) bench=history; packages=() ;;
  web) bench=web; packages=() ;;
  status-page) bench=status_page; packages=() ;;
  queue-ceiling) bench=queue_ceiling; packages=() ;;
  *) usage ;;
esac

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "bench/run.sh: need root (or sudo) to run: $*" >&2; exit 1
  fi
}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench/run.sh: installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
scripts/services.sh
if [ "$bench" = autoscale ]; then
  if ! (exec 3<>/dev/tcp/127.0.0.1/15692) 2>/dev/null; then
    echo "bench/run.sh: enabling rabbitmq_prometheus (RabbitMQ's own metrics on :15692)"
    as_root rabbitmq-plugins enable rabbitmq_prometheus >/dev/null
    for _ in $(seq 1 60); do (exec 3<>/dev/tcp/127.0.0.1/15692) 2>/dev/null && break; sleep 0.5; done
  fi
fi

# Build outside the lock (release profile, the benches and the sentryk8s binary).
cargo bench --quiet --no-run --bench "$bench"
echo "bench/run.sh: load average $(cut -d' ' -f1-3 /proc/loadavg); running cargo bench --bench $bench"
# Shared lock: tests that restart PostgreSQL or RabbitMQ take it exclusively.
exec flock -s /tmp/sentryk8s-services.lock cargo bench --quiet --bench "$bench"
