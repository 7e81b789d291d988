"""The release: versions that must agree, a multi-arch signed image, a signed chart in an OCI registry.

scripts/check_versions.sh and the release workflow's version step are run
for real, on copies of Cargo.toml and Chart.yaml with agreeing and with
mismatched versions; the workflow's jobs are checked for what they publish.
"""

import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import tomllib
import unittest

import yaml

from chart import CHART, ROOT

CHECK = ROOT / "scripts" / "check_versions.sh"
RELEASE = ROOT / ".github" / "workflows" / "release.yml"


def workflow():
    return yaml.safe_load(RELEASE.read_text())


def steps_of(job):
    return workflow()["jobs"][job]["steps"]


def uses(job, action):
    """The steps of a job that use an action (owner/name, any version)."""
    return [s for s in steps_of(job) if s.get("uses", "").split("@")[0] == action]


def runs(job):
    return "\n".join(s.get("run", "") for s in steps_of(job))


class VersionRepo:
    """A copy of the files the version check reads, to set versions in."""

    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = pathlib.Path(self.tmp.name)
        for name in ("scripts/check_versions.sh", "Cargo.toml", "helm/sentryk8s/Chart.yaml"):
            (self.root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, self.root / name)

    def set_cargo(self, version):
        path = self.root / "Cargo.toml"
        text, n = re.subn(r'(?m)^version = "[^"]*"', f'version = "{version}"', path.read_text(), count=1)
        assert n == 1
        path.write_text(text)

    def set_chart(self, key, version):
        path = self.root / "helm" / "sentryk8s" / "Chart.yaml"
        text, n = re.subn(rf'(?m)^{key}: .*$', f'{key}: "{version}"', path.read_text())
        assert n == 1
        path.write_text(text)

    def check(self, *args, env=None):
        environment = {"PATH": os.environ["PATH"]}
        environment.update(env or {})
        return subprocess.run([str(self.root / "scripts" / "check_versions.sh"), *args], capture_output=True,
                              text=True, env=environment)

    def close(self):
        self.tmp.cleanup()


def repository_versions():
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return cargo, chart["version"], chart["appVersion"]


