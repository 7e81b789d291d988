#!/usr/bin/env bash
# SentryK8s on Minikube in one command, the way a newcomer runs it: starts
# Minikube when it is not running, builds the image inside Minikube (it is
# never pulled from a registry), installs or upgrades the chart with
# helm/sentryk8s/examples/values-minikube.yaml, waits for the migrate hook and
# the rollout, and prints what to open.
#
#   scripts/minikube.sh            # start, build, install; run it again after a code change
#   scripts/minikube.sh --delete   # remove the release and its volumes (Minikube keeps running)
#
# Minikube is started with 2 CPUs and 4096 MiB of memory: the bundled
# PostgreSQL and RabbitMQ, two schedulers and one to three workers request
# 0.35-0.45 CPU and under 0.7 GiB, Kubernetes' own pods 0.75 CPU, and the
# memory limits add up to 2.25 GiB (values-minikube.yaml has the figures). SENTRYK8S_MINIKUBE_CPUS, SENTRYK8S_MINIKUBE_MEMORY (MiB) and
# SENTRYK8S_MINIKUBE_PROFILE change them; a Minikube that already runs is
# used as it is.
#
# Idempotent: the image tag is a hash of the sources the image is built from
# (dev-<hash>), so a second run without changes builds nothing and rolls no
# pod (the migrate hook runs again and finds nothing to do), while a code
# change builds a new image and rolls the pods over to it. Every command goes to the profile's own context
# (--context/--kube-context), never to whatever kubectl points at.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${SENTRYK8S_MINIKUBE_PROFILE:-minikube}
cpus=${SENTRYK8S_MINIKUBE_CPUS:-2}
memory=${SENTRYK8S_MINIKUBE_MEMORY:-4096}
release=sentryk8s
namespace=sentryk8s
chart=./helm/sentryk8s
values=helm/sentryk8s/examples/values-minikube.yaml
image=sentryk8s

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
}

case "${1:-}" in
  "") action=install ;;
  --delete) action=delete ;;
  -h | --help) usage; exit 0 ;;
  *) echo "minikube.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
esac
[ $# -le 1 ] || { echo "minikube.sh: one argument at most" >&2; usage >&2; exit 2; }

say() { printf 'minikube.sh: %s\n' "$*" >&2; }
# Prints a command, then runs it: the output shows what to type by hand.
run() { printf '+ %s\n' "$*" >&2; "$@"; }

# The three tools, each named with where to get it; nothing is changed unless all are there.
missing=0
need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    say "$1 is missing: install it from $2"
    missing=1
  fi
}
need minikube https://minikube.sigs.k8s.io/docs/start/
need kubectl https://kubernetes.io/docs/tasks/tools/
need helm https://helm.sh/docs/intro/install/
if [ "$missing" -ne 0 ]; then
  say "nothing was changed: run it again once they are on PATH"
  exit 1
fi

running() { minikube -p "$profile" status >/dev/null 2>&1; }

if [ "$action" = delete ]; then
  if ! running; then
    say "Minikube (profile $profile) is not running: there is no release to remove"
    exit 0
  fi
  if helm --kube-context "$profile" -n "$namespace" status "$release" >/dev/null 2>&1; then
    run helm --kube-context "$profile" -n "$namespace" uninstall "$release" --wait
  else
    say "no release $release in namespace $namespace"
  fi
  # The StatefulSets' volumes outlive `helm uninstall`: the next install starts empty.
  run kubectl --context "$profile" -n "$namespace" delete pvc \
    -l "app.kubernetes.io/instance=$release" --ignore-not-found
  say "removed. Minikube keeps running: 'minikube -p $profile stop' or 'minikube -p $profile delete'"
  exit 0
fi

# 1. Minikube.
if running; then
  say "Minikube (profile $profile) is running: used as it is (it needs $cpus CPUs and $memory MiB)"
else
  run minikube -p "$profile" start --cpus="$cpus" --memory="$memory"
fi

# 2. The image, built inside Minikube, tagged with a hash of what it is built from.
# (macOS has shasum, not sha256sum.)
sha256() { if command -v sha256sum >/dev/null 2>&1; then sha256sum "$@"; else shasum -a 256 "$@"; fi; }
sources_hash() {
  find Dockerfile .dockerignore Cargo.toml Cargo.lock src migrations -type f -print0 |
    LC_ALL=C sort -z | while IFS= read -r -d '' file; do sha256 "$file"; done | sha256 | cut -c1-12
}
tag="dev-$(sources_hash)"
images=$(minikube -p "$profile" image ls 2>/dev/null || true)
case $'\n'"$images"$'\n' in
  *$'\n'"$image:$tag"$'\n'* | */"$image:$tag"$'\n'*)
    say "image $image:$tag is already in Minikube (sources unchanged): not rebuilt" ;;
  *)
    run minikube -p "$profile" image build -t "$image:$tag" . ;;
esac

# Where to look when the install or the rollout fails.
stuck() {
  say "$1 failed. What the pods are doing:"
  say "  kubectl --context $profile -n $namespace get pods"
  say "  kubectl --context $profile -n $namespace describe pods"
  say "  kubectl --context $profile -n $namespace logs <pod> --all-containers"
  exit 1
}

# 3. Install or upgrade. Helm waits for the pods and then for the migrate hook
# Job (schema migration and the example checks), and fails if it fails.
run helm --kube-context "$profile" -n "$namespace" upgrade --install "$release" "$chart" \
  --create-namespace -f "$values" --set "image.tag=$tag" --wait --timeout 15m ||
  stuck "helm upgrade --install"

# 4. The rollout of every workload, done.
for workload in statefulset/$release-postgresql statefulset/$release-rabbitmq \
  statefulset/$release-scheduler deployment/$release-worker deployment/$release-web; do
  run kubectl --context "$profile" -n "$namespace" rollout status "$workload" --timeout 5m ||
    stuck "the rollout of $workload"
done

# The web role (REST API now, status pages next): values-minikube.yaml makes
# its API Service a NodePort, which `minikube service` opens from the laptop.
# Found by label, so a values change (another type, web.enabled=false) shows
# here instead of a command that cannot work.
web=$(kubectl --context "$profile" -n "$namespace" get service \
  -l "app.kubernetes.io/instance=$release,app.kubernetes.io/component=web" \
  -o 'jsonpath={range .items[?(@.spec.type=="NodePort")]}{.metadata.name}{"\n"}{end}' 2>/dev/null || true)
web=${web%%$'\n'*}
if [ -n "$web" ]; then
  web_api="minikube -p $profile service -n $namespace ${web#service/}"
else
  web_api="none: no NodePort Service labelled app.kubernetes.io/component=web (see web.service.type)"
fi

cat <<EOF

SentryK8s is running on Minikube: release $release, namespace $namespace, image $image:$tag.

  What is up or down:
    kubectl --context $profile -n $namespace exec $release-scheduler-0 -- /usr/local/bin/sentryk8s status
  The REST API (/api/v1/checks), from the laptop:
    $web_api
  A token for it (sent as Authorization: Bearer <token>):
    kubectl --context $profile -n $namespace exec $release-scheduler-0 -- /usr/local/bin/sentryk8s tokens create --name me --scope read
  Watch the worker autoscaler (its target shows <unknown> until prometheus-adapter
  serves the queue backlog: helm/sentryk8s/README.md, "Autoscaling the workers"):
    kubectl --context $profile -n $namespace get hpa $release-worker --watch
  Watch the pods:
    kubectl --context $profile -n $namespace get pods --watch

After a code change, run scripts/minikube.sh again: it rebuilds the image and upgrades.
Remove the release: scripts/minikube.sh --delete
EOF
