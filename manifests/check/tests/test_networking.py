"""Paths, selectors, disruption budgets and references."""

from __future__ import annotations

import yaml

from .harness import ManifestsTestCase


class NetworkingFails(ManifestsTestCase):
    """A path, selector, budget or reference that leads nowhere fails."""

    # -- paths ---------------------------------------------------------------

    def test_readiness_path_the_app_does_not_serve(self):
        self.spinapp(lambda spec: spec["checks"]["readiness"]["httpGet"].update(path="/ready"))
        self.assert_fails_with(r"FAIL paths", r"checks.readiness path '/ready' is not a health path the edge serves")

    def test_ingress_path_the_app_does_not_serve(self):
        self.edit("base/ingress.yaml", "Ingress", "forex-edge", lambda d: d["spec"]["rules"][0]["http"]["paths"][0].update(path="/rate"))
        self.assert_fails_with(r"FAIL paths", r"path '/rate' \(Exact\) routes to nothing the edge serves")

    # -- selectors -----------------------------------------------------------

    def network_policy(self, name: str, change) -> None:
        self.edit("base/networkpolicies.yaml", "NetworkPolicy", name, lambda d: change(d["spec"]))

    def test_network_policy_selecting_no_pod(self):
        self.network_policy("valkey", lambda spec: spec["podSelector"]["matchLabels"].update({"app.kubernetes.io/name": "redis"}))
        self.assert_fails_with(r"FAIL selectors", r"NetworkPolicy forex/valkey .*spec.podSelector .*redis.* selects no pod")

    def test_network_policy_peer_selecting_no_pod(self):
        self.network_policy(
            "valkey", lambda spec: spec["ingress"][0]["from"][0]["podSelector"]["matchLabels"].update({"core.spinkube.dev/app-name": "edge"})
        )
        self.assert_fails_with(r"FAIL selectors", r"spec.ingress\[0\].from\[0\].podSelector .* selects no pod")

    def test_service_selecting_no_pod(self):
        self.edit("base/valkey.yaml", "Service", "valkey-read", lambda d: d["spec"]["selector"].update({"app.kubernetes.io/name": "valkey-server"}))
        self.assert_fails_with(r"FAIL selectors", r"Service forex/valkey-read .*spec.selector .* selects no pod")

    # -- disruption ----------------------------------------------------------

    def pdb(self, name: str, change) -> None:
        self.edit("base/disruptionbudgets.yaml", "PodDisruptionBudget", name, lambda d: change(d["spec"]))

    def test_spinapp_without_disruption_budget(self):
        path = self.root / "manifests" / "base" / "disruptionbudgets.yaml"
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d and d["metadata"]["name"] != "forex-edge"]
        path.write_text(yaml.safe_dump_all(docs))
        self.assert_fails_with(r"FAIL disruption", r"SpinApp forex/forex-edge .*no PodDisruptionBudget selects its pods")

    def test_edge_budget_that_blocks_every_drain(self):
        # With a fixed count; an autoscaled edge's budget: test_autoscaling.py.
        self.without_autoscaling(replicas=2)
        self.pdb("forex-edge", lambda spec: spec.update(minAvailable=2))
        self.assert_fails_with(r"FAIL disruption", r"allows no disruption of SpinApp forex/forex-edge .*'s 2 replicas")

    def test_budget_selecting_no_pod(self):
        self.pdb("valkey", lambda spec: spec["selector"]["matchLabels"].update({"app.kubernetes.io/name": "valkey-0"}))
        self.assert_fails_with(r"FAIL selectors", r"PodDisruptionBudget forex/valkey .*selects no pod")

    def test_two_budgets_over_one_workload(self):
        everything = {"matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "Exists"}]}
        self.pdb("valkey", lambda spec: spec.update(selector=everything))
        self.assert_fails_with(
            r"FAIL disruption", r"selects the pods of several workloads", r"its pods are under several PodDisruptionBudgets"
        )

    # -- references --------------------------------------------------------

    def test_misspelled_secret_key(self):
        def misspell(container):
            for e in container["env"]:
                if e["name"] == "VALKEY_URL":
                    e["valueFrom"]["secretKeyRef"]["key"] = "refresher_url"

        self.refresher_container(misspell)
        self.assert_fails_with(r"FAIL references", r"key 'refresher_url' of Secret 'valkey'")

