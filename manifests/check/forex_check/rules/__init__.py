"""The rules, in the order they run and print. Each is a function
`(ctx, check)` marked with @rule(name): it reads the Context and records
failures and a one-line summary on its Check; its docstring is its
documentation (`check_manifests.py --list-rules`).

The first four judge the loading itself and see kubectl's renders too; the
project's rules read the checker's own loads, which the kustomize rule
proves equal to what kubectl renders."""

from . import autoscaling, freshness, images, loading, networking, security, spinapp, tls, valkey, valkey_ha
from .monitoring import alerts, exporter, metrics, scrape

RULES = (
    loading.load,
    loading.kustomize_agreement,
    loading.schema,
    loading.crd_schema,
    freshness.freshness,
    spinapp.apply_order,
    spinapp.runtime,
    spinapp.spin_image_executor,
    spinapp.replicas,
    autoscaling.autoscaler_target,
    autoscaling.autoscaler_count,
    autoscaling.autoscaler_metrics,
    autoscaling.autoscaler_min_replicas,
    autoscaling.autoscaler_scale_down,
    spinapp.variables,
    spinapp.outbound,
    spinapp.rates_contract,
    spinapp.kv_stores,
    networking.paths,
    tls.tls,
    valkey.valkey_urls,
    valkey.valkey_tls_only,
    valkey.valkey_certificate,
    valkey.valkey_ca,
    valkey_ha.valkey_ha_quorum,
    valkey_ha.valkey_ha_acl,
    valkey_ha.valkey_ha_tls,
    valkey_ha.valkey_ha_spread,
    valkey_ha.valkey_ha_writes,
    valkey_ha.valkey_sentinel_clients,
    networking.selectors,
    networking.disruption,
    security.secrets,
    security.hardening,
    networking.references,
    images.image,
    scrape.scrape_targets,
    alerts.rule_files,
    alerts.alerts,
    metrics.metrics,
    metrics.dashboards_use_the_data_source_variable,
    exporter.exporter_acl,
    images.placeholders,
)