class CheckVersions(unittest.TestCase):
    def setUp(self):
        self.repo = VersionRepo()
        self.version = repository_versions()[0]

    def tearDown(self):
        self.repo.close()

    def test_the_repository_agrees_with_itself_and_its_next_tag(self):
        cargo, chart_version, app_version = repository_versions()
        self.assertEqual({cargo, chart_version, app_version}, {cargo})
        for args in ((), (f"v{cargo}",)):
            result = subprocess.run([str(CHECK), *args], capture_output=True, text=True)
            self.assertEqual((result.returncode, result.stdout, result.stderr), (0, f"{cargo}\n", ""))

    def test_each_mismatch_fails_naming_every_value(self):
        other = "9.8.7"
        cases = {
            "tag": lambda repo: None,
            "Cargo.toml [package] version": lambda repo: repo.set_cargo(other),
            "helm/sentryk8s/Chart.yaml version": lambda repo: repo.set_chart("version", other),
            "helm/sentryk8s/Chart.yaml appVersion": lambda repo: repo.set_chart("appVersion", other),
        }
        for wrong, mutate in cases.items():
            with self.subTest(wrong=wrong):
                repo = VersionRepo()
                self.addCleanup(repo.close)
                mutate(repo)
                tag = f"v{other}" if wrong == "tag" else f"v{self.version}"
                result = repo.check(tag)
                self.assertEqual(result.returncode, 1, result.stdout)
                self.assertEqual(result.stdout, "")
                self.assertIn("the versions disagree; bump them together", result.stderr)
                # Every source is named with its value, the wrong one included.
                for name in cases:
                    value = tag if name == "tag" else (other if name == wrong else self.version)
                    self.assertRegex(result.stderr, rf"(?m)^  {re.escape(name)} +{re.escape(value)}$")

    def test_without_a_tag_the_files_must_still_agree(self):
        self.repo.set_chart("appVersion", "0.0.1")
        result = self.repo.check()
        self.assertEqual(result.returncode, 1)
        self.assertIn("(none given)", result.stderr)

    def test_a_tag_that_is_not_a_version_is_refused(self):
        for tag in ("main", self.version, f"v{self.version}.1", "vX.Y.Z", f"release-{self.version}"):
            with self.subTest(tag=tag):
                result = self.repo.check(tag)
                self.assertEqual(result.returncode, 1)
                self.assertIn(f"tag '{tag}' is not vMAJOR.MINOR.PATCH", result.stderr)

    def test_a_pre_release_tag_must_match_too(self):
        self.repo.set_cargo("1.2.0-rc.1")
        self.repo.set_chart("version", "1.2.0-rc.1")
        self.repo.set_chart("appVersion", "1.2.0-rc.1")
        self.assertEqual(self.repo.check("v1.2.0-rc.1").stdout, "1.2.0-rc.1\n")
        self.assertEqual(self.repo.check("v1.2.0").returncode, 1)

    def test_only_the_packages_version_counts_in_cargo_toml(self):
        # A dependency table before [package] with the tag's version must not satisfy the check.
        path = self.repo.root / "Cargo.toml"
        path.write_text('[dependencies.other]\nversion = "9.8.7"\n\n' + path.read_text())
        self.repo.set_chart("version", "9.8.7")
        self.repo.set_chart("appVersion", "9.8.7")
        result = self.repo.check("v9.8.7")
        self.assertEqual(result.returncode, 1)
        self.assertRegex(result.stderr, rf"(?m)^  Cargo.toml \[package\] version +{re.escape(self.version)}$")

    def test_github_actions_gets_a_one_line_error_annotation(self):
        result = self.repo.check("v9.8.7", env={"GITHUB_ACTIONS": "true"})
        self.assertEqual(result.returncode, 1)
        annotations = [line for line in result.stderr.splitlines() if line.startswith("::error::")]
        self.assertEqual(len(annotations), 1)
        self.assertIn("%0A  tag", annotations[0])
        self.assertNotIn("::error::", self.repo.check("v9.8.7").stderr)


