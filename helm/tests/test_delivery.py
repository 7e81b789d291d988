"""The rest of the delivery: Dockerfile, workflows, Argo CD, and that they agree with the chart."""

import re
import shutil
import subprocess
import unittest

import yaml

from chart import CHART, ROOT, helm, one, pod_spec, render


def load(path):
    return [doc for doc in yaml.safe_load_all((ROOT / path).read_text()) if doc]


class ImageAndWorkflows(unittest.TestCase):
    def test_dockerfile_passes_hadolint(self):
        result = subprocess.run(["hadolint", str(ROOT / "Dockerfile")], capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_workflows_pass_actionlint(self):
        workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
        self.assertEqual([w.name for w in workflows], ["ci.yml", "release.yml"])
        # Without ShellCheck on PATH actionlint silently skips the run: scripts (run.sh provides it).
        self.assertIsNotNone(shutil.which("shellcheck"))
        result = subprocess.run(["actionlint", *map(str, workflows)], capture_output=True, text=True, cwd=ROOT)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_image_matches_the_chart(self):
        dockerfile = (ROOT / "Dockerfile").read_text()
        values = yaml.safe_load((CHART / "values.yaml").read_text())
        # The chart runs /usr/local/bin/sentryk8s as the image's user.
        self.assertIn("COPY --from=build /out/sentryk8s /usr/local/bin/sentryk8s", dockerfile)
        user = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.M)
        self.assertEqual(int(user.group(1)), values["podSecurityContext"]["runAsUser"])
        self.assertEqual(int(user.group(2)), values["podSecurityContext"]["runAsGroup"])
        self.assertRegex(dockerfile, r"(?m)^FROM .* AS build$")
        self.assertRegex(dockerfile, r"cargo chef cook --release --locked")
        # The release publishes ghcr.io/<owner>/sentryk8s:<version>; the chart's default is that image
        # for the repository's owner (the one Argo CD pulls from), tagged with appVersion.
        release = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
        self.assertEqual(release_output(release, "image").replace("${GITHUB_REPOSITORY_OWNER,,}", self.owner().lower()),
                         values["image"]["repository"])
        self.assertIn(on_tags(release), (["v*.*.*"],))
        # Every platform's build pushes (by digest) to that repository (test_release.py checks the rest).
        image_job = release["jobs"]["image"]
        push = next(s for s in image_job["steps"] if s.get("uses", "").startswith("docker/build-push-action"))
        self.assertIn("push=true", push["with"]["outputs"])
        chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
        deployment = one(render(), "Deployment", "worker")
        self.assertEqual(pod_spec(deployment)["containers"][0]["image"],
                         f"{values['image']['repository']}:{chart['appVersion']}")

    def test_ci_runs_fmt_clippy_tests_with_services_and_the_chart_checks(self):
        ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
        runs = "\n".join(s.get("run", "") for job in ci["jobs"].values() for s in job["steps"])
        for command in ("cargo fmt --all -- --check", "cargo clippy --all-targets --locked -- -D warnings",
                        "cargo test --locked", "./helm/tests/run.sh"):
            self.assertIn(command, runs)
        services = ci["jobs"]["test"]["services"]
        self.assertTrue(services["postgres"]["image"].startswith("postgres:"))
        self.assertTrue(services["rabbitmq"]["image"].startswith("rabbitmq:"))

    def appset(self):
        return one(load("argocd/apps/applicationset.yaml"), "ApplicationSet")

    def owner(self):
        return repository_owner(self.appset())


