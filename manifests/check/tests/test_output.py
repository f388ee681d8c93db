"""The report: `--format json` prints one JSON object per failure (JSON
Lines: rule, file, object, message) and nothing for a clean tree, with the
same exit code as the text report."""

from __future__ import annotations

import json
import unittest

from forex_check.cli import quoted_object
from forex_check.model import Check, Obj

from .harness import ManifestsTestCase

KEYS = {"rule", "file", "object", "message"}


class JsonReport(ManifestsTestCase):
    def findings(self, *extra: str) -> tuple[int, list[dict]]:
        out = self.run_checker("--no-kubectl", "--format", "json", *extra)
        lines = [json.loads(line) for line in out.stdout.splitlines()]
        for finding in lines:
            self.assertEqual(set(finding), KEYS, finding)
        return out.returncode, lines

    def test_clean_tree_prints_nothing(self):
        code, lines = self.findings()
        self.assertEqual((code, lines), (0, []))

    def test_a_finding_names_its_rule_file_and_object(self):
        self.autoscaler(lambda spec: spec["behavior"]["scaleDown"].update(stabilizationWindowSeconds=60))
        code, lines = self.findings()
        self.assertEqual(code, 1)
        self.assertEqual(
            lines,
            [
                {
                    "rule": "autoscaler-scale-down",
                    "file": "manifests/base/autoscaler.yaml",
                    "object": "HorizontalPodAutoscaler/forex/forex-edge",
                    "message": "HorizontalPodAutoscaler forex/forex-edge (manifests/base/autoscaler.yaml): "
                    "spec.behavior.scaleDown.stabilizationWindowSeconds is 60, under 300 s: a short dip would remove "
                    "pods and their warm caches",
                }
            ],
        )

    def test_the_object_of_a_rule_that_only_quotes_it(self):
        """A rule that records a message only: the object it quotes first."""

        def misspell(container):
            for e in container["env"]:
                if e["name"] == "VALKEY_URL":
                    e["valueFrom"]["secretKeyRef"]["key"] = "refresher_url"

        self.refresher_container(misspell)
        code, lines = self.findings()
        self.assertEqual(code, 1)
        finding = next(f for f in lines if f["rule"] == "references")
        self.assertEqual((finding["file"], finding["object"]), ("manifests/base/refresher.yaml", "CronJob/forex/refresher"))

    def test_a_finding_about_no_object(self):
        spin = self.root / "spin.toml"
        text = spin.read_text()
        spin.write_text(text.replace('"rediss://{{ valkey_host }}"]', '"rediss://{{ valkey_host }}", "https://example.com"]', 1))
        code, lines = self.findings()
        self.assertEqual(code, 1)
        finding = next(f for f in lines if f["rule"] == "outbound")
        self.assertEqual((finding["file"], finding["object"]), (None, None))
        self.assertIn("'https://example.com'", finding["message"])

    def test_a_tree_that_does_not_load(self):
        (self.root / "manifests" / "base" / "autoscaler.yaml").write_text("kind: [\n")
        code, lines = self.findings()
        self.assertEqual(code, 1)
        self.assertEqual(len(lines), 1, lines)
        self.assertEqual(lines[0]["rule"], "load")
        self.assertIn("manifests/base/autoscaler.yaml: not valid YAML", lines[0]["message"])

    def test_text_stays_the_default(self):
        self.autoscaler(lambda spec: spec["behavior"]["scaleDown"].update(stabilizationWindowSeconds=60))
        out = self.run_checker("--no-kubectl")
        self.assertEqual(out.returncode, 1)
        self.assertRegex(out.stdout, r"(?m)^FAIL autoscaler-scale-down: 1 problem\(s\)\n  - HorizontalPodAutoscaler forex/forex-edge ")
        self.assertRegex(out.stdout, r"(?m)^manifests: \d+ objects, 1 check\(s\) failed: autoscaler-scale-down$")


class Findings(unittest.TestCase):
    def test_quoted_object_is_the_first_quoted(self):
        pdb = Obj({"kind": "PodDisruptionBudget", "metadata": {"name": "edge", "namespace": "forex"}}, "manifests/base/b.yaml")
        hpa = Obj({"kind": "HorizontalPodAutoscaler", "metadata": {"name": "edge", "namespace": "forex"}}, "manifests/base/a.yaml")
        refs = {o.ref(): o for o in (pdb, hpa)}
        self.assertIs(quoted_object(f"[overlay demo] {hpa.ref()}: more than {pdb.ref()}", refs), hpa)
        self.assertIsNone(quoted_object("spin.toml: nothing quoted", refs))

    def test_a_finding_is_recorded_once_with_its_first_object(self):
        check, first = Check("x"), Obj({"kind": "A", "metadata": {"name": "a"}}, "kubectl kustomize manifests/base")
        check.fail("same", obj=first)
        check.fail("same", obj=Obj({"kind": "B", "metadata": {"name": "b"}}, "b.yaml"))
        self.assertEqual([(str(f), f.obj) for f in check.failures], [("same", first)])
        self.assertIsNone(first.file)
        self.assertEqual(first.key(), "A//a")
