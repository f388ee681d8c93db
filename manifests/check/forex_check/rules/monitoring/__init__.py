"""The monitoring component (manifests/components/monitoring): what
Prometheus scrapes (scrape.py), the alert rules and their runbooks
(alerts.py), the series alerts and dashboards use (metrics.py, with the
PromQL reader in queries.py), and the exporter's Valkey user (exporter.py)."""