class ArgoCD(unittest.TestCase):
    def setUp(self):
        self.appset = one(load("argocd/apps/applicationset.yaml"), "ApplicationSet")
        self.template = self.appset["spec"]["template"]["spec"]
        self.elements = self.appset["spec"]["generators"][0]["list"]["elements"]

    def test_environments_are_pinned(self):
        self.assertEqual({e["env"] for e in self.elements}, {"staging", "production"})
        for element in self.elements:
            with self.subTest(env=element["env"]):
                # A release tag or a commit, never a branch.
                self.assertRegex(element["chartRevision"], r"^(v\d+\.\d+\.\d+|[0-9a-f]{40})$")
                self.assertRegex(element["imageTag"], r"^\d+\.\d+\.\d+$")
        self.assertEqual(self.template["source"]["targetRevision"], "{{ .chartRevision }}")
        self.assertEqual(self.template["source"]["helm"]["parameters"],
                         [{"name": "image.tag", "value": "{{ .imageTag }}"}])

    def test_automated_sync_with_prune_and_self_heal(self):
        for app in [self.template] + [one(load("argocd/root-application.yaml"), "Application")["spec"]]:
            self.assertEqual(app["syncPolicy"]["automated"], {"prune": True, "selfHeal": True})
        self.assertIn("RespectIgnoreDifferences=true", self.template["syncPolicy"]["syncOptions"])

    def test_autoscaled_replicas_are_ignored_and_the_names_match_the_chart(self):
        release = self.template["source"]["helm"]["releaseName"]
        ignored = self.template["ignoreDifferences"]
        self.assertEqual(len(ignored), 2)
        for entry in ignored:
            self.assertEqual((entry["group"], entry["kind"], entry["jsonPointers"]),
                             ("apps", "Deployment", ["/spec/replicas"]))
        objects = render(release=release)
        # The worker and web Deployments, both owned by an HPA.
        self.assertEqual([e["name"] for e in ignored],
                         [one(objects, "Deployment", role)["metadata"]["name"] for role in ("worker", "web")])
        for role in ("worker", "web"):
            self.assertNotIn("replicas", one(objects, "Deployment", role)["spec"])

    def test_environment_values_render_and_lint(self):
        release = self.template["source"]["helm"]["releaseName"]
        self.assertEqual(self.template["source"]["path"], "helm/sentryk8s")
        for element in self.elements:
            with self.subTest(env=element["env"]):
                value_file = self.template["source"]["helm"]["valueFiles"][0].replace("{{ .env }}", element["env"])
                path = (CHART / value_file).resolve()
                self.assertTrue(path.is_file(), path)
                args = ["-f", str(path), "--set", f"image.tag={element['imageTag']}"]
                lint = helm("lint", "--strict", str(CHART), *args, check=False)
                self.assertEqual(lint.returncode, 0, lint.stdout + lint.stderr)
                text = helm("template", release, str(CHART), "--namespace", element["namespace"], *args).stdout
                objects = [o for o in yaml.safe_load_all(text) if o]
                worker = one(objects, "Deployment", "worker")
                self.assertNotIn("replicas", worker["spec"])
                self.assertTrue(pod_spec(worker)["containers"][0]["image"].endswith(":" + element["imageTag"]))
                # The web role too: autoscaled on CPU, scraped (its /metrics has the per-check metrics).
                web = one(objects, "Deployment", "web")
                self.assertNotIn("replicas", web["spec"])
                self.assertTrue(pod_spec(web)["containers"][0]["image"].endswith(":" + element["imageTag"]))
                self.assertEqual(one(objects, "HorizontalPodAutoscaler", "web")["spec"]["scaleTargetRef"]["name"],
                                 web["metadata"]["name"])
                self.assertEqual(one(objects, "ServiceMonitor", "web")["spec"]["endpoints"][0]["port"], "metrics")
                # Every namespace the apps deploy to is allowed by the project.
                project = one(load("argocd/apps/appproject.yaml"), "AppProject")
                self.assertIn(element["namespace"], [d["namespace"] for d in project["spec"]["destinations"]])

    def test_release_workflow_bumps_what_argo_cd_deploys(self):
        release = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
        script = "\n".join(s.get("run", "") for s in release["jobs"]["deploy-staging"]["steps"])
        self.assertIn("argocd/apps/applicationset.yaml", script)
        self.assertIn('select(.env == "staging")', script)
        self.assertIn(".chartRevision = strenv(TAG)", script)
        self.assertIn(".imageTag = strenv(VERSION)", script)
        self.assertIn("staging", {e["env"] for e in self.elements})


