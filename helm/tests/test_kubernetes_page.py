"""docs/kubernetes.md: the four steps on a laptop, and every command one the repository provides.

A command on the page is either a script of this repository or minikube,
kubectl, helm, cosign or docker used on what this repository provides: its
files, the objects its chart renders, and the image and chart its release
workflow publishes and signs.
"""

import re
import shlex
import unittest

import yaml

from chart import CHART, MINIKUBE_VALUES, ROOT, render

PAGE = ROOT / "docs" / "kubernetes.md"
TOOLS = {"minikube", "kubectl", "helm", "cosign", "docker"}
# The top-level folders and files a command may name.
REPO_PATH = re.compile(r"^(\./)?(scripts|helm|argocd|examples|docs|\.github)/|^(Dockerfile|Cargo\.toml)$")


def shell_blocks(text):
    """The ```sh blocks of a Markdown text."""
    return re.findall(r"^ *```sh\n(.*?)^ *```", text, re.M | re.S)


def page_commands():
    """Every command of the page's shell blocks, continuation lines joined, as argument lists."""
    found = []
    for block in shell_blocks(PAGE.read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                found.append(shlex.split(line))
    return found


def chart_facts():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    appset = yaml.safe_load((ROOT / "argocd" / "apps" / "applicationset.yaml").read_text())
    repo_url = appset["spec"]["template"]["spec"]["source"]["repoURL"]
    owner, name = re.match(r"https://github\.com/([^/]+)/([^/]+?)(\.git)?$", repo_url).group(1, 2)
    return chart, owner.lower(), name


class KubernetesPage(unittest.TestCase):
    def test_the_four_steps_in_order(self):
        """Start, install, upgrade, Argo CD: each with its commands, and what to expect."""
        headings = re.findall(r"^### (.+)$", PAGE.read_text(), re.M)
        self.assertEqual(headings[:4], ["1. Start", "2. Install", "3. Upgrade", "4. Argo CD"])
        sections = [s for s in re.split(r"^##+ ", PAGE.read_text(), flags=re.M) if re.match(r"\d\. ", s)]
        expected = {
            "1. Start": {"./scripts/minikube.sh"},
            "2. Install": {"minikube", "helm", "kubectl"},
            "3. Upgrade": {"./scripts/minikube.sh"},
            "4. Argo CD": {"kubectl"},
        }
        for section in sections:
            title = section.splitlines()[0]
            with self.subTest(step=title):
                programs = {shlex.split(line)[0] for block in shell_blocks(section)
                            for line in block.replace("\\\n", " ").splitlines() if line.strip()}
                self.assertEqual(programs, expected[title])
        for section in (sections[0], sections[3]):
            self.assertIn("What to expect", section)

    def test_every_command_is_a_repository_script_or_a_known_tool(self):
        commands = page_commands()
        self.assertGreater(len(commands), 10)
        for argv in commands:
            with self.subTest(command=" ".join(argv)):
                program = argv[0]
                if program not in TOOLS:
                    self.assertRegex(program, r"^\./scripts/[a-z_]+\.sh$")
                    self.assertTrue((ROOT / program).is_file(), program)
                # Every file or folder of the repository it names exists.
                for arg in argv[1:]:
                    if REPO_PATH.match(arg):
                        self.assertTrue((ROOT / arg).exists(), arg)

    def test_the_minikube_commands_match_what_the_script_runs_and_the_chart_renders(self):
        script = (ROOT / "scripts" / "minikube.sh").read_text()
        objects = render(MINIKUBE_VALUES, release="sentryk8s", namespace="sentryk8s")
        names = {f"{o['kind'].lower()}/{o['metadata']['name']}" for o in objects}
        pods = {f"{o['metadata']['name']}-{i}" for o in objects if o["kind"] == "StatefulSet"
                for i in range(o["spec"]["replicas"])}
        for argv in page_commands():
            if argv[0] == "helm" and "upgrade" in argv:
                self.assertEqual(argv[argv.index("-f") + 1], MINIKUBE_VALUES)
                self.assertIn('values=helm/sentryk8s/examples/values-minikube.yaml', script)
                self.assertIn("--install", argv)
            if argv[0] == "kubectl" and "rollout" in argv:
                self.assertIn(argv[argv.index("status") + 1], names)
            if argv[0] == "kubectl" and "exec" in argv:
                self.assertIn(argv[argv.index("exec") + 1], pods)
                # What is up, or a token for the web role's API: the binary's own subcommands.
                command = argv[argv.index("--") + 1:]
                self.assertIn(command[:3], (["/usr/local/bin/sentryk8s", "status"],
                                            ["/usr/local/bin/sentryk8s", "tokens", "create"]))
            if argv[0] == "minikube" and "build" in argv:
                self.assertEqual(argv[-1], ".")
                self.assertTrue((ROOT / "Dockerfile").is_file())
        page = PAGE.read_text()
        # The sizes the page states are the script's.
        cpus = re.search(r"^cpus=\$\{SENTRYK8S_MINIKUBE_CPUS:-(\d+)\}$", script, re.M).group(1)
        memory = re.search(r"^memory=\$\{SENTRYK8S_MINIKUBE_MEMORY:-(\d+)\}$", script, re.M).group(1)
        self.assertIn(f"`minikube start --cpus={cpus} --memory={memory}`", page)
        for variable in ("SENTRYK8S_MINIKUBE_CPUS", "SENTRYK8S_MINIKUBE_MEMORY", "SENTRYK8S_MINIKUBE_PROFILE"):
            self.assertIn(variable, page)
            self.assertIn(variable, script)

    def test_published_artifacts_are_the_release_workflows_and_verified_by_its_identity(self):
        chart, owner, name = chart_facts()
        release = (ROOT / ".github" / "workflows" / "release.yml").read_text()
        identity = (f"https://github.com/{owner}/{name}/.github/workflows/release.yml"
                    f"@refs/tags/v{chart['version']}")
        verified, installed = set(), []
        for argv in page_commands():
            if argv[:2] == ["cosign", "verify"]:
                self.assertEqual(argv[argv.index("--certificate-identity") + 1], identity)
                self.assertEqual(argv[argv.index("--certificate-oidc-issuer") + 1],
                                 "https://token.actions.githubusercontent.com")
                verified.add(argv[2])
            if argv[0] == "helm" and any(a.startswith("oci://") for a in argv):
                installed.append(argv)
        self.assertEqual(verified, {f"ghcr.io/{owner}/sentryk8s:{chart['appVersion']}",
                                    f"ghcr.io/{owner}/charts/sentryk8s:{chart['version']}"})
        self.assertEqual(installed, [["helm", "install", "sentryk8s", f"oci://ghcr.io/{owner}/charts/sentryk8s",
                                      "--version", chart["version"], "-n", "sentryk8s", "--create-namespace"]])
        # What the commands verify is what the workflow signs, where it pushes it.
        self.assertIn('cosign sign --yes "$IMAGE@$DIGEST"', release)
        self.assertIn('cosign sign --yes "$CHARTS/sentryk8s@$DIGEST"', release)
        self.assertIn('echo "charts=ghcr.io/${GITHUB_REPOSITORY_OWNER,,}/charts"', release)
        self.assertIn("sbom: true", release)
        self.assertIn("provenance: mode=max", release)

    def test_the_argo_cd_commands_apply_the_repositorys_files(self):
        applied = [argv for argv in page_commands() if argv[0] == "kubectl" and "apply" in argv]
        files = [argv[i + 1] for argv in applied for i, a in enumerate(argv) if a == "-f"]
        self.assertEqual(files, ["argocd/root-application.yaml", "argocd/apps/appproject.yaml", "argocd/oci/"])
        for argv in applied:
            self.assertEqual(argv[1:3], ["-n", "argocd"])


if __name__ == "__main__":
    unittest.main()
