"""Monitoring: scrape targets, alert rules and runbooks, metrics, dashboards,
the exporter's Valkey user; and the PromQL and Markdown readers."""

from __future__ import annotations

import json
import unittest

import yaml

from forex_check.rules.monitoring.alerts import markdown_anchors, operator_route, parse_matcher, plain_route, route_of
from forex_check.rules.monitoring.metrics import traefik_service_name, unknown_autoscalers
from forex_check.rules.monitoring.queries import metric_family, promql_selectors
from forex_check.rules.monitoring.scrape import prometheus_seconds

from .harness import ManifestsTestCase


class MonitoringFails(ManifestsTestCase):
    """Monitoring that would watch nothing, or alert without a runbook, fails."""

    def alert_rules(self, change) -> None:
        """Apply change(groups) to the PrometheusRule and to its plain rule
        file alike, so that only the change itself is judged."""
        self.component_object("monitoring/prometheusrule.yaml", "PrometheusRule", "forex", lambda d: change(d["spec"]["groups"]))
        path = self.root / "manifests" / "components" / "monitoring" / "rules" / "forex.rules.yaml"
        doc = yaml.safe_load(path.read_text())
        change(doc["groups"])
        path.write_text(yaml.safe_dump(doc, sort_keys=False))

    @staticmethod
    def rule(groups, alert: str) -> dict:
        return next(r for g in groups for r in g["rules"] if r.get("alert") == alert)

    def dashboard(self, change) -> None:
        path = self.root / "manifests" / "components" / "monitoring" / "dashboards" / "forex-edge.json"
        board = json.loads(path.read_text())
        change(board)
        path.write_text(json.dumps(board, indent=2))

    @staticmethod
    def panel(board, title: str) -> dict:
        return next(p for p in board["panels"] if p.get("title") == title)

    def test_misspelled_servicemonitor_field(self):
        self.component_object(
            "monitoring/servicemonitor.yaml", "ServiceMonitor", "forex-exporter", lambda d: d["spec"]["endpoints"][0].update(intervall="15s")
        )
        self.assert_fails_with(r"FAIL crd-schema", r"ServiceMonitor forex/forex-exporter .*'intervall' was unexpected")

    def test_misspelled_prometheusrule_field(self):
        self.component_object(
            "monitoring/prometheusrule.yaml",
            "PrometheusRule",
            "forex",
            lambda d: self.rule(d["spec"]["groups"], "ForexValkeyDown").update(annotation={"summary": "x"}),
        )
        self.assert_fails_with(r"FAIL crd-schema", r"PrometheusRule forex/forex .*'annotation' was unexpected")

    def test_alert_metric_nothing_exports(self):
        def rename(groups):
            rule = self.rule(groups, "ForexRatesStale")
            rule["expr"] = rule["expr"].replace("forex_snapshot_oldest_rate_timestamp_seconds", "forex_snapshot_oldest_rate_timestamp")

        self.alert_rules(rename)
        self.assert_fails_with(
            r"FAIL metrics",
            r"alert ForexRatesStale: uses forex_snapshot_oldest_rate_timestamp, which no exporter lists in "
            r"manifests/components/monitoring/metrics.yaml \(did you mean forex_snapshot_oldest_rate_timestamp_seconds\?\)",
        )

    def test_dashboard_metric_nothing_exports(self):
        def rename(board):
            target = self.panel(board, "p99 latency (runtime-shim)")["targets"][0]
            target["expr"] = target["expr"].replace("runtime_shim_http_request_duration_seconds_bucket", "runtime_shim_request_seconds_bucket")

        self.dashboard(rename)
        self.assert_fails_with(r"FAIL metrics", r"forex-edge.json panel 'p99 latency \(runtime-shim\)': uses runtime_shim_request_seconds_bucket")

    def test_alert_label_value_the_metric_never_takes(self):
        def misspell(groups):
            rule = self.rule(groups, "ForexSnapshotMissing")
            rule["expr"] = rule["expr"].replace('verdict="missing"', 'verdict="absent"')

        self.alert_rules(misspell)
        self.assert_fails_with(r"FAIL metrics", r"forex_status_verdict\{verdict='absent'\} matches none of the values verdict takes")

    def test_alert_on_a_job_nothing_scrapes(self):
        def rename(groups):
            rule = self.rule(groups, "ForexExporterDown")
            rule["expr"] = rule["expr"].replace('job="forex-exporter"', 'job="exporter"')

        self.alert_rules(rename)
        self.assert_fails_with(r"FAIL metrics", r"alert ForexExporterDown: job 'exporter' is the job of no ServiceMonitor/PodMonitor")

    def test_traefik_service_that_is_no_ingress_backend(self):
        def rename(groups):
            rule = self.rule(groups, "ForexEdgeErrorsTraefik")
            rule["expr"] = rule["expr"].replace("forex-forex-edge-80@kubernetes", "forex-edge-80@kubernetes")

        self.alert_rules(rename)
        self.assert_fails_with(
            r"FAIL metrics",
            r"alert ForexEdgeErrorsTraefik: Traefik names no Ingress backend of the manifests 'forex-edge-80@kubernetes' \(forex-forex-edge-80@kubernetes\)",
        )

    def test_prometheusrule_and_rule_file_differ(self):
        path = self.root / "manifests" / "components" / "monitoring" / "rules" / "forex.rules.yaml"
        doc = yaml.safe_load(path.read_text())
        self.rule(doc["groups"], "ForexValkeyDown")["for"] = "1m"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.assert_fails_with(r"FAIL rule-files", r"PrometheusRule forex/forex .*spec differs from manifests/components/monitoring/rules/forex.rules.yaml \(first at groups\[0\].rules\[\d+\].for\)")

    def test_alert_without_promtool_tests(self):
        def add(groups):
            rule = dict(self.rule(groups, "ForexValkeyDown"), alert="ForexValkeySlow")
            groups[0]["rules"].append(rule)

        self.alert_rules(add)
        self.assert_fails_with(
            r"FAIL rule-files", r"forex.rules.test.yaml: no test where alert ForexValkeySlow fires", r"no test where alert ForexValkeySlow stays quiet"
        )

    def test_runbook_section_that_does_not_exist(self):
        self.alert_rules(lambda groups: self.rule(groups, "ForexQuotaAtRisk")["annotations"].update(runbook_url="manifests/monitoring.md#forex-quota-at-risk"))
        self.assert_fails_with(r"FAIL alerts", r"alert ForexQuotaAtRisk: runbook_url .*has no heading with anchor #forex-quota-at-risk \(did you mean #forexquotaatrisk\?\)")

    def test_runbook_url_may_be_a_full_url(self):
        def absolute(groups):
            for g in groups:
                for r in g["rules"]:
                    r["annotations"]["runbook_url"] = "https://git.forex.dev/forex/forex-edge/blob/main/" + r["annotations"]["runbook_url"]

        self.alert_rules(absolute)
        out = self.run_checker("--no-kubectl")
        self.assertEqual(out.returncode, 0, out.stdout)

    def test_alert_without_severity_or_what_to_do(self):
        def strip(groups):
            rule = self.rule(groups, "ForexEdgeLatencyTraefik")
            rule["labels"].pop("severity")
            rule["annotations"].pop("what_to_do")

        self.alert_rules(strip)
        self.assert_fails_with(
            r"FAIL alerts", r"alert ForexEdgeLatencyTraefik: labels.severity is None", r"alert ForexEdgeLatencyTraefik: annotations.what_to_do is missing"
        )

    def test_scrape_target_selecting_nothing(self):
        self.component_object(
            "monitoring/servicemonitor.yaml",
            "ServiceMonitor",
            "forex-exporter",
            lambda d: d["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/name": "exporter"}),
        )
        self.assert_fails_with(r"FAIL scrape", r"ServiceMonitor forex/forex-exporter .*selector .*exporter.* selects no Service of the manifests in forex")

    def test_scrape_through_a_service_without_selector(self):
        # Such a Service selects no pod (its endpoints are kept by hand): the
        # scrape reaches nothing the manifests make.
        self.component_object("monitoring/exporter.yaml", "Service", "forex-exporter", lambda d: d["spec"].pop("selector"))
        self.assert_fails_with(
            r"FAIL scrape", r"ServiceMonitor forex/forex-exporter .*: endpoints\[0\] via Service forex/forex-exporter .*: the Service selects no pod the manifests make"
        )

    def test_scrape_port_the_service_lacks(self):
        self.component_object(
            "monitoring/runtime-shim/edge-metrics.yaml", "ServiceMonitor", "forex-edge-metrics", lambda d: d["spec"]["endpoints"][0].update(port="http-metrics")
        )
        self.assert_fails_with(r"FAIL scrape", r"ServiceMonitor forex/forex-edge-metrics .*endpoints\[0\] port 'http-metrics' is no port of Service forex/forex-edge-metrics .*\(metrics\)")

    def test_scrape_target_prometheus_may_not_reach(self):
        self.component_object(
            "monitoring/networkpolicies.yaml", "NetworkPolicy", "forex-exporter", lambda d: d["spec"]["ingress"][0]["ports"][0].update(port=9090)
        )
        self.assert_fails_with(
            r"FAIL scrape", r"ServiceMonitor forex/forex-exporter .*no NetworkPolicy lets Prometheus .*reach port 9464 of Deployment forex/forex-exporter"
        )

    def test_scrape_timeout_above_the_interval(self):
        self.component_object(
            "monitoring/servicemonitor.yaml", "ServiceMonitor", "forex-exporter", lambda d: d["spec"]["endpoints"][0].update(scrapeTimeout="1m")
        )
        self.assert_fails_with(r"FAIL scrape", r"ServiceMonitor forex/forex-exporter .*endpoint 0: scrapeTimeout 1m is above its interval 15s")

    def test_monitoring_object_without_release_label(self):
        self.component_object("monitoring/prometheusrule.yaml", "PrometheusRule", "forex", lambda d: d["metadata"]["labels"].pop("release"))
        self.assert_fails_with(r"FAIL scrape", r"PrometheusRule forex/forex .*has no label release: kube-prometheus-stack's Prometheus")

    def alertmanager_route(self, change) -> None:
        """Apply change(route, plain) to the AlertmanagerConfig's spec.route
        (plain False) and to the first route of its plain file (plain True)."""
        self.component_object("monitoring/alertmanagerconfig.yaml", "AlertmanagerConfig", "forex", lambda d: change(d["spec"]["route"], False))
        self.plain_alertmanager_route(lambda route: change(route, True))

    def plain_alertmanager_route(self, change) -> None:
        path = self.root / "manifests" / "components" / "monitoring" / "alertmanager" / "forex.routes.yaml"
        doc = yaml.safe_load(path.read_text())
        change(doc["route"]["routes"][0])
        path.write_text(yaml.safe_dump(doc, sort_keys=False))

    def test_misspelled_alertmanagerconfig_field(self):
        self.component_object(
            "monitoring/alertmanagerconfig.yaml", "AlertmanagerConfig", "forex", lambda d: d["spec"]["route"].update(groupwait="0s")
        )
        self.assert_fails_with(r"FAIL crd-schema", r"AlertmanagerConfig forex/forex .*'groupwait' was unexpected")

    def test_alertmanagerconfig_and_plain_file_differ(self):
        self.plain_alertmanager_route(lambda route: route.update(group_wait="10s"))
        self.assert_fails_with(
            r"FAIL rule-files",
            r"AlertmanagerConfig forex/forex .*spec.route differs from the first route of "
            r"manifests/components/monitoring/alertmanager/forex.routes.yaml \(first at group_wait\)",
        )

    def test_plain_file_without_the_namespace_matcher_the_operator_adds(self):
        self.plain_alertmanager_route(lambda route: route.update(matchers=route["matchers"][:1]))
        self.assert_fails_with(r"FAIL rule-files", r"spec.route differs from the first route of .*forex.routes.yaml \(first at matchers \(length 2 vs 1\)\)")

    def test_critical_alert_routed_with_a_wait(self):
        # Without a group_wait of its own, the route takes its parent's: 30 s
        # in kube-prometheus-stack, past the promise.
        def drop(route, plain):
            route.pop("group_wait" if plain else "groupWait")

        self.alertmanager_route(drop)
        self.assert_fails_with(
            r"FAIL alerts",
            r"alert ForexRatesStale: critical, but the route of AlertmanagerConfig forex/forex .* waits group_wait 30s before notifying",
        )

    def test_alert_without_the_namespace_label_misses_the_route(self):
        self.alert_rules(lambda groups: self.rule(groups, "ForexEdgeErrorsTraefik")["labels"].pop("namespace"))
        self.assert_fails_with(
            r"FAIL alerts",
            r"alert ForexEdgeErrorsTraefik: labels.namespace is None, not 'forex'",
            r"alert ForexEdgeErrorsTraefik: the route of AlertmanagerConfig forex/forex .* matches on label 'namespace', which the rule does not set",
        )

    def test_alert_the_route_does_not_take(self):
        def only_stale_rates(route, plain):
            if plain:
                route["matchers"][0] = 'alertname=~"ForexRates.+"'
            else:
                route["matchers"][0]["value"] = "ForexRates.+"

        self.alertmanager_route(only_stale_rates)
        self.assert_fails_with(r"FAIL alerts", r"alert ForexValkeyDown: its labels do not reach the route of AlertmanagerConfig forex/forex")

    def test_hpa_that_no_autoscaler_of_the_manifests_is(self):
        def misspell(groups):
            rule = self.rule(groups, "ForexEdgeAtMaxReplicas")
            rule["expr"] = rule["expr"].replace("keda-hpa-forex-edge", "keda-forex-edge")

        self.alert_rules(misspell)
        self.assert_fails_with(
            r"FAIL metrics",
            r"alert ForexEdgeAtMaxReplicas: kube_horizontalpodautoscaler_status_current_replicas\{horizontalpodautoscaler=~'forex-edge\|keda-forex-edge'\}: "
            r"'keda-forex-edge' is no autoscaler of the manifests \(forex-edge, keda-hpa-forex-edge\)",
        )

    def test_dashboard_panel_with_a_fixed_data_source(self):
        self.dashboard(lambda board: self.panel(board, "Oldest rate age").update(datasource={"type": "prometheus", "uid": "prometheus"}))
        self.assert_fails_with(r"FAIL dashboards", r"panel 'Oldest rate age' uses data source 'prometheus', not the variable \$\{datasource\}")

    # -- the exporter's Valkey user ----------------------------------------------

    EXPORTER_LINE = "printf 'user exporter on >%s resetkeys %%R~%s %%R~rates:seq %%R~oneframe:calls:* %%R~refresher:last-run resetchannels -@all +get +hgetall "

    def test_exporter_acl_with_a_write_command(self):
        self.replace_text("base/valkey.yaml", self.EXPORTER_LINE, self.EXPORTER_LINE + "+set +del ")
        self.assert_fails_with(
            r"FAIL exporter-acl",
            r"StatefulSet forex/valkey .*ACL user exporter: \+del: more than it needs \(it reads with get, hgetall, info only\)",
            r"ACL user exporter: \+set: more than it needs",
        )

    def test_exporter_acl_with_a_writable_key(self):
        self.replace_text("base/valkey.yaml", self.EXPORTER_LINE, self.EXPORTER_LINE.replace("%%R~rates:seq", "~rates:seq"))
        self.assert_fails_with(r"FAIL exporter-acl", r"ACL user exporter: ~rates:seq: may write keys")

    def test_exporter_acl_missing_a_key_and_granting_a_channel(self):
        line = self.EXPORTER_LINE.replace(" %%R~refresher:last-run", "").replace("resetchannels", "resetchannels &%s")
        self.replace_text("base/valkey.yaml", self.EXPORTER_LINE, line)
        self.replace_text("base/valkey.yaml", '"$VALKEY_EXPORTER_PASSWORD" "$RATES_KEY"\n', '"$VALKEY_EXPORTER_PASSWORD" "$RATES_KEY" "$RATES_CHANNEL"\n')
        self.assert_fails_with(
            r"FAIL exporter-acl",
            r"ACL user exporter: cannot read refresher:last-run, which it reads",
            r"ACL user exporter: &rates_updated: may use a Pub/Sub channel",
        )

    def test_exporter_whose_valkey_user_is_never_written(self):
        self.kustomization("components/monitoring", lambda k: k.pop("patches"))
        self.assert_fails_with(r"FAIL exporter-acl", r"\[overlay production\] .*ACL user exporter: VALKEY_EXPORTER_PASSWORD not set, so the user is never written")

    def test_exporter_reading_another_rates_key(self):
        def key(d):
            d["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "RATES_KEY", "value": "rates:v2"})

        self.component_object("monitoring/exporter.yaml", "Deployment", "forex-exporter", key)
        self.assert_fails_with(
            r"FAIL rates-contract",
            r"Deployment forex/forex-exporter .*container 'exporter' reads RATES_KEY 'rates:v2', not the SpinApp's rates_key 'rates'",
            r"FAIL exporter-acl",
            r"ACL user exporter: cannot read rates:v2, which it reads",
        )

    def test_example_exporter_url_of_another_user(self):
        self.edit(
            "secrets.example.yaml",
            "Secret",
            "valkey",
            lambda d: d["stringData"].update({"exporter-url": d["stringData"]["exporter-url"].replace("rediss://exporter:", "rediss://edge:")}),
        )
        self.assert_fails_with(r"FAIL exporter-acl", r"Secret forex/valkey .*exporter-url \(the exporter's VALKEY_URL\) must log in as exporter")


class MonitoringReaders(unittest.TestCase):
    """The PromQL and Markdown readers behind the monitoring rules."""

    def names(self, expr: str) -> list[str]:
        return [name for name, _ in promql_selectors(expr)]

    def test_selectors_skip_functions_keywords_label_lists_and_durations(self):
        expr = (
            'sum by (service, le) (rate(a_bucket{service="x", code=~"5.."}[$__rate_interval])) / on (service) group_left (le) '
            "sum without (pod) (b_total offset 5m) > bool 0.3 and c unless absent(up{job=\"j\"}) or vector(1) * inf"
        )
        self.assertEqual(self.names(expr), ["a_bucket", "b_total", "c", "up"])
        self.assertEqual(promql_selectors('x{a="}", b!~"c|d"}'), [("x", [("a", "=", "}"), ("b", "!~", "c|d")])])
        self.assertEqual(self.names("count_values(\"v\", y) + sum(z) by (le)"), ["y", "z"])

    def test_histogram_series_belong_to_their_family(self):
        metrics = {"h_seconds": {"type": "histogram"}, "g": {"type": "gauge"}}
        for name, family in (("h_seconds_bucket", "h_seconds"), ("h_seconds_count", "h_seconds"), ("g", "g"), ("g_count", None)):
            self.assertEqual(metric_family(name, metrics), family, name)

    def test_markdown_anchors_like_github(self):
        text = "# A Guide\n## 10. Watch the refresher\n```\n# not a heading\n```\n### ForexRatesStale\n## Traefik's metrics on K3s\n## A Guide\n"
        self.assertEqual(
            markdown_anchors(text), {"a-guide", "10-watch-the-refresher", "forexratesstale", "traefiks-metrics-on-k3s", "a-guide-1"}
        )

    def test_prometheus_durations(self):
        for text, seconds in (("15s", 15), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600), ("15", None), ("s", None), ("1m x", None)):
            self.assertEqual(prometheus_seconds(text), seconds, text)

    def test_traefik_names_an_ingress_backend(self):
        self.assertEqual(traefik_service_name("forex", {"name": "forex-edge", "port": {"number": 80}}), "forex-forex-edge-80@kubernetes")
        self.assertEqual(traefik_service_name("a.b", {"name": "svc", "port": {"name": "http"}}), "a-b-svc-http@kubernetes")

    def test_hpa_names_against_the_autoscalers(self):
        names = {"forex-edge", "keda-hpa-forex-edge"}
        self.assertEqual(unknown_autoscalers("=", "forex-edge", names), [])
        self.assertEqual(unknown_autoscalers("=~", "forex-edge|keda-hpa-forex-edge", names), [])
        self.assertEqual(unknown_autoscalers("=~", "forex-edge|keda-forex-edge", names), ["keda-forex-edge"])
        self.assertEqual(unknown_autoscalers("=~", "(keda-hpa-)?forex-edge", names), [])
        self.assertEqual(unknown_autoscalers("=~", "shop-.*", names), ["shop-.*"])

    def test_alertmanager_routes_as_the_operator_makes_them(self):
        self.assertEqual(parse_matcher('alertname=~"Forex.+"'), ("alertname", "=~", "Forex.+"))
        self.assertEqual(parse_matcher("severity = critical"), ("severity", "=", "critical"))
        self.assertIsNone(parse_matcher("not a matcher"))
        route = {"receiver": "r", "matchers": [{"name": "alertname", "matchType": "=~", "value": "Forex.+"}], "groupWait": "0s",
                 "routes": [{"matchers": [{"name": "severity", "value": "warning"}], "groupWait": "1m"}]}
        made = operator_route(route, "forex")
        plain = {"receiver": "r", "matchers": ['alertname=~"Forex.+"', 'namespace="forex"'], "group_wait": "0s", "continue": True,
                 "routes": [{"matchers": ["severity=warning"], "group_wait": "1m", "continue": False}]}
        self.assertEqual(made, plain_route(plain))
        # The deepest route that matches, with the timing it inherits.
        self.assertEqual(route_of(made, {"alertname": "ForexQuotaAtRisk", "namespace": "forex", "severity": "warning"})[1], {"group_wait": "1m"})
        self.assertEqual(route_of(made, {"alertname": "ForexRatesStale", "namespace": "forex", "severity": "critical"})[1], {"group_wait": "0s"})
        self.assertIsNone(route_of(made, {"alertname": "KubeHpaMaxedOut", "namespace": "forex", "severity": "warning"}))
        self.assertEqual(route_of(made, {"alertname": "ForexRatesStale", "severity": "critical"}), "namespace")

