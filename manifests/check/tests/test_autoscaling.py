"""The autoscalers: the base's HorizontalPodAutoscaler and the ScaledObject
of components/autoscaling-keda (checked on top of overlays/production), their
target, their number, what they measure, their minimum against the
PodDisruptionBudget, their scale-down window; and the ScaledObject against
the reduced KEDA CRD and, where it is at hand, the upstream one."""

from __future__ import annotations

import tempfile
import unittest


from .harness import UPSTREAM_CRDS, ManifestsTestCase

KEDA_SET = r"\[overlay production \+ components/autoscaling-keda\]"
SCALED_OBJECT = r"ScaledObject forex/forex-edge \(manifests/components/autoscaling-keda/scaledobject.yaml\)"
HPA = r"HorizontalPodAutoscaler forex/forex-edge \(manifests/base/autoscaler.yaml\)"
UPSTREAM = UPSTREAM_CRDS


class AutoscalingFails(ManifestsTestCase):
    """An autoscaler that would scale nothing, fight another, or block a drain fails."""

    def prometheus_trigger(self, change) -> None:
        self.scaled_object(lambda spec: change(spec["triggers"][0]["metadata"]))

    def crd_patterns(self, problem: str) -> list[str]:
        """The reduced CRD's finding, and upstream's when the checker has it."""
        patterns = [r"FAIL crd-schema", rf"{SCALED_OBJECT}: {problem}"]
        if UPSTREAM:
            patterns.append(rf"{SCALED_OBJECT}: upstream CRD keda.sh_scaledobjects.yaml: {problem}")
        return patterns

    # -- target ------------------------------------------------------------------

    def test_target_renamed(self):
        self.autoscaler(lambda spec: spec["scaleTargetRef"].update(name="forex-api"))
        self.assert_fails_with(
            r"FAIL autoscaler-target",
            rf"{HPA}: scaleTargetRef names Deployment 'forex-api', which no SpinApp of namespace forex makes \(SpinApps: forex-edge\)",
            r"FAIL autoscaler-count",
            r"\[base\] SpinApp forex/forex-edge .*: enableAutoscaling: true, but no HorizontalPodAutoscaler or ScaledObject scales its Deployment",
        )

    def test_target_kind_changed(self):
        self.autoscaler(lambda spec: spec["scaleTargetRef"].update(kind="StatefulSet"))
        self.assert_fails_with(r"FAIL autoscaler-target", rf"{HPA}: scaleTargetRef is StatefulSet 'forex-edge' of apps/v1; the edge's pods belong to the apps/v1 Deployment")

    def test_keda_aimed_at_the_spinapp_itself(self):
        self.scaled_object(lambda spec: spec["scaleTargetRef"].update(apiVersion="core.spinkube.dev/v1alpha1", kind="SpinApp"))
        self.assert_fails_with(r"FAIL autoscaler-target", rf"{SCALED_OBJECT}: scaleTargetRef is SpinApp 'forex-edge' of core.spinkube.dev/v1alpha1")

    def test_enable_autoscaling_removed(self):
        self.spinapp(lambda spec: spec.pop("enableAutoscaling"))
        self.assert_fails_with(
            r"FAIL autoscaler-target",
            rf"{HPA}: scales the Deployment of SpinApp forex/forex-edge .*, which does not set enableAutoscaling: true",
            rf"{SCALED_OBJECT}: scales the Deployment of SpinApp forex/forex-edge",
            r"FAIL replicas",
            r"replicas is missing",
        )

    # -- one autoscaler per SpinApp ---------------------------------------------------

    def test_replicas_added_back(self):
        self.spinapp(lambda spec: spec.update(replicas=2))
        self.assert_fails_with(r"FAIL replicas", r"SpinApp forex/forex-edge .*: replicas is 2 with enableAutoscaling: true")

    def test_hpa_and_scaled_object_at_once(self):
        self.kustomization("components/autoscaling-keda", lambda k: k.pop("patches"))
        self.assert_fails_with(
            r"FAIL autoscaler-count",
            rf"{KEDA_SET} SpinApp forex/forex-edge .*: scaled by 2 autoscalers \({HPA}, {SCALED_OBJECT}\)",
        )

    def test_no_autoscaler(self):
        self.kustomization("base", lambda k: k["resources"].remove("autoscaler.yaml"))
        self.kustomization("components/autoscaling-keda", lambda k: [k.pop("patches"), k.update(resources=[])])
        self.assert_fails_with(
            r"FAIL autoscaler-count",
            r"\[overlay production\] SpinApp forex/forex-edge .*: enableAutoscaling: true, but no HorizontalPodAutoscaler or ScaledObject .*it would stay at one pod",
        )

    # -- what they measure ---------------------------------------------------------------

    def test_cpu_request_removed(self):
        self.spinapp(lambda spec: spec["resources"]["requests"].pop("cpu"))
        self.assert_fails_with(
            r"FAIL autoscaler-metrics", rf"{HPA}: metrics\[0\] \(Resource\) measures cpu, but SpinApp forex/forex-edge .* sets no resources.requests.cpu"
        )

    def test_keda_memory_trigger_without_a_memory_request(self):
        self.scaled_object(lambda spec: spec["triggers"].append({"type": "memory", "metricType": "Utilization", "metadata": {"value": "80"}}))
        self.spinapp(lambda spec: spec["resources"]["requests"].pop("memory"))
        self.assert_fails_with(r"FAIL autoscaler-metrics", rf"{SCALED_OBJECT}: triggers\[1\] \(memory\) measures memory, but SpinApp forex/forex-edge")

    def test_keda_trigger_setting_misspelt(self):
        self.prometheus_trigger(lambda m: m.update(treshold=m.pop("threshold")))
        self.assert_fails_with(
            r"FAIL autoscaler-metrics",
            rf"{SCALED_OBJECT}: triggers\[0\] \(prometheus\): metadata.threshold is missing",
            r"metadata.treshold is not a setting of KEDA's prometheus scaler, which ignores it \(did you mean threshold\?\)",
        )

    def test_keda_threshold_not_a_number(self):
        self.prometheus_trigger(lambda m: m.update(threshold="1k"))
        self.assert_fails_with(r"FAIL autoscaler-metrics", r"triggers\[0\] \(prometheus\): metadata.threshold '1k' is not a positive number")

    def test_keda_query_on_a_metric_nothing_exports(self):
        self.prometheus_trigger(lambda m: m.update(query=m["query"].replace("runtime_shim_http_requests_total", "runtime_shim_requests_total")))
        self.assert_fails_with(
            r"FAIL metrics", rf"{SCALED_OBJECT}: triggers\[0\] \(prometheus\): uses runtime_shim_requests_total, which no exporter lists"
        )

    def test_keda_query_on_a_traefik_service_that_is_no_backend(self):
        self.prometheus_trigger(lambda m: m.update(query=m["query"].replace("forex-forex-edge-80@kubernetes", "forex-edge-80@kubernetes")))
        self.assert_fails_with(r"FAIL metrics", r"triggers\[0\] \(prometheus\): Traefik names no Ingress backend of the manifests 'forex-edge-80@kubernetes'")

    # -- the minimum against the budget ----------------------------------------------------

    def test_min_replicas_1_with_the_budget(self):
        self.autoscaler(lambda spec: spec.update(minReplicas=1))
        self.assert_fails_with(
            r"FAIL autoscaler-min-replicas",
            rf"{HPA}: minReplicas 1: at that minimum PodDisruptionBudget forex/forex-edge .* with minAvailable: 1 lets no pod go.*raise minReplicas \(at least 2\)",
        )

    def test_keda_scaling_to_zero(self):
        self.scaled_object(lambda spec: spec.pop("minReplicaCount"))
        self.assert_fails_with(r"FAIL autoscaler-min-replicas", rf"{SCALED_OBJECT}: minReplicaCount 0: at that minimum PodDisruptionBudget forex/forex-edge")

    def test_budget_of_max_unavailable_zero(self):
        def block(d):
            d["spec"].pop("minAvailable")
            d["spec"]["maxUnavailable"] = 0

        self.edit("base/disruptionbudgets.yaml", "PodDisruptionBudget", "forex-edge", block)
        self.assert_fails_with(
            r"FAIL autoscaler-min-replicas",
            r"PodDisruptionBudget forex/forex-edge .*: maxUnavailable: 0 over the pods of SpinApp forex/forex-edge .*it refuses every eviction",
        )

    def test_budget_as_a_percentage(self):
        self.edit("base/disruptionbudgets.yaml", "PodDisruptionBudget", "forex-edge", lambda d: d["spec"].update(minAvailable="60%"))
        self.assert_fails_with(r"FAIL autoscaler-min-replicas", r"minReplicas 2: at that minimum .* with minAvailable: 60% lets no pod go")

    def test_min_above_max(self):
        self.autoscaler(lambda spec: spec.update(maxReplicas=1))
        self.assert_fails_with(r"FAIL autoscaler-min-replicas", rf"{HPA}: minReplicas 2 is above maxReplicas 1")

    # -- scale-down window ----------------------------------------------------------------

    def test_window_removed(self):
        self.autoscaler(lambda spec: spec["behavior"]["scaleDown"].pop("stabilizationWindowSeconds"))
        self.assert_fails_with(r"FAIL autoscaler-scale-down", rf"{HPA}: spec.behavior.scaleDown.stabilizationWindowSeconds is not set")

    def test_keda_window_too_short(self):
        self.scaled_object(lambda spec: spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"].update(stabilizationWindowSeconds=120))
        self.assert_fails_with(
            r"FAIL autoscaler-scale-down",
            rf"{SCALED_OBJECT}: spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilizationWindowSeconds is 120, under 300 s",
        )

    # -- the KEDA CRD ------------------------------------------------------------------------

    def test_keda_misspelt_field(self):
        # The HPA's name for the field, not KEDA's.
        self.scaled_object(lambda spec: spec.update(minReplicas=spec.pop("minReplicaCount")))
        self.assert_fails_with(*self.crd_patterns(r"spec: Additional properties are not allowed \('minReplicas' was unexpected\)"))

    def test_keda_trigger_value_of_the_wrong_type(self):
        self.prometheus_trigger(lambda m: m.update(threshold=1000))
        self.assert_fails_with(*self.crd_patterns(r"spec.triggers.0.metadata.threshold: 1000 is not of type 'string'"))

    def test_keda_policy_type_only_the_reduced_crd_knows(self):
        """Upstream takes any string here; the HPA KEDA makes would be refused."""
        self.scaled_object(
            lambda spec: spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["policies"][0].update(type="pods")
        )
        self.assert_fails_with(r"FAIL crd-schema", rf"{SCALED_OBJECT}: spec.advanced.*policies.0.type: 'pods' is not one of \['Pods', 'Percent'\]")
        self.assertNotIn("upstream CRD", self.run_checker("--no-kubectl").stdout)

    @unittest.skipUnless(UPSTREAM, "no directory of upstream CRDs (FOREX_UPSTREAM_CRDS, ../shared/k8s/crds)")
    def test_upstream_crds_are_read_where_given(self):
        out = self.run_checker("--no-kubectl")
        self.assertRegex(out.stdout, r"(?m)^ok   crd-schema: .*; ScaledObject, SpinApp, SpinAppExecutor also against the upstream CRDs of ", out.stdout)
        with tempfile.TemporaryDirectory() as empty:
            out = self.run_checker("--no-kubectl", "--upstream-crds", empty)
        self.assertRegex(out.stdout, r"(?m)^ok   crd-schema: .*; no upstream CRDs to compare with$", out.stdout)