class ArgoCDFromOCI(unittest.TestCase):
    """argocd/oci/: the released chart from the registry instead of the Git path."""

    def setUp(self):
        self.app = one(load("argocd/oci/application.yaml"), "Application")
        self.repository = one(load("argocd/oci/repository.yaml"), "Secret")
        self.appset = one(load("argocd/apps/applicationset.yaml"), "ApplicationSet")
        self.git_url = self.appset["spec"]["template"]["spec"]["source"]["repoURL"]
        self.chart_source, self.values_source = self.app["spec"]["sources"]

    def test_the_chart_comes_from_where_the_release_pushes_it(self):
        release = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
        charts = release_output(release, "charts").replace("${GITHUB_REPOSITORY_OWNER,,}",
                                                           repository_owner(self.appset).lower())
        chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
        self.assertEqual(self.chart_source["repoURL"], charts)
        self.assertEqual(self.chart_source["chart"], chart["name"])
        # Pinned to the chart this repository releases now; its image is appVersion's.
        self.assertEqual(self.chart_source["targetRevision"], chart["version"])
        self.assertNotIn("parameters", self.chart_source["helm"])
        # Argo CD fetches OCI charts only from a repository registered with enableOCI.
        self.assertEqual(self.repository["metadata"]["labels"]["argocd.argoproj.io/secret-type"], "repository")
        self.assertEqual(self.repository["stringData"]["url"], self.chart_source["repoURL"])
        self.assertEqual(self.repository["stringData"]["type"], "helm")
        self.assertEqual(self.repository["stringData"]["enableOCI"], "true")
        self.assertFalse(self.chart_source["repoURL"].startswith("oci://"))
        project = one(load("argocd/apps/appproject.yaml"), "AppProject")
        self.assertEqual(self.app["spec"]["project"], project["metadata"]["name"])
        self.assertLessEqual({self.git_url, charts}, set(project["spec"]["sourceRepos"]))
        self.assertIn(self.app["spec"]["destination"]["namespace"],
                      [d["namespace"] for d in project["spec"]["destinations"]])

    def test_values_come_from_git_at_the_same_release_and_render(self):
        chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
        self.assertEqual(self.values_source, {"repoURL": self.git_url, "targetRevision": f"v{chart['version']}",
                                              "ref": "values"})
        [value_file] = self.chart_source["helm"]["valueFiles"]
        self.assertTrue(value_file.startswith("$values/"), value_file)
        path = ROOT / value_file.removeprefix("$values/")
        self.assertTrue(path.is_file(), path)
        release = self.chart_source["helm"]["releaseName"]
        lint = helm("lint", "--strict", str(CHART), "-f", str(path), check=False)
        self.assertEqual(lint.returncode, 0, lint.stdout + lint.stderr)
        text = helm("template", release, str(CHART), "-n", self.app["spec"]["destination"]["namespace"],
                    "-f", str(path)).stdout
        worker = one([o for o in yaml.safe_load_all(text) if o], "Deployment", "worker")
        self.assertTrue(pod_spec(worker)["containers"][0]["image"].endswith(":" + chart["appVersion"]))
        self.assertNotIn("replicas", worker["spec"])

    def test_same_sync_policy_and_ignored_replicas_as_the_git_path(self):
        template = self.appset["spec"]["template"]["spec"]
        for key in ("ignoreDifferences", "syncPolicy"):
            self.assertEqual(self.app["spec"][key], template[key], key)
        self.assertEqual(self.chart_source["helm"]["releaseName"], template["source"]["helm"]["releaseName"])


def release_output(release, name):
    """The expression the release's version step writes as output `name` (e.g. image=ghcr.io/…)."""
    script = "\n".join(s.get("run", "") for s in release["jobs"]["versions"]["steps"])
    return re.search(rf'echo "{name}=(\S+)"', script).group(1)


def repository_owner(appset):
    """The GitHub owner of the repository Argo CD syncs from (and the release publishes under)."""
    return re.match(r"https://github\.com/([^/]+)/", appset["spec"]["template"]["spec"]["source"]["repoURL"]).group(1)


def on_tags(workflow):
    # PyYAML reads the key `on` as True.
    trigger = workflow.get("on", workflow.get(True))
    return trigger["push"]["tags"]


if __name__ == "__main__":
    unittest.main()
