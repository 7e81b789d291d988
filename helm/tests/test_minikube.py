"""Minikube in one command: helm/sentryk8s/examples/values-minikube.yaml and scripts/minikube.sh.

The values render, lint and validate, use the locally built image without
pulling it, fit the Minikube the script starts, and their example checks are
accepted by the real binary against the real PostgreSQL. The script passes
ShellCheck and is run against stand-in minikube, kubectl and helm that record
their arguments: nothing else is on its PATH, so no real cluster is touched.
"""

import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.parse
import uuid

import yaml

from chart import (CHART, CRD_KINDS, MINIKUBE_VALUES, ROOT, by_kind, containers, helm, labels,
                   one, pod_spec, render, render_text, value_path)

SCRIPT = ROOT / "scripts" / "minikube.sh"
# What the script installs: release and namespace are fixed (the example checks name its Services).
RELEASE = NAMESPACE = "sentryk8s"
SENTRYK8S_COMPONENTS = {"scheduler", "worker", "web", "migrate"}
# Kubernetes releases Minikube users run today, besides the chart's oldest and newest (test_chart.py).
MINIKUBE_KUBE_VERSIONS = ["1.29.0", "1.33.0"]
# What Minikube's own pods request (etcd, apiserver, controller-manager, scheduler, coredns).
KUBE_SYSTEM_CPU_MILLI = 750


def render_minikube(extra=()):
    return render(MINIKUBE_VALUES, extra, release=RELEASE, namespace=NAMESPACE)


def cpu_milli(quantity):
    return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)


def mebibytes(quantity):
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    return float(quantity[:-2]) * units[quantity[-2:]]