class ReleaseWorkflow(unittest.TestCase):
    def version_step(self):
        steps = [s for s in steps_of("versions") if "check_versions.sh" in s.get("run", "")]
        self.assertEqual(len(steps), 1)
        return steps[0]

    def run_version_step(self, repo, tag):
        """The step's script as GitHub runs it (bash -e -o pipefail), with GitHub's variables."""
        with tempfile.NamedTemporaryFile("r", suffix=".env") as output:
            env = {"PATH": os.environ["PATH"], "GITHUB_REF_NAME": tag, "GITHUB_OUTPUT": output.name,
                   "GITHUB_REPOSITORY_OWNER": "SentryK8s", "GITHUB_ACTIONS": "true"}
            result = subprocess.run(["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c",
                                     self.version_step()["run"]], cwd=repo.root, env=env, capture_output=True,
                                    text=True)
            return result, dict(line.split("=", 1) for line in output.read().splitlines() if line)

    def test_the_version_step_publishes_nothing_on_mismatched_versions(self):
        version = repository_versions()[0]
        repo = VersionRepo()
        self.addCleanup(repo.close)
        result, outputs = self.run_version_step(repo, f"v{version}")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(outputs, {"version": version, "image": "ghcr.io/sentryk8s/sentryk8s",
                                   "charts": "ghcr.io/sentryk8s/charts"})
        for mismatch in ("tag", "cargo", "appVersion"):
            with self.subTest(mismatch=mismatch):
                repo = VersionRepo()
                self.addCleanup(repo.close)
                tag = f"v{version}"
                if mismatch == "tag":
                    tag = "v99.0.0"
                elif mismatch == "cargo":
                    repo.set_cargo("99.0.0")
                else:
                    repo.set_chart("appVersion", "99.0.0")
                result, outputs = self.run_version_step(repo, tag)
                self.assertNotEqual(result.returncode, 0)
                self.assertIn("::error::the versions disagree", result.stderr)
                self.assertEqual(outputs, {})
        # Every other job needs it, so nothing is built or published before it passes.
        for name, job in workflow()["jobs"].items():
            if name != "versions":
                self.assertIn("versions", job["needs"], name)
        self.assertEqual(workflow()["jobs"]["versions"]["outputs"]["version"], "${{ steps.version.outputs.version }}")
        self.assertEqual(self.version_step()["id"], "version")

    def test_the_image_is_built_for_amd64_and_arm64_with_sbom_and_provenance(self):
        job = workflow()["jobs"]["image"]
        platforms = {entry["platform"]: entry["runner"] for entry in job["strategy"]["matrix"]["include"]}
        self.assertEqual(platforms, {"linux/amd64": "ubuntu-24.04", "linux/arm64": "ubuntu-24.04-arm"})
        self.assertEqual(job["runs-on"], "${{ matrix.runner }}")
        self.assertEqual(len(uses("image", "docker/setup-buildx-action")), 1)
        build = uses("image", "docker/build-push-action")
        self.assertEqual(len(build), 1)
        options = build[0]["with"]
        self.assertEqual(options["platforms"], "${{ matrix.platform }}")
        self.assertIs(options["sbom"], True)
        self.assertEqual(options["provenance"], "mode=max")
        self.assertIn("push-by-digest=true", options["outputs"])
        self.assertIn("push=true", options["outputs"])
        self.assertIn("name=${{ needs.versions.outputs.image }}", options["outputs"])
        self.assertEqual(job["permissions"]["packages"], "write")

    def test_the_index_of_both_platforms_is_tagged_and_signed_keylessly(self):
        job = workflow()["jobs"]["manifest"]
        self.assertEqual(set(job["needs"]), {"versions", "image"})
        self.assertEqual(job["permissions"]["id-token"], "write")
        script = runs("manifest")
        self.assertIn('docker buildx imagetools create "${tags[@]}" "${sources[@]}"', script)
        self.assertIn('[ "${#sources[@]}" -eq 2 ]', script)
        meta = uses("manifest", "docker/metadata-action")[0]["with"]
        self.assertIn("type=semver,pattern={{version}}", meta["tags"])
        self.assertEqual(len(uses("manifest", "sigstore/cosign-installer")), 1)
        self.assertIn('cosign sign --yes "$IMAGE@$DIGEST"', script)
        sign = next(s for s in steps_of("manifest") if "cosign sign" in s.get("run", ""))
        self.assertEqual(sign["env"]["DIGEST"], "${{ steps.index.outputs.digest }}")
        # No key anywhere: the signature's identity is the workflow's OIDC token.
        self.assertNotIn("--key", RELEASE.read_text())
        self.assertNotIn("COSIGN_PRIVATE_KEY", RELEASE.read_text())

    def test_the_chart_is_packaged_pushed_as_oci_and_signed(self):
        job = workflow()["jobs"]["chart"]
        self.assertEqual(set(job["needs"]), {"versions", "manifest"})
        self.assertEqual(job["permissions"]["id-token"], "write")
        self.assertEqual(job["permissions"]["packages"], "write")
        script = runs("chart")
        self.assertIn('helm package helm/sentryk8s --destination "$RUNNER_TEMP/chart"', script)
        self.assertIn('helm push "$RUNNER_TEMP/chart/sentryk8s-$VERSION.tgz" "oci://$CHARTS"', script)
        self.assertIn('cosign sign --yes "$CHARTS/sentryk8s@$DIGEST"', script)
        push = next(s for s in steps_of("chart") if "helm push" in s.get("run", ""))
        self.assertEqual(push["env"]["CHARTS"], "${{ needs.versions.outputs.charts }}")
        self.assertEqual(len(uses("chart", "azure/setup-helm")), 1)
        chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
        self.assertEqual(chart["name"], "sentryk8s")

    def test_staging_moves_only_after_the_image_and_the_chart_are_published(self):
        self.assertEqual(set(workflow()["jobs"]["deploy-staging"]["needs"]), {"versions", "manifest", "chart"})


if __name__ == "__main__":
    unittest.main()
