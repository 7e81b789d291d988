"""Rendering the chart for the tests: `helm template` with a value set, parsed into objects.

Run through helm/tests/run.sh, which installs helm and exports HELM (and the
other tool paths) before starting the tests.
"""

import os
import pathlib
import subprocess

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "sentryk8s"
VALUES_DIR = ROOT / "helm" / "tests" / "values"
HELM = os.environ.get("HELM", "helm")

# The value sets every structural test runs over: None is the chart's
# defaults, then the test sets, the production and Minikube examples and the
# Argo CD environments (paths relative to the repository unless in VALUES_DIR).
MINIKUBE_VALUES = "helm/sentryk8s/examples/values-minikube.yaml"
VALUE_SETS = ([None] + sorted(p.name for p in VALUES_DIR.glob("*.yaml"))
              + ["helm/sentryk8s/examples/values-production.yaml",
                 MINIKUBE_VALUES,
                 "argocd/environments/staging/values.yaml",
                 "argocd/environments/production/values.yaml"])


def value_path(value_set):
    """The file of a value set: a name in helm/tests/values/, or a path from the repository root."""
    local = VALUES_DIR / value_set
    return local if local.is_file() else ROOT / value_set

# Kinds that come from CRDs: kubernetes-validate has no schema for them.
# HTTPRoute is Gateway API's: a CRD too, though a standard one.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject", "TriggerAuthentication", "HTTPRoute"}

# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the
# newest whose schemas kubernetes-validate ships.
KUBE_VERSIONS = ["1.25.0", "1.37.0"]


def helm(*args, check=True):
    """Runs helm; returns the CompletedProcess (stdout and stderr as text)."""
    result = subprocess.run([HELM, *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def values_args(value_set=None, extra=()):
    args = []
    if value_set:
        args += ["-f", str(value_path(value_set))]
    for item in extra:
        args += ["--set", item]
    return args


def render_text(value_set=None, extra=(), release="sk", namespace="monitoring-test"):
    return helm("template", release, str(CHART), "--namespace", namespace,
                *values_args(value_set, extra)).stdout


def render(value_set=None, extra=(), release="sk", namespace="monitoring-test"):
    """The rendered objects (hooks included), as dicts."""
    text = render_text(value_set, extra, release, namespace)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def one(objects, kind, component=None):
    """The single object of a kind (and component label); fails when there are none or several."""
    found = [o for o in by_kind(objects, kind)
             if component is None or labels(o).get("app.kubernetes.io/component") == component]
    if len(found) != 1:
        names = [o["metadata"]["name"] for o in found]
        raise AssertionError(f"expected one {kind} (component {component}), found {names}")
    return found[0]


def labels(obj):
    return obj["metadata"].get("labels") or {}


def annotations(obj):
    return obj["metadata"].get("annotations") or {}


def pod_spec(obj):
    """The pod spec of a workload (Deployment, StatefulSet, Job), or None."""
    if obj["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
        return obj["spec"]["template"]["spec"]
    return None


def containers(spec):
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def env_of(container):
    return {e["name"]: e for e in container.get("env") or []}