class MinikubeValues(unittest.TestCase):
    def test_lint_strict_and_validate_on_kubernetes_1_29_and_1_33(self):
        result = helm("lint", "--strict", str(CHART), "-f", str(value_path(MINIKUBE_VALUES)), check=False)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("0 chart(s) failed", result.stdout)
        core = [o for o in render_minikube() if o["kind"] not in CRD_KINDS]
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as rendered:
            rendered.write(render_text(MINIKUBE_VALUES, release=RELEASE, namespace=NAMESPACE))
            rendered.flush()
            for version in MINIKUBE_KUBE_VERSIONS:
                with self.subTest(kubernetes=version):
                    result = subprocess.run(["kubernetes-validate", "--strict", "-k", version, rendered.name],
                                            capture_output=True, text=True)
                    out = result.stdout + result.stderr
                    self.assertEqual(result.returncode, 0, out)
                    self.assertNotIn("ERROR", out)
                    passed = [line for line in out.splitlines() if line.startswith("INFO") and " passed " in line]
                    self.assertEqual(len(passed), len(core), out)

    def test_sentryk8s_workloads_run_the_local_image_never_pulled(self):
        # The values' own tag, and the tag the script sets (a hash of the sources).
        for extra, image in (((), "sentryk8s:dev"), (("image.tag=dev-0123456789ab",), "sentryk8s:dev-0123456789ab")):
            objects = render_minikube(extra)
            seen = set()
            for obj in objects:
                spec = pod_spec(obj)
                if spec is None:
                    continue
                component = labels(obj)["app.kubernetes.io/component"]
                for c in containers(spec):
                    with self.subTest(extra=extra, obj=obj["metadata"]["name"], container=c["name"]):
                        if component in SENTRYK8S_COMPONENTS:
                            self.assertEqual((c["image"], c["imagePullPolicy"]), (image, "Never"))
                            seen.add(component)
                        else:
                            # The bundled services are the official images, pulled as usual.
                            self.assertTrue(c["image"].startswith("docker.io/library/"), c["image"])
                            self.assertEqual(c["imagePullPolicy"], "IfNotPresent")
            self.assertEqual(seen, SENTRYK8S_COMPONENTS)
            # Nothing is pulled from a private registry.
            for obj in objects:
                spec = pod_spec(obj)
                if spec is not None:
                    self.assertNotIn("imagePullSecrets", spec)

    def test_requests_and_limits_fit_the_minikube_the_script_starts(self):
        script = SCRIPT.read_text()
        cpus = int(re.search(r"^cpus=\$\{SENTRYK8S_MINIKUBE_CPUS:-(\d+)\}$", script, re.M).group(1))
        memory = int(re.search(r"^memory=\$\{SENTRYK8S_MINIKUBE_MEMORY:-(\d+)\}$", script, re.M).group(1))
        self.assertEqual((cpus, memory), (2, 4096))
        objects = render_minikube()
        max_workers = one(objects, "HorizontalPodAutoscaler", "worker")["spec"]["maxReplicas"]
        self.assertLessEqual(max_workers, 3)
        # Each Deployment at its HPA's maximum.
        most = {hpa["spec"]["scaleTargetRef"]["name"]: hpa["spec"]["maxReplicas"]
                for hpa in by_kind(objects, "HorizontalPodAutoscaler")}
        self.assertEqual(set(most), {o["metadata"]["name"] for o in by_kind(objects, "Deployment")})
        cpu = mem_requests = mem_limits = 0
        for obj in objects:
            spec = pod_spec(obj)
            if spec is None:
                continue
            replicas = most[obj["metadata"]["name"]] if obj["kind"] == "Deployment" else obj["spec"].get("replicas", 1)
            for c in spec["containers"]:  # init containers finish before the containers start
                resources = c["resources"]
                cpu += replicas * cpu_milli(resources["requests"]["cpu"])
                mem_requests += replicas * mebibytes(resources["requests"]["memory"])
                mem_limits += replicas * mebibytes(resources["limits"]["memory"])
        # Room left for Kubernetes' own pods, and memory limits well within the VM.
        self.assertLessEqual(cpu + KUBE_SYSTEM_CPU_MILLI, cpus * 1000, cpu)
        self.assertLessEqual(mem_requests, 1024, mem_requests)
        self.assertLessEqual(mem_limits, 0.75 * memory, mem_limits)
        # Small, and smaller than the chart's defaults.
        defaults = render(None)
        for kind, component in (("StatefulSet", "scheduler"), ("Deployment", "worker"), ("Deployment", "web"),
                                ("StatefulSet", "postgresql"), ("StatefulSet", "rabbitmq")):
            small = pod_spec(one(objects, kind, component))["containers"][0]["resources"]
            default = pod_spec(one(defaults, kind, component))["containers"][0]["resources"]
            self.assertLess(mebibytes(small["limits"]["memory"]), mebibytes(default["limits"]["memory"]), component)
        # RabbitMQ blocks publishers before its container reaches the memory limit.
        rabbitmq = yaml.safe_load(value_path(MINIKUBE_VALUES).read_text())["rabbitmq"]
        watermark = int(re.fullmatch(r"(\d+)MB", rabbitmq["memoryHighWatermark"]).group(1))
        self.assertLess(watermark * 1e6 / 2**20, 0.7 * mebibytes(rabbitmq["resources"]["limits"]["memory"]))

    def test_example_checks_name_the_services_the_chart_renders(self):
        objects = render_minikube()
        services = {s["metadata"]["name"] for s in by_kind(objects, "Service")}
        schedulers = one(objects, "StatefulSet", "scheduler")
        checks = yaml.safe_load(value_path(MINIKUBE_VALUES).read_text())["checks"]
        self.assertGreaterEqual(len(checks), 3)
        in_cluster = 0
        for check in checks:
            host = urllib.parse.urlsplit(check["url"]).hostname
            suffix = f".{NAMESPACE}.svc.cluster.local"
            if not host.endswith(suffix):
                continue
            in_cluster += 1
            with self.subTest(check=check["name"]):
                parts = host[:-len(suffix)].split(".")
                self.assertIn(parts[-1], services)
                if len(parts) == 2:  # <pod>.<headless service>: a scheduler pod that exists
                    self.assertEqual(parts[1], schedulers["spec"]["serviceName"])
                    ordinal = int(parts[0].rsplit("-", 1)[1])
                    self.assertLess(ordinal, schedulers["spec"]["replicas"])
        self.assertGreaterEqual(in_cluster, 2)

    def test_example_checks_are_accepted_by_the_binary(self):
        """The migrate hook's checks file and config, applied with --dry-run by the real binary
        to a freshly migrated database of its own (created here, dropped at the end)."""
        binary = os.environ.get("SENTRYK8S_BIN") or str(ROOT / "target" / "debug" / "sentryk8s")
        objects = render_minikube()
        job = one(objects, "Job", "migrate")
        self.assertEqual(pod_spec(job)["containers"][0]["args"][:2], ["checks", "apply"])
        hook = next(o for o in by_kind(objects, "ConfigMap") if o["metadata"]["name"] == job["metadata"]["name"])
        database = f"helm_minikube_{uuid.uuid4().hex[:12]}"
        psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"]
        subprocess.run(psql + [f"CREATE DATABASE {database}"], check=True, capture_output=True)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                (pathlib.Path(tmp) / "config.toml").write_text(hook["data"]["config.toml"])
                checks_dir = pathlib.Path(tmp) / "checks"
                checks_dir.mkdir()
                (checks_dir / "checks.yaml").write_text(hook["data"]["checks.yaml"])
                env = {"PATH": os.environ.get("PATH", ""), "SENTRYK8S_CONFIG": f"{tmp}/config.toml",
                       "SENTRYK8S_DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
                       "SENTRYK8S_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/%2f"}
                migrate = subprocess.run([binary, "migrate"], env=env, capture_output=True, text=True)
                self.assertEqual(migrate.returncode, 0, migrate.stderr)
                result = subprocess.run([binary, "checks", "apply", "-f", str(checks_dir), "--prune", "--dry-run"],
                                        env=env, capture_output=True, text=True)
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
                names = [c["name"] for c in yaml.safe_load(value_path(MINIKUBE_VALUES).read_text())["checks"]]
                for name in names:
                    self.assertRegex(result.stdout, rf"(?m)^\+ {re.escape(name)} create$")
                self.assertIn(f"would be {len(names)} create", result.stdout)
        finally:
            subprocess.run(psql + [f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"], check=True,
                           capture_output=True)

    def test_volumes_carry_the_label_the_script_deletes_them_by(self):
        for sts in by_kind(render_minikube(), "StatefulSet"):
            for claim in sts["spec"].get("volumeClaimTemplates") or []:
                self.assertEqual(claim["metadata"]["labels"]["app.kubernetes.io/instance"], RELEASE)


# A stand-in for minikube, kubectl and helm (one file, told apart by the name it is called
# by): it appends [tool, args…] and its working directory to calls.jsonl and keeps just
# enough state (Minikube running, images built, release installed) to answer like the real
# tool. STUB_FAIL="helm upgrade" makes that command fail.
STUB = r'''
import json, os, pathlib, sys

tool, args = os.path.basename(sys.argv[0]), sys.argv[1:]
state = pathlib.Path(os.environ["STUB_STATE"])
with open(state / "calls.jsonl", "a") as log:
    log.write(json.dumps({"argv": [tool] + args, "cwd": os.getcwd()}) + "\n")

valued = {"minikube": {"-p", "--profile"}, "kubectl": {"--context", "-n", "--namespace"},
          "helm": {"--kube-context", "-n", "--namespace"}}[tool]
words, skip = [], False
for arg in args:
    if skip:
        skip = False
    elif arg in valued:
        skip = True
    elif not arg.startswith("-"):
        words.append(arg)
command = " ".join([tool] + words[:2])
if os.environ.get("STUB_FAIL") and command.startswith(os.environ["STUB_FAIL"]):
    print(f"Error: {command} failed (stand-in told to fail)", file=sys.stderr)
    sys.exit(1)

running, images, release = state / "running", state / "images", state / "release"
if command == "minikube status":
    if not running.exists():
        print("host: Stopped")
        sys.exit(7)
    print("host: Running")
elif command == "minikube start":
    running.touch()
elif command == "minikube image ls":
    print(images.read_text() if images.exists() else "", end="")
elif command == "minikube image build":
    tag = args[args.index("-t") + 1]
    with open(images, "a") as f:
        f.write(f"docker.io/library/{tag}\n")
elif command.startswith("helm status"):
    if not release.exists():
        print("Error: release: not found", file=sys.stderr)
        sys.exit(1)
elif command.startswith("helm upgrade"):
    release.touch()
elif command.startswith("helm uninstall"):
    release.unlink()
elif command.startswith("kubectl get service"):
    web = state / "web-service"
    print(web.read_text() if web.exists() else "", end="")
'''

# The only other programs the script (and the stand-ins' shebang) may use.
SYSTEM_TOOLS = ["bash", "env", "cat", "sed", "find", "sort", "sha256sum", "cut", "dirname"]
TOOLS = ("minikube", "kubectl", "helm")


class Sandbox:
    """A PATH of the stand-ins and a few system tools, and a state directory."""

    def __init__(self, tools=TOOLS):
        self.tmp = tempfile.TemporaryDirectory()
        base = pathlib.Path(self.tmp.name)
        self.state, self.bin = base / "state", base / "bin"
        self.state.mkdir()
        self.bin.mkdir()
        stub = base / "stub.py"
        stub.write_text(f"#!{sys.executable}\n{STUB}")
        stub.chmod(0o755)
        for tool in tools:
            (self.bin / tool).symlink_to(stub)
        for name in SYSTEM_TOOLS:
            (self.bin / name).symlink_to(shutil.which(name))

    def run(self, *args, script=SCRIPT, env=None):
        self.state.joinpath("calls.jsonl").write_text("")
        environment = {"PATH": str(self.bin), "STUB_STATE": str(self.state), "HOME": self.tmp.name}
        environment.update(env or {})
        result = subprocess.run([str(script), *args], env=environment, capture_output=True, text=True,
                                cwd=self.tmp.name, timeout=60)
        calls = [json.loads(line) for line in self.state.joinpath("calls.jsonl").read_text().splitlines()]
        return result, calls

    def close(self):
        self.tmp.cleanup()


def sources_tag(root):
    """dev-<hash>, computed here the way the script documents it: sha256 over the sorted
    `sha256sum` lines of the files the image is built from."""
    files = []
    for top in ("Dockerfile", ".dockerignore", "Cargo.toml", "Cargo.lock", "src", "migrations"):
        path = root / top
        files += [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    names = sorted(str(p.relative_to(root)) for p in files)
    lines = "".join(f"{hashlib.sha256((root / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
    return "dev-" + hashlib.sha256(lines.encode()).hexdigest()[:12]


def one_service(objects, name):
    [service] = [s for s in by_kind(objects, "Service") if s["metadata"]["name"] == name]
    return service


def commands(calls):
    return [c["argv"] for c in calls]


def index_of(calls, predicate, what):
    found = [i for i, c in enumerate(commands(calls)) if predicate(c)]
    if not found:
        raise AssertionError(f"no call {what} in {commands(calls)}")
    return found[0]


def is_start(argv):
    return argv[0] == "minikube" and "start" in argv


def is_build(argv):
    return argv[0] == "minikube" and argv[1:] and "build" in argv and "image" in argv


def is_upgrade(argv):
    return argv[0] == "helm" and "upgrade" in argv and "--install" in argv


def is_rollout(argv):
    return argv[0] == "kubectl" and "rollout" in argv


def flag(argv, name):
    return argv[argv.index(name) + 1]


class MinikubeScript(unittest.TestCase):
    def setUp(self):
        self.sandbox = Sandbox()

    def tearDown(self):
        self.sandbox.close()

    def test_passes_shellcheck(self):
        shellcheck = os.environ.get("SHELLCHECK", "shellcheck")
        for script in (SCRIPT, ROOT / "scripts" / "check_versions.sh", ROOT / "helm" / "tests" / "run.sh"):
            with self.subTest(script=script.name):
                self.assertTrue(os.access(script, os.X_OK), script)
                result = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_first_run_starts_builds_installs_and_waits_in_that_order(self):
        result, calls = self.sandbox.run()
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        argv = commands(calls)
        start = index_of(calls, is_start, "minikube start")
        build = index_of(calls, is_build, "minikube image build")
        upgrade = index_of(calls, is_upgrade, "helm upgrade --install")
        rollout = index_of(calls, is_rollout, "kubectl rollout status")
        self.assertLess(start, build)
        self.assertLess(build, upgrade)
        self.assertLess(upgrade, rollout)
        # Minikube: sized for the bundled services, on the profile's own context.
        self.assertEqual(argv[start], ["minikube", "-p", "minikube", "start", "--cpus=2", "--memory=4096"])
        # The image: built inside Minikube from the repository, tagged with the sources' hash.
        tag = sources_tag(ROOT)
        self.assertEqual(argv[build], ["minikube", "-p", "minikube", "image", "build", "-t", f"sentryk8s:{tag}", "."])
        self.assertEqual(pathlib.Path(calls[build]["cwd"]), ROOT)
        # The install: the minikube values and that tag, waiting for the pods and the migrate hook.
        helm_argv = argv[upgrade]
        self.assertEqual(helm_argv[:8], ["helm", "--kube-context", "minikube", "-n", NAMESPACE, "upgrade",
                                         "--install", RELEASE])
        self.assertEqual((ROOT / helm_argv[8]).resolve(), CHART)
        self.assertEqual(flag(helm_argv, "-f"), MINIKUBE_VALUES)
        self.assertTrue((pathlib.Path(calls[upgrade]["cwd"]) / flag(helm_argv, "-f")).is_file())
        self.assertEqual(flag(helm_argv, "--set"), f"image.tag={tag}")
        for word in ("--create-namespace", "--wait", "--timeout"):
            self.assertIn(word, helm_argv)
        # The rollout of every workload the chart renders with those values, after the install.
        rollouts = [a for a in argv if is_rollout(a)]
        waited = {a[a.index("status") + 1] for a in rollouts}
        objects = render_minikube()
        workloads = {f"{o['kind'].lower()}/{o['metadata']['name']}" for o in objects
                     if o["kind"] in ("StatefulSet", "Deployment")}
        self.assertEqual(waited, workloads)
        for a in rollouts:
            self.assertEqual(a[:5], ["kubectl", "--context", "minikube", "-n", NAMESPACE])
        # What to open: names that exist in that render.
        out = result.stdout
        self.assertIn(f"image sentryk8s:{tag}", out)
        self.assertIn("kubectl --context minikube -n sentryk8s exec sentryk8s-scheduler-0 -- "
                      "/usr/local/bin/sentryk8s status", out)
        self.assertEqual(one(objects, "StatefulSet", "scheduler")["metadata"]["name"], "sentryk8s-scheduler")
        self.assertIn("kubectl --context minikube -n sentryk8s get hpa sentryk8s-worker --watch", out)
        self.assertEqual(one(objects, "HorizontalPodAutoscaler", "worker")["metadata"]["name"], "sentryk8s-worker")
        # The stand-in kubectl knows no web Service: the script says so instead of printing a command.
        self.assertIn("The REST API (/api/v1/checks), from the laptop:\n    none: no NodePort Service labelled "
                      "app.kubernetes.io/component=web", out)
        self.assertIn("kubectl --context minikube -n sentryk8s exec sentryk8s-scheduler-0 -- "
                      "/usr/local/bin/sentryk8s tokens create --name me --scope read", out)
        self.assertIn("scripts/minikube.sh --delete", out)

    def test_second_run_starts_and_builds_nothing_and_upgrades_the_same(self):
        first, first_calls = self.sandbox.run()
        self.assertEqual(first.returncode, 0, first.stderr)
        second, calls = self.sandbox.run()
        self.assertEqual(second.returncode, 0, second.stderr)
        argv = commands(calls)
        self.assertFalse([a for a in argv if is_start(a) or is_build(a)], argv)
        self.assertIn("Minikube (profile minikube) is running: used as it is", second.stderr)
        self.assertIn("already in Minikube (sources unchanged): not rebuilt", second.stderr)
        # The same upgrade (a no-op for Kubernetes) and the same waits, and the same summary.
        self.assertEqual([a for a in argv if is_upgrade(a)], [a for a in commands(first_calls) if is_upgrade(a)])
        self.assertEqual(len([a for a in argv if is_rollout(a)]), 5)
        self.assertEqual(second.stdout, first.stdout)

    def test_a_code_change_builds_a_new_image_and_upgrades_to_it(self):
        with tempfile.TemporaryDirectory() as tmp:
            repo = pathlib.Path(tmp)
            for name in ("scripts/minikube.sh", "Dockerfile", ".dockerignore", "Cargo.toml", "Cargo.lock",
                         "helm/sentryk8s/examples/values-minikube.yaml"):
                (repo / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, repo / name)
            (repo / "src").mkdir()
            (repo / "src" / "main.rs").write_text("fn main() {}\n")
            (repo / "migrations").mkdir()
            (repo / "migrations" / "0001_init.sql").write_text("SELECT 1;\n")
            script = repo / "scripts" / "minikube.sh"

            def built_and_installed():
                result, calls = self.sandbox.run(script=script)
                self.assertEqual(result.returncode, 0, result.stderr)
                builds = [a for a in commands(calls) if is_build(a)]
                upgrade = next(a for a in commands(calls) if is_upgrade(a))
                return [flag(b, "-t") for b in builds], flag(upgrade, "--set")

            old = sources_tag(repo)
            self.assertEqual(built_and_installed(), ([f"sentryk8s:{old}"], f"image.tag={old}"))
            (repo / "src" / "main.rs").write_text('fn main() { println!("changed"); }\n')
            new = sources_tag(repo)
            self.assertNotEqual(new, old)
            self.assertEqual(built_and_installed(), ([f"sentryk8s:{new}"], f"image.tag={new}"))
            self.assertEqual(built_and_installed(), ([], f"image.tag={new}"))

    def test_a_missing_tool_is_named_with_its_install_link_and_nothing_runs(self):
        links = {"minikube": "https://minikube.sigs.k8s.io/docs/start/",
                 "kubectl": "https://kubernetes.io/docs/tasks/tools/",
                 "helm": "https://helm.sh/docs/intro/install/"}
        for missing in (("kubectl",), ("minikube",), ("helm",), TOOLS):
            with self.subTest(missing=missing):
                sandbox = Sandbox(tools=[t for t in TOOLS if t not in missing])
                try:
                    for args in ((), ("--delete",)):
                        result, calls = sandbox.run(*args)
                        self.assertNotEqual(result.returncode, 0)
                        self.assertEqual(calls, [])
                        for tool in TOOLS:
                            line = f"minikube.sh: {tool} is missing: install it from {links[tool]}"
                            if tool in missing:
                                self.assertIn(line, result.stderr)
                            else:
                                self.assertNotIn(line, result.stderr)
                        self.assertIn("nothing was changed", result.stderr)
                        self.assertNotIn("SentryK8s is running", result.stdout)
                finally:
                    sandbox.close()

    def test_a_failed_install_stops_before_the_rollout_with_its_error(self):
        result, calls = self.sandbox.run(env={"STUB_FAIL": "helm upgrade"})
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("Error: helm upgrade sentryk8s failed (stand-in told to fail)", result.stderr)
        self.assertIn("minikube.sh: helm upgrade --install failed. What the pods are doing:", result.stderr)
        self.assertIn("kubectl --context minikube -n sentryk8s get pods", result.stderr)
        self.assertFalse([a for a in commands(calls) if is_rollout(a)])
        self.assertNotIn("SentryK8s is running", result.stdout)
        result, calls = self.sandbox.run(env={"STUB_FAIL": "kubectl rollout"})
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("minikube.sh: the rollout of statefulset/sentryk8s-postgresql failed.", result.stderr)
        self.assertEqual(len([a for a in commands(calls) if is_rollout(a)]), 1)
        self.assertNotIn("SentryK8s is running", result.stdout)

    def test_delete_removes_the_release_and_its_volumes_only(self):
        installed, _ = self.sandbox.run()
        self.assertEqual(installed.returncode, 0, installed.stderr)
        for attempt in ("release there", "already gone"):
            with self.subTest(attempt=attempt):
                result, calls = self.sandbox.run("--delete")
                self.assertEqual(result.returncode, 0, result.stderr)
                argv = commands(calls)
                self.assertFalse([a for a in argv if is_start(a) or is_build(a) or is_upgrade(a)], argv)
                uninstall = [a for a in argv if "uninstall" in a]
                if attempt == "release there":
                    self.assertEqual(uninstall, [["helm", "--kube-context", "minikube", "-n", NAMESPACE, "uninstall",
                                                  RELEASE, "--wait"]])
                else:
                    self.assertEqual(uninstall, [])
                    self.assertIn(f"no release {RELEASE} in namespace {NAMESPACE}", result.stderr)
                self.assertIn(["kubectl", "--context", "minikube", "-n", NAMESPACE, "delete", "pvc",
                               "-l", f"app.kubernetes.io/instance={RELEASE}", "--ignore-not-found"], argv)
        # With Minikube stopped there is nothing to remove, and nothing is started.
        (self.sandbox.state / "running").unlink()
        result, calls = self.sandbox.run("--delete")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual([a[0] for a in commands(calls)], ["minikube"])
        self.assertIn("is not running: there is no release to remove", result.stderr)

    def test_the_profile_and_size_are_the_users_and_every_call_names_the_profile(self):
        result, calls = self.sandbox.run(env={"SENTRYK8S_MINIKUBE_PROFILE": "sk-dev", "SENTRYK8S_MINIKUBE_CPUS": "4",
                                              "SENTRYK8S_MINIKUBE_MEMORY": "6144"})
        self.assertEqual(result.returncode, 0, result.stderr)
        argv = commands(calls)
        self.assertIn(["minikube", "-p", "sk-dev", "start", "--cpus=4", "--memory=6144"], argv)
        for a in argv:
            context = {"minikube": "-p", "kubectl": "--context", "helm": "--kube-context"}[a[0]]
            self.assertEqual(a[1:3], [context, "sk-dev"], a)
        self.assertIn("kubectl --context sk-dev -n sentryk8s get hpa", result.stdout)

    def test_the_web_api_line_opens_the_nodeport_service_the_minikube_values_render(self):
        # What the real kubectl's jsonpath prints for the Minikube render: the NodePort Service's name.
        objects = render_minikube()
        nodeports = [s["metadata"]["name"] for s in by_kind(objects, "Service")
                     if labels(s).get("app.kubernetes.io/component") == "web" and s["spec"]["type"] == "NodePort"]
        self.assertEqual(nodeports, ["sentryk8s-web"])
        self.assertEqual([p["name"] for p in one_service(objects, "sentryk8s-web")["spec"]["ports"]], ["http"])
        (self.sandbox.state / "web-service").write_text("sentryk8s-web\n")
        result, calls = self.sandbox.run()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("The REST API (/api/v1/checks), from the laptop:\n"
                      "    minikube -p minikube service -n sentryk8s sentryk8s-web\n", result.stdout)
        lookup = next(a for a in commands(calls) if a[0] == "kubectl" and "get" in a)
        self.assertEqual(flag(lookup, "-l"), "app.kubernetes.io/instance=sentryk8s,app.kubernetes.io/component=web")
        self.assertIn('?(@.spec.type=="NodePort")', flag(lookup, "-o"))

    def test_unknown_arguments_are_refused_with_the_usage(self):
        for args, message in ((("--delet",), "unknown argument '--delet'"),
                              (("--delete", "now"), "one argument at most")):
            with self.subTest(args=args):
                result, calls = self.sandbox.run(*args)
                self.assertEqual(result.returncode, 2)
                self.assertIn(f"minikube.sh: {message}", result.stderr)
                self.assertIn("scripts/minikube.sh --delete", result.stderr)
                self.assertEqual(calls, [])
        result, _ = self.sandbox.run("--help")
        self.assertEqual(result.returncode, 0)
        self.assertIn("scripts/minikube.sh --delete", result.stdout)


if __name__ == "__main__":
    unittest.main()
