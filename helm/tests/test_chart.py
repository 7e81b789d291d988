"""The Helm chart: lint, Kubernetes schemas, and what the rendered objects must say.

Every structural test runs over the chart's defaults and each value set in
helm/tests/values/ (external services with existingSecret, KEDA with either
trigger, five schedulers without autoscaling).
"""

import json
import os
import pathlib
import re
import subprocess
import tempfile
import tomllib
import unittest

import yaml

from chart import (CHART, CRD_KINDS, KUBE_VERSIONS, ROOT, VALUE_SETS, annotations, by_kind,
                   containers, env_of, helm, labels, one, pod_spec, render, render_text, value_path,
                   values_args)

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")
SENTRYK8S_ROLES = ("scheduler", "worker", "web", "migrate")


def selector_matches(selector, pod_labels):
    """Whether a matchLabels/matchExpressions selector selects pods with these labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if pod_labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        present = expr["key"] in pod_labels
        value = pod_labels.get(expr["key"])
        op = expr["operator"]
        if op == "In" and value not in expr["values"]:
            return False
        if op == "NotIn" and value in expr["values"]:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def workload_selector(obj):
    return obj["spec"]["selector"] if obj["kind"] != "Job" else {"matchLabels": {}}


class LintAndSchemas(unittest.TestCase):
    def test_lint_strict_for_every_value_set(self):
        for value_set in VALUE_SETS:
            with self.subTest(values=value_set or "defaults"):
                result = helm("lint", "--strict", str(CHART), *values_args(value_set), check=False)
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
                self.assertIn("0 chart(s) failed", result.stdout)

    def test_core_objects_validate_against_oldest_and_newest_kubernetes(self):
        for value_set in VALUE_SETS:
            objects = render(value_set)
            core = [o for o in objects if o["kind"] not in CRD_KINDS]
            self.assertGreater(len(core), 10)
            with tempfile.NamedTemporaryFile("w", suffix=".yaml") as rendered:
                rendered.write(render_text(value_set))
                rendered.flush()
                for version in KUBE_VERSIONS:
                    with self.subTest(values=value_set or "defaults", kubernetes=version):
                        result = subprocess.run(
                            ["kubernetes-validate", "--strict", "-k", version, rendered.name],
                            capture_output=True, text=True)
                        out = result.stdout + result.stderr
                        self.assertEqual(result.returncode, 0, out)
                        self.assertNotIn("ERROR", out)
                        passed = [line for line in out.splitlines() if line.startswith("INFO") and " passed " in line]
                        self.assertEqual(len(passed), len(core), out)
                        # Warnings are only about CRD kinds it has no schema for.
                        for line in out.splitlines():
                            if line.startswith("WARN"):
                                kind = re.search(r"for kind (\w+)", line)
                                self.assertTrue(kind and kind.group(1) in CRD_KINDS, line)

    def test_kube_version_declared(self):
        chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
        self.assertEqual(chart["apiVersion"], "v2")
        self.assertEqual(chart["kubeVersion"], ">=1.25.0-0")
        self.assertTrue(KUBE_VERSIONS[0].startswith("1.25"))

    def test_schema_rejects_a_typo_and_a_wrong_type(self):
        cases = [
            (["--set", "worker.concurrencyy=8"], "concurrencyy"),
            (["--set", "schedular.replicas=3"], "schedular"),
            (["--set", "config.amqp.queeu=x"], "queeu"),
            (["--set-string", "worker.concurrency=many"], "concurrency"),
            (["--set-string", "scheduler.replicas=three"], "replicas"),
            (["--set", "config.logFormat=xml"], "logFormat"),
            (["--set", "config.drainTimeout=soon"], "drainTimeout"),
            (["--set", "rabbitmq.auth.password=a#b"], "password"),
        ]
        for args, key in cases:
            with self.subTest(args=args):
                result = helm("template", "sk", str(CHART), *args, check=False)
                self.assertNotEqual(result.returncode, 0, result.stdout[:500])
                self.assertIn(key, result.stderr)
                self.assertRegex(result.stderr, r"additional propert|got string|value must be one of|does not match pattern")
        # The same keys, well spelled and typed, are accepted.
        helm("template", "sk", str(CHART), "--set", "worker.concurrency=8", "--set", "scheduler.replicas=3",
             "--set", "config.logFormat=text", "--set", "config.drainTimeout=30s")

    def test_schema_is_strict_everywhere(self):
        schema = json.loads((CHART / "values.schema.json").read_text())
        passthrough = {"kubernetesObject", "kubernetesList", "envList", "stringMap", "checks", "checksDefaults",
                       "checksAlerts", "checksMaintenance"}

        def walk(node, path):
            if not isinstance(node, dict):
                return
            if node.get("type") == "object" and "properties" in node and not passthrough & set(path):
                self.assertIs(node.get("additionalProperties"), False, "/".join(path))
            for key, child in node.items():
                if isinstance(child, dict):
                    walk(child, path + [key])
                elif isinstance(child, list):
                    for item in child:
                        walk(item, path + [key])

        walk(schema, ["root"])
        self.assertIs(schema["additionalProperties"], False)

    def test_every_value_is_documented_by_a_comment_starting_with_its_key(self):
        text = (CHART / "values.yaml").read_text()
        documented = set(re.findall(r"^\s*# ([A-Za-z][A-Za-z0-9.]*) --", text, re.M))
        values = yaml.safe_load(text)

        def check(path, value):
            if isinstance(value, dict) and value:
                children = [f"{path}.{k}" if path else k for k in value]
                if path in documented and not any(c in documented for c in children):
                    return  # documented as a whole (a Kubernetes object passed through)
                for key, child in value.items():
                    check(f"{path}.{key}" if path else key, child)
            else:
                self.assertIn(path, documented, f"values.yaml: no '# {path} --' comment")

        check("", values)


class RenderedObjects(unittest.TestCase):
    def test_one_workload_per_role_with_distinct_components(self):
        for value_set in VALUE_SETS:
            with self.subTest(values=value_set or "defaults"):
                objects = render(value_set)
                workloads = [o for o in objects if o["kind"] in WORKLOAD_KINDS]
                components = [labels(o).get("app.kubernetes.io/component") for o in workloads]
                self.assertEqual(len(components), len(set(components)), components)
                self.assertEqual(one(objects, "StatefulSet", "scheduler")["kind"], "StatefulSet")
                self.assertEqual(one(objects, "Deployment", "worker")["kind"], "Deployment")
                self.assertEqual(one(objects, "Job", "migrate")["kind"], "Job")
                for obj in workloads:
                    tpl_labels = obj["spec"]["template"]["metadata"]["labels"]
                    comp = labels(obj)["app.kubernetes.io/component"]
                    self.assertEqual(tpl_labels["app.kubernetes.io/component"], comp)
                    for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                                "app.kubernetes.io/managed-by", "helm.sh/chart"):
                        self.assertIn(key, labels(obj), obj["metadata"]["name"])
                    if obj["kind"] != "Job":
                        self.assertEqual(obj["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"], comp)
                # No workload's selector picks another workload's pods.
                for a in workloads:
                    if a["kind"] == "Job":
                        continue
                    for b in workloads:
                        if a is not b:
                            self.assertFalse(
                                selector_matches(a["spec"]["selector"], b["spec"]["template"]["metadata"]["labels"]),
                                f"{a['metadata']['name']} selects pods of {b['metadata']['name']}")

    def test_services_budgets_and_policies_select_exactly_their_component(self):
        for value_set in VALUE_SETS:
            objects = render(value_set)
            pods = {labels(o)["app.kubernetes.io/component"]: o["spec"]["template"]["metadata"]["labels"]
                    for o in objects if o["kind"] in WORKLOAD_KINDS}
            for obj in objects:
                if obj["kind"] == "Service":
                    selector = {"matchLabels": obj["spec"]["selector"]}
                elif obj["kind"] in ("PodDisruptionBudget",):
                    selector = obj["spec"]["selector"]
                elif obj["kind"] == "NetworkPolicy":
                    selector = obj["spec"]["podSelector"]
                elif obj["kind"] == "ServiceMonitor":
                    continue
                else:
                    continue
                comp = labels(obj)["app.kubernetes.io/component"]
                with self.subTest(values=value_set or "defaults", obj=obj["metadata"]["name"]):
                    selected = [c for c, pl in pods.items() if selector_matches(selector, pl)]
                    self.assertEqual(selected, [comp])

    def test_scheduler_shards_equal_replicas(self):
        expected = {None: 3, "five-schedulers.yaml": 5}
        for value_set in VALUE_SETS:
            with self.subTest(values=value_set or "defaults"):
                objects = render(value_set)
                sts = one(objects, "StatefulSet", "scheduler")
                replicas = sts["spec"]["replicas"]
                if value_set in expected:
                    self.assertEqual(replicas, expected[value_set])
                container = one_container(sts, "scheduler")
                args = container["args"]
                self.assertEqual(args[0], "scheduler")
                self.assertIn("--shard-from-hostname", args)
                self.assertEqual(args[args.index("--shards") + 1], str(replicas))
                # HOSTNAME is the pod name <statefulset>-<ordinal>: the name must end the way the binary parses.
                self.assertTrue(sts["metadata"]["name"].endswith("-scheduler"))
                self.assertLessEqual(len(sts["metadata"]["name"]), 52)
                headless = [s for s in by_kind(objects, "Service") if s["metadata"]["name"] == sts["spec"]["serviceName"]]
                self.assertEqual(len(headless), 1)
                self.assertEqual(headless[0]["spec"]["clusterIP"], "None")
                pdb = one(objects, "PodDisruptionBudget", "scheduler")
                self.assertEqual(pdb["spec"]["maxUnavailable"], 1)
                anti = sts["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
                key = ("requiredDuringSchedulingIgnoredDuringExecution"
                       if load_values(value_set)["scheduler"]["antiAffinity"] == "hard"
                       else "preferredDuringSchedulingIgnoredDuringExecution")
                self.assertIn(key, anti)

    def test_replicas_flag_follows_values(self):
        sts = one(render(extra=["scheduler.replicas=7"]), "StatefulSet", "scheduler")
        args = one_container(sts, "scheduler")["args"]
        self.assertEqual((sts["spec"]["replicas"], args[args.index("--shards") + 1]), (7, "7"))

    def test_migrate_job_is_a_hook_with_its_dependencies_created_first(self):
        for value_set in VALUE_SETS:
            with self.subTest(values=value_set or "defaults"):
                objects = render(value_set)
                values = load_values(value_set)
                job = one(objects, "Job", "migrate")
                ann = annotations(job)
                bundled_db = values["postgresql"]["enabled"]
                events = set(ann["helm.sh/hook"].split(","))
                if bundled_db:
                    # The bundled database is part of the release: it cannot exist before install.
                    self.assertEqual(events, {"post-install", "pre-upgrade"})
                    self.assertEqual(ann["argocd.argoproj.io/hook"], "PostSync")
                    init = pod_spec(one(objects, "StatefulSet", "scheduler")).get("initContainers") or []
                    self.assertEqual([c["args"][0] for c in init], ["migrate"])
                else:
                    self.assertEqual(events, {"pre-install", "pre-upgrade"})
                    self.assertNotIn("argocd.argoproj.io/hook", ann)
                self.assertEqual(ann["helm.sh/hook-delete-policy"], "before-hook-creation,hook-succeeded")
                job_weight = int(ann["helm.sh/hook-weight"])
                spec = pod_spec(job)
                self.assertEqual(spec["restartPolicy"], "Never")

                # Everything the Job reads is a hook of the same events and lower weight, or an existing Secret.
                needed = {("ServiceAccount", spec["serviceAccountName"])}
                for volume in spec["volumes"]:
                    if "configMap" in volume:
                        needed.add(("ConfigMap", volume["configMap"]["name"]))
                for c in containers(spec):
                    for e in c.get("env") or []:
                        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                        if ref and e["name"].startswith("SENTRYK8S_"):
                            needed.add(("Secret", ref["name"]))
                for kind, name in needed:
                    if kind == "Secret" and name == values["secrets"]["existingSecret"]:
                        continue
                    dep = [o for o in by_kind(objects, kind) if o["metadata"]["name"] == name]
                    self.assertEqual(len(dep), 1, f"{kind} {name}")
                    dep_ann = annotations(dep[0])
                    self.assertEqual(set(dep_ann.get("helm.sh/hook", "").split(",")), events, f"{kind} {name}")
                    self.assertLess(int(dep_ann["helm.sh/hook-weight"]), job_weight, f"{kind} {name}")

                migrate_args = ["migrate", "--wait", "120s"]
                if values["checks"]:
                    self.assertEqual(spec["initContainers"][0]["args"], migrate_args)
                    self.assertEqual(spec["containers"][0]["args"],
                                     ["checks", "apply", "-f", "/etc/sentryk8s/checks/", "--prune"])
                    cm = next(o for o in by_kind(objects, "ConfigMap") if o["metadata"]["name"] == job["metadata"]["name"])
                    checks_file = yaml.safe_load(cm["data"]["checks.yaml"])
                    self.assertEqual(checks_file["checks"], values["checks"])
                    self.assertEqual(checks_file.get("defaults", {}), values["checksDefaults"])
                    mount = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "checks"]
                    self.assertEqual(mount[0]["mountPath"], "/etc/sentryk8s/checks")
                else:
                    self.assertNotIn("initContainers", spec)
                    self.assertEqual(spec["containers"][0]["args"], migrate_args)

    def test_checks_allow_env_comes_from_values_and_is_empty_by_default(self):
        """`${VAR}` in checks reads only what config.checks.allowEnv lists: nothing on a fresh
        install, and the listed patterns in the config file of the hook Job that applies checks."""
        checks = "checks[0].name=a,checks[0].url=https://example.com/"
        for extra, expected in (((checks,), []),
                                ((checks, "config.checks.allowEnv={CHECK_*,API_TOKEN}"), ["CHECK_*", "API_TOKEN"])):
            with self.subTest(extra=extra):
                objects = render(None, extra)
                job = one(objects, "Job", "migrate")
                self.assertEqual(pod_spec(job)["containers"][0]["args"][:2], ["checks", "apply"])
                cm = next(o for o in by_kind(objects, "ConfigMap") if o["metadata"]["name"] == job["metadata"]["name"])
                for text in (cm["data"]["config.toml"], main_config(objects)):
                    self.assertEqual(tomllib.loads(text)["checks"]["allow_env"], expected)
        result = helm("template", "sk", str(CHART), "--set", "config.checks.allowEnv={not-a-name}", check=False)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("allowEnv", result.stderr)

    def test_worker_scales_on_an_external_backlog_metric(self):
        for value_set in VALUE_SETS:
            with self.subTest(values=value_set or "defaults"):
                objects = render(value_set)
                values = load_values(value_set)
                auto = values["worker"]["autoscaling"]
                deployment = one(objects, "Deployment", "worker")
                hpas = [h for h in by_kind(objects, "HorizontalPodAutoscaler")
                        if labels(h)["app.kubernetes.io/component"] == "worker"]
                scaled = by_kind(objects, "ScaledObject")
                worker_args = one_container(deployment, "worker")["args"]
                self.assertEqual(worker_args[:2], ["worker", "--concurrency"])
                self.assertEqual(worker_args[2], str(values["worker"]["concurrency"]))
                if auto["keda"]["enabled"]:
                    self.assertEqual(hpas, [])
                    self.assertEqual(len(scaled), 1)
                    self.assertEqual(scaled[0]["spec"]["scaleTargetRef"]["name"], deployment["metadata"]["name"])
                    self.assertNotIn("replicas", deployment["spec"])
                    trigger = scaled[0]["spec"]["triggers"][0]
                    self.assertEqual(trigger["type"], auto["keda"]["trigger"])
                    if trigger["type"] == "rabbitmq":
                        self.assertEqual(trigger["metadata"]["queueName"], "sentryk8s.checks")
                        auth = one(objects, "TriggerAuthentication")
                        self.assertEqual(trigger["authenticationRef"]["name"], auth["metadata"]["name"])
                    else:
                        self.assertIn('queue=~"sentryk8s\\\\.checks"', trigger["metadata"]["query"])
                elif auto["enabled"]:
                    self.assertEqual(scaled, [])
                    self.assertEqual(len(hpas), 1)
                    hpa = hpas[0]
                    self.assertEqual(hpa["apiVersion"], "autoscaling/v2")
                    self.assertEqual(hpa["spec"]["scaleTargetRef"],
                                     {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]})
                    metric = hpa["spec"]["metrics"][0]
                    self.assertEqual(metric["type"], "External")
                    self.assertEqual(metric["external"]["metric"]["name"], "sentryk8s_queue_backlog")
                    selector = metric["external"]["metric"]["selector"]
                    self.assertEqual(selector["matchExpressions"],
                                     [{"key": "queue", "operator": "In", "values": ["sentryk8s.checks"]}])
                    self.assertNotIn("queue", selector.get("matchLabels") or {})
                    self.assertEqual(metric["external"]["target"], {"type": "AverageValue", "averageValue": "200"})
                    behavior = hpa["spec"]["behavior"]
                    self.assertGreaterEqual(behavior["scaleDown"]["stabilizationWindowSeconds"], 120)
                    self.assertLessEqual(behavior["scaleUp"]["stabilizationWindowSeconds"], 60)
                    self.assertNotIn("replicas", deployment["spec"])
                else:
                    self.assertEqual((hpas, scaled), ([], []))
                    self.assertEqual(deployment["spec"]["replicas"], values["worker"]["replicas"])

    def test_job_queues_and_slots_per_message_reach_config_and_autoscaling(self):
        # Defaults: one job queue, 32 slots per message.
        objects = render()
        config = tomllib.loads(main_config(objects))
        self.assertEqual((config["amqp"]["queues"], config["scheduler"]["slots_per_message"]), (1, 32))
        # Four job queues, 8 slots per message, the bundled RabbitMQ (its namespace in the selector).
        objects = render(extra=["config.amqp.queues=4", "config.scheduler.slotsPerMessage=8",
                                "worker.autoscaling.metricSelector.queue=other",
                                "worker.autoscaling.metricSelector.cluster=eu1"])
        config = tomllib.loads(main_config(objects))
        self.assertEqual((config["amqp"]["queues"], config["scheduler"]["slots_per_message"]), (4, 8))
        queues = ["sentryk8s.checks", "sentryk8s.checks.1", "sentryk8s.checks.2", "sentryk8s.checks.3"]
        selector = one(objects, "HorizontalPodAutoscaler", "worker")["spec"]["metrics"][0]["external"]["metric"]["selector"]
        # The chart names the job queues: a "queue" in metricSelector does not replace them.
        self.assertEqual(selector, {"matchExpressions": [{"key": "queue", "operator": "In", "values": queues}],
                                    "matchLabels": {"namespace": "monitoring-test", "cluster": "eu1"}})
        # The KEDA prometheus trigger: every job queue (dots escaped, anchored by Prometheus), times
        # the slots per message measured on this release's schedulers, capped at slotsPerMessage.
        trigger = one(render("keda-prometheus.yaml", ["config.amqp.queues=4", "config.scheduler.slotsPerMessage=8"]),
                      "ScaledObject")["spec"]["triggers"][0]
        query = trigger["metadata"]["query"]
        regex = r"sentryk8s\\.checks|sentryk8s\\.checks\\.1|sentryk8s\\.checks\\.2|sentryk8s\\.checks\\.3"
        self.assertEqual(query.count(f'queue=~"{regex}"'), 2, query)
        scheduler = 'job="sk-sentryk8s-scheduler",namespace="monitoring-test"'
        self.assertIn(f"sum(rate(sentryk8s_slots_published_total{{{scheduler}}}[2m])) / "
                      f"sum(rate(sentryk8s_job_messages_published_total{{{scheduler}}}[2m])), 8)", query)
        self.assertIn(">= 1 or vector(1)", query)
        # The schema bounds are the binary's.
        for args, key in ((["--set", "config.amqp.queues=0"], "queues"), (["--set", "config.amqp.queues=65"], "queues"),
                          (["--set", "config.scheduler.slotsPerMessage=0"], "slotsPerMessage"),
                          (["--set", "config.scheduler.slotsPerMessage=501"], "slotsPerMessage")):
            with self.subTest(args=args):
                result = helm("template", "sk", str(CHART), *args, check=False)
                self.assertNotEqual(result.returncode, 0)
                self.assertIn(key, result.stderr)
        helm("template", "sk", str(CHART), "--set", "config.amqp.queues=64", "--set", "config.scheduler.slotsPerMessage=500")
        # A queue name that would make "<queue>.<n>" longer than a label value is refused by name.
        long_queue = "q" * 62
        helm("template", "sk", str(CHART), "--set", f"config.amqp.queue={long_queue}")
        result = helm("template", "sk", str(CHART), "--set", f"config.amqp.queue={long_queue}",
                      "--set", "config.amqp.queues=2", check=False)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(f"{long_queue}.1", result.stderr)

    def test_keda_rabbitmq_trigger_is_refused_with_several_job_queues(self):
        # It counts one queue's messages: with several job queues it would miss the others.
        trigger = one(render("keda.yaml", ["config.amqp.queues=1"]), "ScaledObject")["spec"]["triggers"][0]
        self.assertEqual((trigger["type"], trigger["metadata"]["queueName"]), ("rabbitmq", "sentryk8s.checks"))
        result = helm("template", "sk", str(CHART), *values_args("keda.yaml", ["config.amqp.queues=2"]), check=False)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("keda.trigger=rabbitmq", result.stderr)
        self.assertIn("config.amqp.queues=2", result.stderr)
        self.assertIn("keda.trigger=prometheus", result.stderr)
        # The prometheus trigger takes any number of queues.
        render("keda-prometheus.yaml", ["config.amqp.queues=2"])

    def test_no_secret_value_outside_secrets(self):
        cases = [
            (None, ["postgresql.auth.password=pgPass-9f3k", "rabbitmq.auth.password=mqPass-7d2z"],
             ["pgPass-9f3k", "mqPass-7d2z"]),
            ("keda-prometheus.yaml", [], ["pg-Secret-4711", "mq-Secret-0815"]),
            ("keda.yaml", ["secrets.databaseUrl=postgres://u:dbPw-1357@db:5432/x", "rabbitmq.auth.password=mqPw-2468"],
             ["dbPw-1357", "mqPw-2468"]),
        ]
        for value_set, extra, secrets in cases:
            with self.subTest(values=value_set or "defaults", extra=extra):
                objects = render(value_set, extra)
                for obj in objects:
                    text = yaml.safe_dump(obj)
                    for secret in secrets:
                        if obj["kind"] == "Secret":
                            continue
                        self.assertNotIn(secret, text, f"{obj['kind']} {obj['metadata']['name']} holds a secret")
                # The secrets are there, in Secrets (so this test can fail).
                secret_text = "".join(yaml.safe_dump(o) for o in by_kind(objects, "Secret"))
                for secret in secrets:
                    self.assertIn(secret, secret_text)

    def test_every_container_is_non_root_with_a_read_only_root_filesystem(self):
        for value_set in VALUE_SETS:
            objects = render(value_set)
            for obj in objects:
                spec = pod_spec(obj)
                if spec is None:
                    continue
                pod_sc = spec.get("securityContext") or {}
                self.assertFalse(spec.get("enableServiceLinks", True), obj["metadata"]["name"])
                self.assertFalse(spec.get("automountServiceAccountToken", True), obj["metadata"]["name"])
                for c in containers(spec):
                    with self.subTest(values=value_set or "defaults", obj=obj["metadata"]["name"], container=c["name"]):
                        sc = c.get("securityContext") or {}
                        self.assertTrue(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")))
                        self.assertNotEqual(sc.get("runAsUser", pod_sc.get("runAsUser")), 0)
                        self.assertIs(sc.get("readOnlyRootFilesystem"), True)
                        self.assertIs(sc.get("allowPrivilegeEscalation"), False)
                        self.assertEqual(sc.get("capabilities", {}).get("drop"), ["ALL"])
                        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile")) or {}
                        self.assertEqual(seccomp.get("type"), "RuntimeDefault")
                        self.assertIn("resources", c)
                        self.assertIn("requests", c["resources"])

    def test_workers_get_the_ping_sysctl_and_stay_restricted(self):
        # ICMP checks open unprivileged ICMP sockets: the worker pod's group
        # must be in net.ipv4.ping_group_range, set as a pod sysctl (a safe,
        # namespaced one the restricted Pod Security profile allows) instead
        # of granting NET_RAW.
        ping = {"name": "net.ipv4.ping_group_range", "value": "0 2147483647"}
        # The sysctls the baseline (hence restricted) profile allows.
        safe = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range"}
        for value_set in VALUE_SETS:
            with self.subTest(values=value_set or "defaults"):
                objects = render(value_set)
                worker = pod_spec(one(objects, "Deployment", "worker"))
                sysctls = worker["securityContext"].get("sysctls")
                self.assertEqual(sysctls, [ping])
                self.assertEqual(worker["securityContext"]["runAsUser"], 65532, "podSecurityContext kept")
                for c in containers(worker):
                    self.assertNotIn("add", c["securityContext"].get("capabilities", {}), c["name"])
                for obj in objects:
                    spec = pod_spec(obj)
                    if spec is None or labels(obj).get("app.kubernetes.io/component") == "worker":
                        continue
                    self.assertNotIn("sysctls", spec.get("securityContext") or {}, obj["metadata"]["name"])
                for sysctl in sysctls:
                    self.assertIn(sysctl["name"], safe)
        # podSecurityContext's own sysctls stay, the workers' are added.
        extra = ["podSecurityContext.sysctls[0].name=net.ipv4.ip_local_port_range",
                 "podSecurityContext.sysctls[0].value=32768 60999"]
        objects = render(extra=extra)
        worker = pod_spec(one(objects, "Deployment", "worker"))
        self.assertEqual([s["name"] for s in worker["securityContext"]["sysctls"]],
                         ["net.ipv4.ip_local_port_range", "net.ipv4.ping_group_range"])
        self.assertEqual(len(pod_spec(one(objects, "Deployment", "web"))["securityContext"]["sysctls"]), 1)
        # Turned off: no sysctls at all.
        off = pod_spec(one(render(extra=["worker.sysctls=null"]), "Deployment", "worker"))
        self.assertNotIn("sysctls", off["securityContext"])
        # The Kubernetes versions accept the worker Deployment as rendered.
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as rendered:
            rendered.write(yaml.safe_dump(one(render(), "Deployment", "worker")))
            rendered.flush()
            for version in ("1.29.0", "1.33.0"):
                result = subprocess.run(["kubernetes-validate", "--strict", "-k", version, rendered.name],
                                        capture_output=True, text=True)
                out = result.stdout + result.stderr
                self.assertEqual(result.returncode, 0, out)
                self.assertIn(" passed ", out)

    def test_long_running_roles_probe_drain_and_log_json(self):
        objects = render()
        config = tomllib.loads(main_config(objects))
        self.assertEqual(config["log_format"], "json")
        self.assertEqual(config["listen"], "0.0.0.0:9090")
        drain = int(config["drain_timeout"].rstrip("s"))
        for kind, role in (("StatefulSet", "scheduler"), ("Deployment", "worker"), ("Deployment", "web")):
            obj = one(objects, kind, role)
            spec = pod_spec(obj)
            self.assertGreater(spec["terminationGracePeriodSeconds"], drain)
            c = one_container(obj, role)
            self.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/healthz")
            self.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/readyz")
            self.assertEqual(c["ports"][0]["containerPort"], 9090)
        longer = one(render(extra=["config.drainTimeout=2m"]), "Deployment", "worker")
        self.assertEqual(pod_spec(longer)["terminationGracePeriodSeconds"], 130)

    def test_only_known_sentryk8s_variables_are_set(self):
        for value_set in VALUE_SETS:
            for obj in render(value_set):
                spec = pod_spec(obj)
                if spec is None or labels(obj)["app.kubernetes.io/component"] not in SENTRYK8S_ROLES:
                    continue
                for c in containers(spec):
                    names = {n for n in env_of(c) if n.startswith("SENTRYK8S_")}
                    expected = {"SENTRYK8S_CONFIG", "SENTRYK8S_DATABASE_URL", "SENTRYK8S_AMQP_URL"}
                    if c["name"] == "web":
                        # The web role never talks to RabbitMQ: it does not get the broker's password.
                        expected.remove("SENTRYK8S_AMQP_URL")
                    self.assertEqual(names, expected)
                    self.assertEqual(c["command"], ["/usr/local/bin/sentryk8s"])

    def test_metrics_services_and_monitors(self):
        objects = render("external-existing-secret.yaml")
        for role in ("scheduler", "worker", "web"):
            services = [s for s in by_kind(objects, "Service") if labels(s)["app.kubernetes.io/component"] == role]
            metrics = [s for s in services if [p["name"] for p in s["spec"]["ports"]] == ["metrics"]]
            self.assertEqual(len(metrics), 1, role)
            monitor = one(objects, "ServiceMonitor", role)
            self.assertEqual(monitor["spec"]["endpoints"][0]["port"], "metrics")
            self.assertEqual(monitor["metadata"]["labels"]["release"], "kube-prometheus-stack")
            # The monitor selects the metrics Service (the web role's API Service has no metrics port).
            self.assertTrue(selector_matches(monitor["spec"]["selector"], labels(metrics[0])))
        rule = one(objects, "PrometheusRule")
        alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
        self.assertLessEqual({"SentryK8sWorkersDown", "SentryK8sDispatchLate", "SentryK8sLeaseChurn",
                              "SentryK8sDeadLetters"}, alerts)
        exprs = " ".join(r["expr"] for g in rule["spec"]["groups"] for r in g["rules"])
        for metric in ("sentryk8s_dispatch_lateness_seconds_bucket", "sentryk8s_lease_acquired_total",
                       "sentryk8s_lease_lost_total", "sentryk8s_jobs_dead_lettered_total",
                       "sentryk8s_scheduler_owned_partitions", "sentryk8s_slots_missed_total",
                       "sentryk8s_checks_total", "sentryk8s_queue_delay_seconds_bucket", "up{"):
            self.assertIn(metric, exprs)
        without_consumer = [r for g in rule["spec"]["groups"] for r in g["rules"]
                            if r.get("alert") == "SentryK8sJobQueueWithoutConsumer"]
        self.assertEqual(len(without_consumer), 1)
        self.assertEqual(without_consumer[0]["expr"], 'max by (queue) (sentryk8s_job_queue_consumers'
                         '{job="sk-sentryk8s-scheduler",namespace="monitoring-test"}) == 0')
        self.assertEqual(without_consumer[0]["for"], "2m")
        self.assertIn("{{ $labels.queue }}", without_consumer[0]["annotations"]["description"])
        # prometheus-operator names the job after the scraped Service: the web role's metrics Service.
        self.assertIn('up{job="sk-sentryk8s-web-metrics",namespace="monitoring-test"}', exprs)
        self.assertIn("SentryK8sWebDown", alerts)
        dashboard = next(o for o in by_kind(objects, "ConfigMap") if o["metadata"]["name"].endswith("-dashboard"))
        self.assertEqual(dashboard["metadata"]["labels"]["grafana_dashboard"], "1")
        board = json.loads(dashboard["data"]["sentryk8s.json"])
        # The per-check panels read the web role's per-check metrics, from its metrics Service's job.
        board_exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
        for metric in ("sentryk8s_check_up", "sentryk8s_check_last_duration_seconds",
                       'sentryk8s_check_uptime_ratio{job="$fullname-web-metrics",namespace="$namespace",check=~"$check",window="24h"}',
                       'window="30d"', "sentryk8s_check_cert_expiry_timestamp_seconds"):
            self.assertTrue([e for e in board_exprs if metric in e], metric)
        for expr in board_exprs:
            if re.search(r"sentryk8s_check_(up|last_duration_seconds|uptime_ratio|cert_expiry_timestamp_seconds)\b",
                         expr):
                # Every web replica exports the same series: one per check, never summed over replicas.
                self.assertIn("max by (check)", expr)
                self.assertIn('job="$fullname-web-metrics"', expr)
        ids = [p["id"] for p in board["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        # The bundled RabbitMQ's ServiceMonitor scrapes the per-queue metrics the autoscaler needs.
        mq_monitor = one(render("keda.yaml"), "ServiceMonitor", "rabbitmq")
        detailed = [e for e in mq_monitor["spec"]["endpoints"] if e["path"] == "/metrics/detailed"]
        self.assertEqual(detailed[0]["params"], {"family": ["queue_coarse_metrics"]})
        self.assertEqual(detailed[0]["port"], "prometheus")
        # Default values: no CRD objects, so a cluster without prometheus-operator or KEDA installs cleanly.
        self.assertEqual([o["kind"] for o in render() if o["kind"] in CRD_KINDS], [])

    def test_bundled_services_use_official_images_and_rabbitmq_prometheus(self):
        objects = render()
        pg = one_container(one(objects, "StatefulSet", "postgresql"), "postgresql")
        mq = one_container(one(objects, "StatefulSet", "rabbitmq"), "rabbitmq")
        self.assertTrue(pg["image"].startswith("docker.io/library/postgres:"))
        self.assertTrue(mq["image"].startswith("docker.io/library/rabbitmq:"))
        mq_cm = one(objects, "ConfigMap", "rabbitmq")
        self.assertIn("rabbitmq_prometheus", mq_cm["data"]["enabled_plugins"])
        self.assertIn(15692, [p["containerPort"] for p in mq["ports"]])
        urls = next(o for o in by_kind(objects, "Secret") if "database-url" in (o.get("stringData") or {}))
        self.assertEqual(urls["stringData"]["database-url"],
                         "postgres://sentryk8s:sentryk8s@sk-sentryk8s-postgresql:5432/sentryk8s")
        self.assertEqual(urls["stringData"]["amqp-url"], "amqp://sentryk8s:sentryk8s@sk-sentryk8s-rabbitmq:5672/%2f")
        # External services: no bundled objects at all.
        names = [o["metadata"]["name"] for o in render("external-existing-secret.yaml")]
        self.assertFalse([n for n in names if "postgresql" in n or "rabbitmq" in n], names)

    def test_rendering_is_deterministic(self):
        # Argo CD compares renders: anything random or time-dependent would never be in sync.
        for template in (CHART / "templates").rglob("*"):
            if template.is_file():
                text = template.read_text()
                for word in ("randAlpha", "randNumeric", "randAscii", "randBytes", "uuidv4", "now", "lookup",
                             "genPrivateKey", "genCA"):
                    self.assertNotRegex(text, rf"\b{word}\b", f"{template.name} uses {word}")
        for value_set in (None, "external-existing-secret.yaml"):
            self.assertEqual(render_text(value_set), render_text(value_set))

    def test_notes_render(self):
        for value_set in VALUE_SETS:
            with self.subTest(values=value_set or "defaults"):
                result = helm("install", "sk", str(CHART), "--dry-run=client", "-n", "demo", *values_args(value_set))
                notes = result.stdout.split("NOTES:", 1)[1]
                self.assertIn('SentryK8s 0.1.0 is deployed as "sk" in namespace demo.', notes)
                self.assertIn("kubectl -n demo exec sk-sentryk8s-scheduler-0", notes)

    def test_missing_urls_fail_with_a_helpful_message(self):
        result = helm("template", "sk", str(CHART), "--set", "postgresql.enabled=false", check=False)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("no database URL", result.stderr)
        self.assertIn("secrets.existingSecret", result.stderr)


class WebRole(unittest.TestCase):
    """The web role: Deployment, API and metrics Services, Ingress or HTTPRoute, PDB, NetworkPolicy, HPA."""

    def test_web_objects_render_with_the_defaults(self):
        objects = render()
        deployment = one(objects, "Deployment", "web")
        c = one_container(deployment, "web")
        self.assertEqual(c["args"], ["web", "--listen", "0.0.0.0:8080"])
        self.assertEqual({p["name"]: p["containerPort"] for p in c["ports"]}, {"metrics": 9090, "http": 8080})
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
            self.assertEqual(c[probe]["httpGet"], {"path": path, "port": "metrics"})
        # The HPA owns the replica count.
        self.assertNotIn("replicas", deployment["spec"])
        hpa = one(objects, "HorizontalPodAutoscaler", "web")
        self.assertEqual(hpa["spec"]["scaleTargetRef"],
                         {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]})
        self.assertEqual((hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]), (2, 10))
        self.assertEqual(hpa["spec"]["metrics"], [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}])
        self.assertIn("cpu", c["resources"]["requests"])
        self.assertEqual(one(objects, "PodDisruptionBudget", "web")["spec"]["maxUnavailable"], 1)
        # The API Service carries the API port only; the metrics port is on a ClusterIP Service of its own.
        services = {s["metadata"]["name"]: s for s in by_kind(objects, "Service")
                    if labels(s)["app.kubernetes.io/component"] == "web"}
        self.assertEqual(set(services), {"sk-sentryk8s-web", "sk-sentryk8s-web-metrics"})
        api, metrics = services["sk-sentryk8s-web"], services["sk-sentryk8s-web-metrics"]
        self.assertEqual(api["spec"]["ports"], [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}])
        self.assertEqual(api["spec"]["type"], "ClusterIP")
        self.assertEqual([p["name"] for p in metrics["spec"]["ports"]], ["metrics"])
        self.assertEqual(metrics["spec"]["type"], "ClusterIP")
        # Off by default: no Ingress, no HTTPRoute (no Gateway API CRDs needed).
        self.assertEqual(by_kind(objects, "Ingress") + by_kind(objects, "HTTPRoute"), [])
        # The config file's [web] section: the API address from web.port, the rest from config.web.
        web = tomllib.loads(main_config(objects))["web"]
        self.assertEqual(web["listen"], "0.0.0.0:8080")
        self.assertEqual((web["public_read"], web["rate_limit_per_second"], web["metrics_labels"]), (False, 50, []))

    def test_config_web_values_reach_the_config_file(self):
        objects = render(extra=["config.web.publicRead=true", "config.web.rateLimitPerSecond=500",
                                "config.web.metricsLabels={team,env}", "config.web.metricsRefresh=30s",
                                "web.port=8443"])
        web = tomllib.loads(main_config(objects))["web"]
        self.assertEqual((web["public_read"], web["rate_limit_per_second"], web["metrics_labels"],
                          web["metrics_refresh"], web["listen"]),
                         (True, 500, ["team", "env"], "30s", "0.0.0.0:8443"))
        c = one_container(one(objects, "Deployment", "web"), "web")
        self.assertEqual(c["args"][-1], "0.0.0.0:8443")
        for args, key in ((["--set", "config.web.rateLimitPerSecond=0"], "rateLimitPerSecond"),
                          (["--set", "config.web.publiRead=true"], "publiRead"),
                          (["--set", "web.service.type=External"], "type"),
                          (["--set", "web.ingress.pathType=Regex"], "pathType")):
            with self.subTest(args=args):
                result = helm("template", "sk", str(CHART), *args, check=False)
                self.assertNotEqual(result.returncode, 0)
                self.assertIn(key, result.stderr)

    def test_ingress_and_httproute_when_enabled(self):
        objects = render("web-exposed.yaml")
        api = [s for s in by_kind(objects, "Service") if s["metadata"]["name"] == "sk-sentryk8s-web"][0]
        self.assertEqual(api["spec"]["type"], "LoadBalancer")
        ingress = one(objects, "Ingress", "web")
        self.assertEqual(ingress["spec"]["ingressClassName"], "nginx")
        self.assertEqual(ingress["spec"]["tls"], [{"hosts": ["status.example.org"], "secretName": "status-tls"}])
        [rule] = ingress["spec"]["rules"]
        self.assertEqual(rule["host"], "status.example.org")
        self.assertEqual([(p["path"], p["pathType"], p["backend"]["service"]) for p in rule["http"]["paths"]],
                         [("/api", "Prefix", {"name": "sk-sentryk8s-web", "port": {"name": "http"}}),
                          ("/ping", "Prefix", {"name": "sk-sentryk8s-web", "port": {"name": "http"}})])
        self.assertEqual(annotations(ingress)["cert-manager.io/cluster-issuer"], "letsencrypt")
        route = one(objects, "HTTPRoute", "web")
        self.assertEqual(route["apiVersion"], "gateway.networking.k8s.io/v1")
        self.assertEqual(route["spec"]["parentRefs"],
                         [{"name": "public", "namespace": "gateway-system", "sectionName": "https"}])
        self.assertEqual(route["spec"]["hostnames"], ["status.example.org"])
        [rule] = route["spec"]["rules"]
        self.assertEqual(rule["backendRefs"], [{"name": "sk-sentryk8s-web", "port": 8080}])
        self.assertEqual([m["path"] for m in rule["matches"]],
                         [{"type": "PathPrefix", "value": "/api"}, {"type": "PathPrefix", "value": "/ping"}])
        self.assertEqual(labels(route)["gateway-access"], "public")
        # Autoscaling off: a fixed replica count and no web HPA.
        self.assertEqual(one(objects, "Deployment", "web")["spec"]["replicas"], 3)
        self.assertEqual([h for h in by_kind(objects, "HorizontalPodAutoscaler")
                          if labels(h)["app.kubernetes.io/component"] == "web"], [])
        # Misconfigurations fail with a message naming the value.
        for extra, message in ((["web.httpRoute.enabled=true"], "web.httpRoute.parentRefs"),
                               (["web.ingress.enabled=true", "web.ingress.host=", "web.ingress.tlsSecretName=x"],
                                "web.ingress.host"),
                               (["web.autoscaling.minReplicas=5", "web.autoscaling.maxReplicas=2"], "minReplicas"),
                               (["web.resources.requests=null"], "web.resources.requests.cpu")):
            with self.subTest(extra=extra):
                result = helm("template", "sk", str(CHART), *values_args(None, extra), check=False)
                self.assertNotEqual(result.returncode, 0)
                self.assertIn(message, result.stderr)

    def test_network_policy_opens_the_api_port_and_scrapes_like_the_other_roles(self):
        for value_set, api_from in ((None, None), ("web-exposed.yaml", [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": "ingress-nginx"}}}])):
            with self.subTest(values=value_set or "defaults"):
                objects = render(value_set)
                policy = one(objects, "NetworkPolicy", "web")
                by_port = {rule["ports"][0]["port"]: rule.get("from") for rule in policy["spec"]["ingress"]}
                self.assertEqual(set(by_port), {"http", "metrics"})
                self.assertEqual(by_port["http"], api_from)
                # The metrics port is open to exactly who may scrape the worker.
                worker = one(objects, "NetworkPolicy", "worker")
                self.assertEqual(by_port["metrics"], worker["spec"]["ingress"][0].get("from"))
                egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
                self.assertIn(5432, egress_ports)
        # Web pods reach the bundled PostgreSQL but not the bundled RabbitMQ.
        objects = render()
        web_pod = one(objects, "Deployment", "web")["spec"]["template"]["metadata"]["labels"]
        for component, allowed in (("postgresql", True), ("rabbitmq", False)):
            policy = one(objects, "NetworkPolicy", component)
            peers = policy["spec"]["ingress"][0]["from"]
            self.assertEqual(any(selector_matches(p["podSelector"], web_pod) for p in peers), allowed, component)

    def test_disabled_web_renders_nothing_of_it(self):
        objects = render(extra=["web.enabled=false", "metrics.serviceMonitor.enabled=true",
                                "web.ingress.enabled=true", "metrics.prometheusRule.enabled=true"])
        self.assertEqual([o["metadata"]["name"] for o in objects
                          if labels(o).get("app.kubernetes.io/component") == "web"], [])
        rule = one(objects, "PrometheusRule")
        self.assertNotIn("SentryK8sWebDown", yaml.safe_dump(rule))


class MatchesTheBinary(unittest.TestCase):
    """The chart's config file and flags are what the real binary accepts."""

    @classmethod
    def setUpClass(cls):
        cls.binary = os.environ.get("SENTRYK8S_BIN") or str(ROOT / "target" / "debug" / "sentryk8s")
        if not pathlib.Path(cls.binary).is_file():
            raise AssertionError(f"{cls.binary} missing: run through helm/tests/run.sh (it builds it)")
        cls.default_keys = flatten(tomllib.loads((ROOT / "src" / "config" / "default.toml").read_text()))

    def test_config_file_keys_are_the_binarys_keys_and_it_accepts_them(self):
        for value_set in VALUE_SETS:
            with self.subTest(values=value_set or "defaults"):
                objects = render(value_set)
                text = main_config(objects)
                rendered = flatten(tomllib.loads(text))
                unknown = set(rendered) - set(self.default_keys)
                self.assertEqual(unknown, set())
                for key, value in rendered.items():
                    self.assertIs(type(value), type(self.default_keys[key]), key)
                # Everything but the secrets (from the environment) and the flags is in the file.
                self.assertEqual(set(self.default_keys) - set(rendered), {"database_url", "amqp_url",
                                                                          "scheduler.shard_from_hostname",
                                                                          "worker.concurrency"})
                with tempfile.NamedTemporaryFile("w", suffix=".toml") as f:
                    f.write(text)
                    f.flush()
                    env = {"PATH": os.environ.get("PATH", ""), "SENTRYK8S_CONFIG": f.name,
                           "SENTRYK8S_DATABASE_URL": "postgres://u:p@db.example.com:5432/sentryk8s",
                           "SENTRYK8S_AMQP_URL": "amqp://u:p@mq.example.com:5672/%2f"}
                    result = subprocess.run([self.binary, "config"], env=env, capture_output=True, text=True)
                    self.assertEqual(result.returncode, 0, result.stderr)
                    effective = tomllib.loads(result.stdout)
                    self.assertEqual(effective["amqp"]["queue"], rendered["amqp.queue"])
                    self.assertEqual(effective["log_format"], "json")

    def test_every_flag_the_chart_passes_exists(self):
        for value_set in VALUE_SETS:
            for obj in render(value_set):
                spec = pod_spec(obj)
                if spec is None or labels(obj)["app.kubernetes.io/component"] not in SENTRYK8S_ROLES:
                    continue
                for c in containers(spec):
                    args = c["args"]
                    words = [a for a in args if not a.startswith("-")]
                    subcommand = words[:2] if words[0] == "checks" else words[:1]
                    help_text = subprocess.run([self.binary, *subcommand, "--help"], capture_output=True,
                                               text=True, check=True).stdout
                    for flag in (a for a in args if a.startswith("--")):
                        with self.subTest(container=c["name"], flag=flag):
                            self.assertRegex(help_text, rf"(^|\s){re.escape(flag)}([\s,=]|$)")


def main_config(objects):
    """config.toml of the long-running roles' ConfigMap."""
    name = one(objects, "StatefulSet", "scheduler")["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
    return next(o for o in by_kind(objects, "ConfigMap") if o["metadata"]["name"] == name)["data"]["config.toml"]


def flatten(table, prefix=""):
    out = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def load_values(value_set):
    """The chart's defaults with a value set merged over them (maps merge, other values replace)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    if value_set:
        merge(values, yaml.safe_load(value_path(value_set).read_text()))
    return values


def merge(base, over):
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value


def one_container(obj, name):
    found = [c for c in pod_spec(obj)["containers"] if c["name"] == name]
    assert len(found) == 1, f"{obj['metadata']['name']}: container {name}"
    return found[0]


if __name__ == "__main__":
    unittest.main()
