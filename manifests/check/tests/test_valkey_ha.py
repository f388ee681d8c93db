"""Valkey without a single point of failure: the Sentinels' quorum, the ACL
users of replication and Sentinel, TLS on every link, the spread over nodes
and the budget, write safety, the Sentinels' clients; and the single Valkey
of components/valkey-single, which the demo overlay uses."""

from __future__ import annotations

from .harness import ManifestsTestCase

VALKEY = "base/valkey.yaml"
SINGLE = "components/valkey-single/valkey.yaml"
# The lines of the data node's config that are not the Sentinel's too.
DATA_TLS_REPLICATION = "'tls-replication yes' \\\n                  'tls-protocols \"TLSv1.2 TLSv1.3\"' \\\n                  'protected-mode yes'"
SENTINEL_TLS_REPLICATION = "'tls-replication yes' \\\n                  'tls-protocols \"TLSv1.2 TLSv1.3\"' \\\n                  'dir /etc/valkey-sentinel'"
REPLICATOR_LINE = "printf 'user replicator on >%s resetkeys resetchannels -@all +psync +sync +replconf +ping\\n'"
SENTINEL_USER = "'user sentinel on >%s resetkeys resetchannels &__sentinel__:hello -@all +ping +info +role +multi +exec +slaveof +replicaof +config|rewrite "


class ValkeyHaFails(ManifestsTestCase):
    """A replicated Valkey that could not fail over, or would do so unsafely, fails."""

    def statefulset(self, change) -> None:
        self.edit(VALKEY, "StatefulSet", "valkey", lambda d: change(d["spec"]))

    def init_env(self, name: str, value: str) -> None:
        def change(spec):
            for e in spec["template"]["spec"]["initContainers"][0]["env"]:
                if e["name"] == name:
                    e["value"] = value

        self.statefulset(change)

    def example(self, key: str, change) -> None:
        self.edit("secrets.example.yaml", "Secret", "valkey", lambda d: d["stringData"].update({key: change(d["stringData"][key])}))

    def env(self, container: dict, name: str) -> dict:
        return next(e for e in container["env"] if e["name"] == name)

    # -- quorum ------------------------------------------------------------

    def test_quorum_of_a_minority(self):
        self.replace_text(VALKEY, "6379 2\\n'", "6379 1\\n'")
        self.assert_fails_with(
            r"FAIL valkey-ha-quorum",
            r"StatefulSet forex/valkey .*container 'sentinel': quorum 1 of `sentinel monitor forex` is not a majority of the 3 Sentinels .*a minority could fail over",
        )

    def test_quorum_above_the_sentinels(self):
        self.replace_text(VALKEY, "6379 2\\n'", "6379 4\\n'")
        self.assert_fails_with(r"FAIL valkey-ha-quorum", r"quorum 4 of `sentinel monitor forex` is not a majority of the 3 Sentinels .*they could never agree")

    def test_two_pods(self):
        self.statefulset(lambda spec: spec.update(replicas=2))
        self.assert_fails_with(
            r"FAIL valkey-ha-quorum",
            r"StatefulSet forex/valkey .*: 2 replica\(s\): Sentinels need at least 3 pods",
            r"init container 'render-config' VALKEY_REPLICAS '3' is not the 2 replicas",
        )

    def test_option_for_a_primary_not_monitored(self):
        self.replace_text(VALKEY, "printf 'sentinel down-after-milliseconds %s 5000\\n' \"$VALKEY_PRIMARY_NAME\"", "printf 'sentinel down-after-milliseconds rates 5000\\n'")
        self.assert_fails_with(r"FAIL valkey-ha-quorum", r"`sentinel down-after-milliseconds rates …` names a primary it does not monitor \(forex\)")

    def test_host_names_without_resolving_them(self):
        self.replace_text(VALKEY, "'sentinel resolve-hostnames yes' \\\n", "")
        self.assert_fails_with(
            r"FAIL valkey-ha-quorum",
            r"container 'sentinel': uses host names \(<field:metadata.name>.valkey-nodes.forex.svc.cluster.local, <\$primary>\) without `sentinel resolve-hostnames yes`",
        )

    def test_monitoring_the_primary_off_its_tls_port(self):
        self.replace_text(VALKEY, "%s %s 6379 2\\n'", "%s %s 6380 2\\n'")
        self.assert_fails_with(r"FAIL valkey-ha-quorum", r"container 'sentinel': monitors the primary on port 6380, not the data nodes' tls-port \(6379\)")

    # -- ACL users ---------------------------------------------------------

    def test_replicator_that_may_read_keys(self):
        self.replace_text(VALKEY, REPLICATOR_LINE, REPLICATOR_LINE.replace("resetkeys resetchannels -@all", "resetkeys ~* resetchannels -@all +@read"))
        self.assert_fails_with(
            r"FAIL valkey-ha-acl",
            r"StatefulSet forex/valkey .*container 'valkey': ACL user replicator: \+@read: grants a whole category",
            r"ACL user replicator: ~\*: may touch keys \(replication sends PSYNC, REPLCONF and PING only, which needs none\)",
        )

    def test_replicator_without_replconf(self):
        self.replace_text(VALKEY, REPLICATOR_LINE, REPLICATOR_LINE.replace(" +replconf", ""))
        self.assert_fails_with(r"FAIL valkey-ha-acl", r"ACL user replicator: cannot run replconf, which it needs")

    def test_sentinel_user_on_every_channel_without_config_rewrite(self):
        self.replace_text(VALKEY, SENTINEL_USER, SENTINEL_USER.replace("&__sentinel__:hello", "allchannels").replace(" +config|rewrite", ""))
        self.assert_fails_with(
            r"FAIL valkey-ha-acl",
            r"ACL user sentinel: allchannels: may use a Pub/Sub channel",
            r"ACL user sentinel: lacks &__sentinel__:hello",
            r"ACL user sentinel: cannot run config\|rewrite, which it needs",
        )

    def test_sentinel_user_with_a_write_command(self):
        self.replace_text(VALKEY, SENTINEL_USER, SENTINEL_USER + "+set ")
        self.assert_fails_with(r"FAIL valkey-ha-acl", r"ACL user sentinel: \+set: more than it needs \(what a Sentinel sends a data node\)")

    def test_no_sentinel_user(self):
        self.replace_text(VALKEY, "printf " + SENTINEL_USER, "printf 'user watcher on >%s resetkeys resetchannels &__sentinel__:hello -@all +ping +info +role +multi +exec +slaveof +replicaof +config|rewrite ")
        self.assert_fails_with(
            r"FAIL valkey-ha-acl",
            r"container 'valkey': defines no ACL user sentinel, the one the Sentinels log in to data nodes as",
        )

    def test_edge_user_that_may_write(self):
        self.replace_text(VALKEY, "-@all +get +subscribe +unsubscribe", "-@all +get +set +subscribe +unsubscribe")
        self.assert_fails_with(r"FAIL valkey-ha-acl", r"ACL user edge: \+set: more than it needs")

    def test_replication_as_default(self):
        self.replace_text(VALKEY, "'masteruser replicator'", "'masteruser default'")
        self.replace_text(VALKEY, "printf 'masterauth %s\\n' \"$VALKEY_REPLICATOR_PASSWORD\"", "printf 'masterauth %s\\n' \"$VALKEY_PASSWORD\"")
        self.assert_fails_with(
            r"FAIL valkey-ha-acl",
            r"container 'valkey': masteruser is 'default': replication must log in as ACL user replicator",
            r"container 'valkey': masterauth is not ACL user replicator's password",
        )

    def test_sentinel_logging_in_as_default_with_another_password(self):
        self.replace_text(VALKEY, "'sentinel auth-user %s sentinel\\n'", "'sentinel auth-user %s default\\n'")
        self.replace_text(VALKEY, "\"$VALKEY_PRIMARY_NAME\" \"$VALKEY_SENTINEL_AUTH_PASSWORD\"", "\"$VALKEY_PRIMARY_NAME\" \"$VALKEY_PASSWORD\"")
        self.assert_fails_with(
            r"FAIL valkey-ha-acl",
            r"container 'sentinel': `sentinel auth-user` is 'default': Sentinel must log in to the data nodes as ACL user sentinel",
            r"container 'sentinel': `sentinel auth-pass` is not ACL user sentinel's password",
        )

    def test_sentinels_that_cannot_log_in_to_each_other(self):
        self.replace_text(VALKEY, "printf 'sentinel sentinel-pass %s\\n' \"$VALKEY_SENTINEL_PASSWORD\"", "printf 'sentinel sentinel-pass %s\\n' \"$VALKEY_SENTINEL_AUTH_PASSWORD\"")
        self.assert_fails_with(r"FAIL valkey-ha-acl", r"container 'sentinel': `sentinel sentinel-pass` is not its requirepass")

    def test_exporter_user_never_written_on_the_replicated_nodes(self):
        self.kustomization("components/monitoring", lambda k: k.pop("patches"))
        self.assert_fails_with(r"FAIL valkey-ha-acl", r"\[overlay production\] .*container 'valkey': ACL user exporter is never written: VALKEY_EXPORTER_PASSWORD not set")

    # -- TLS on each link --------------------------------------------------

    def test_replication_in_clear(self):
        self.replace_text(VALKEY, DATA_TLS_REPLICATION, DATA_TLS_REPLICATION.replace("'tls-replication yes' \\\n                  ", ""))
        self.assert_fails_with(r"FAIL valkey-ha-tls", r"container 'valkey': no `tls-replication yes`: replication \(the data set, passwords\) would cross the network in clear")

    def test_sentinel_connecting_in_clear(self):
        self.replace_text(VALKEY, SENTINEL_TLS_REPLICATION, SENTINEL_TLS_REPLICATION.replace("'tls-replication yes' \\\n                  ", ""))
        self.assert_fails_with(r"FAIL valkey-ha-tls", r"container 'sentinel': no `tls-replication yes`: Sentinel would connect to the data nodes and the other Sentinels in clear")

    def test_sentinel_serving_in_clear(self):
        self.replace_text(VALKEY, "'port 0' \\\n                  'tls-port 26379'", "'port 26379' \\\n                  'tls-port 26380'")
        self.assert_fails_with(
            r"FAIL valkey-tls",
            r"container 'sentinel': opens the plain port 26379",
            r"FAIL valkey-ha-tls",
            r"container 'sentinel': the Sentinel must serve TLS only: `port 0` and a tls-port",
        )

    def test_certificate_without_the_pods_names(self):
        self.edit(VALKEY, "Certificate", "valkey-tls", lambda d: d["spec"]["dnsNames"].remove("*.valkey-nodes.forex.svc.cluster.local"))
        self.assert_fails_with(
            r"FAIL valkey-ha-tls",
            r"\[base\] Certificate forex/valkey-tls .*do not cover 'valkey-0.valkey-nodes.forex.svc.cluster.local', "
            r"'valkey-1.valkey-nodes.forex.svc.cluster.local', 'valkey-2.valkey-nodes.forex.svc.cluster.local' \(replica-announce-ip of StatefulSet",
            r"do not cover .*'valkey-2.valkey-nodes.forex.svc.cluster.local' \(sentinel announce-ip of StatefulSet forex/valkey .*container 'sentinel'",
        )

    def test_replicas_announcing_their_address(self):
        self.replace_text(VALKEY, "printf 'replica-announce-ip %s\\n' \"$me\"\n", "")
        self.assert_fails_with(r"FAIL valkey-ha-tls", r"container 'valkey': no replica-announce-ip: its peers would know it by its pod's address")

    def test_sentinels_url_in_clear(self):
        self.example("sentinels-url", lambda url: url.replace("rediss://", "redis://"))
        self.assert_fails_with(
            r"FAIL valkey-urls",
            r"FAIL valkey-ha-tls",
            r"\[base\] CronJob forex/refresher .*env VALKEY_SENTINELS: redis://:\*\*\*@valkey-sentinel.forex.svc.cluster.local:26379 is a redis:// URL: the Sentinels serve TLS only",
        )

    # -- spread and budget -------------------------------------------------

    def test_pods_not_spread(self):
        self.statefulset(lambda spec: spec["template"]["spec"].pop("affinity"))
        self.assert_fails_with(r"FAIL valkey-ha-spread", r"StatefulSet forex/valkey .*: its pods are not spread over nodes \(kubernetes.io/hostname\)")

    def test_spread_only_preferred(self):
        def preferred(spec):
            anti = spec["template"]["spec"]["affinity"]["podAntiAffinity"]
            term = anti.pop("requiredDuringSchedulingIgnoredDuringExecution")[0]
            anti["preferredDuringSchedulingIgnoredDuringExecution"] = [{"weight": 100, "podAffinityTerm": term}]

        self.statefulset(preferred)
        self.assert_fails_with(r"FAIL valkey-ha-spread", r"its pods are not spread over nodes")

    def spread_over_nodes(self, when_unsatisfiable: str) -> None:
        """The StatefulSet spread by a topology constraint instead of anti-affinity."""

        def spread(spec):
            pod = spec["template"]["spec"]
            pod.pop("affinity")
            pod["topologySpreadConstraints"] = [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": when_unsatisfiable,
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "valkey"}},
                }
            ]

        self.statefulset(spread)

    def test_topology_spread_that_may_stack_pods(self):
        self.spread_over_nodes("ScheduleAnyway")
        self.assert_fails_with(r"FAIL valkey-ha-spread", r"its pods are not spread over nodes")

    def test_topology_spread_that_holds_passes(self):
        self.spread_over_nodes("DoNotSchedule")
        out = self.run_checker("--no-kubectl")
        self.assertEqual(out.returncode, 0, out.stdout)
        self.assertRegex(out.stdout, r"(?m)^ok   valkey-ha-spread: 1 Sentinel topology")

    def test_budget_letting_two_go(self):
        self.edit("base/disruptionbudgets.yaml", "PodDisruptionBudget", "valkey", lambda d: d["spec"].update(maxUnavailable=2))
        self.assert_fails_with(
            r"FAIL valkey-ha-spread",
            r"PodDisruptionBudget forex/valkey .*lets 2 of the 3 pods of StatefulSet forex/valkey .*go at once, not 1: the pods left could lose the primary",
        )

    def test_budget_refusing_every_drain(self):
        self.edit("base/disruptionbudgets.yaml", "PodDisruptionBudget", "valkey", lambda d: d["spec"].update(maxUnavailable=0))
        self.assert_fails_with(
            r"FAIL valkey-ha-spread",
            r"lets 0 of the 3 pods of StatefulSet forex/valkey .*a drain would never finish",
            r"FAIL disruption",
        )

    # -- write safety ------------------------------------------------------

    def test_primary_that_writes_alone(self):
        self.replace_text(VALKEY, "'min-replicas-to-write 1'", "'min-replicas-to-write 0'")
        self.assert_fails_with(r"FAIL valkey-ha-writes", r"container 'valkey': min-replicas-to-write 0: a primary cut off from its replicas would go on taking writes")

    def test_primary_that_stops_writing_with_one_pod_away(self):
        self.replace_text(VALKEY, "'min-replicas-to-write 1'", "'min-replicas-to-write 2'")
        self.assert_fails_with(r"FAIL valkey-ha-writes", r"min-replicas-to-write 2 of 3 pods: writes would stop while one pod is away .*at most 1")

    def test_single_valkey_waiting_for_replicas(self):
        self.replace_text(SINGLE, "'loglevel notice'", "'loglevel notice' 'min-replicas-to-write 1'")
        self.assert_fails_with(
            r"FAIL valkey-ha-writes",
            r"Deployment forex/valkey \(manifests/components/valkey-single/valkey.yaml\): container 'valkey': min-replicas-to-write 1 without replicas",
        )

    # -- the Sentinels' clients --------------------------------------------

    def test_refresher_asking_for_another_primary(self):
        self.refresher_container(lambda c: self.env(c, "VALKEY_PRIMARY_NAME").update(value="rates"))
        self.assert_fails_with(
            r"FAIL valkey-sentinel-clients", r"\[base\] CronJob forex/refresher .*container 'refresher': VALKEY_PRIMARY_NAME 'rates' is not the name the Sentinels monitor \(forex\)"
        )

    def test_refresher_without_the_sentinels(self):
        self.refresher_container(lambda c: c.update(env=[e for e in c["env"] if e["name"] not in ("VALKEY_SENTINELS", "VALKEY_PRIMARY_NAME")]))
        self.assert_fails_with(r"FAIL valkey-sentinel-clients", r"CronJob forex/refresher .*reads VALKEY_URL without VALKEY_SENTINELS: behind its Service are replicas too")

    def test_sentinels_url_naming_the_data_nodes(self):
        self.example("sentinels-url", lambda url: url.replace("valkey-sentinel.forex.svc.cluster.local:26379", "valkey-read.forex.svc.cluster.local:6379"))
        self.assert_fails_with(
            r"FAIL valkey-sentinel-clients",
            r"container 'refresher': VALKEY_SENTINELS rediss://:\*\*\*@valkey-read.forex.svc.cluster.local:6379 reaches no Sentinel: port 6379 of Service valkey-read goes to no Sentinel's tls-port",
        )

    def test_sentinels_url_with_another_password(self):
        self.example("sentinels-url", lambda url: url.replace("EXAMPLE-change-me-sentinel-", "EXAMPLE-change-me-other-"))
        self.assert_fails_with(
            r"FAIL valkey-sentinel-clients", r"VALKEY_SENTINELS rediss://:\*\*\*@valkey-sentinel.* does not log in with the password the Sentinels require"
        )

    # -- the single Valkey (components/valkey-single, the demo overlay) -------

    def test_demo_exporter_asking_sentinels_that_are_not_there(self):
        self.kustomization("overlays/demo", lambda k: k["components"].remove("../../components/valkey-single/monitoring"))
        self.assert_fails_with(
            r"FAIL valkey-sentinel-clients",
            r"\[overlay demo\] Deployment forex/forex-exporter .*container 'exporter': reads VALKEY_SENTINELS, but no Sentinel runs in this set",
            r"FAIL references",
            r"Deployment forex/forex-exporter .*reads key 'sentinels-url' of Secret 'valkey', which the example lacks",
        )

    def test_demo_single_valkey_listed_after_monitoring(self):
        def reorder(k):
            k["components"].remove("../../components/valkey-single")
            k["components"].insert(k["components"].index("../../components/valkey-single/monitoring"), "../../components/valkey-single")

        self.kustomization("overlays/demo", reorder)
        self.assert_fails_with(
            r"FAIL exporter-acl", r"\[overlay demo\] Deployment forex/valkey .*ACL user exporter: VALKEY_EXPORTER_PASSWORD not set, so the user is never written"
        )

    def test_single_valkey_with_a_plain_port(self):
        self.replace_text(SINGLE, "'port 0'", "'port 6380'")
        self.assert_fails_with(r"FAIL valkey-tls", r"Deployment forex/valkey \(manifests/components/valkey-single/valkey.yaml\): container 'valkey': opens the plain port 6380")

    def test_single_valkey_certificate_without_its_service(self):
        self.replace_text("components/valkey-single/kustomization.yaml", "          - valkey.forex.svc.cluster.local\n", "")
        self.assert_fails_with(
            r"FAIL valkey-certificate",
            r"\[overlay demo\] Certificate forex/valkey-tls .*do not cover 'valkey.forex.svc.cluster.local' \(valkey_host of SpinApp forex/forex-edge",
        )

    def test_single_valkey_acl_channel_other_than_the_spinapps(self):
        self.edit(SINGLE, "Deployment", "valkey", lambda d: self.env(d["spec"]["template"]["spec"]["initContainers"][0], "RATES_CHANNEL").update(value="rates_changed"))
        self.assert_fails_with(
            r"FAIL rates-contract",
            r"Deployment forex/valkey \(manifests/components/valkey-single/valkey.yaml\): container 'render-config' RATES_CHANNEL 'rates_changed'",
        )

    def test_single_valkey_example_edge_url_for_the_replicated_one(self):
        self.edit(
            "components/valkey-single/secrets.example.yaml",
            "Secret",
            "valkey",
            lambda d: d["stringData"].update(
                {"edge-url": d["stringData"]["edge-url"].replace("@valkey.forex.svc.cluster.local", "@valkey-read.forex.svc.cluster.local")}
            ),
        )
        self.assert_fails_with(
            r"FAIL outbound",
            r"\[overlay demo\] Secret forex/valkey \(manifests/components/valkey-single/secrets.example.yaml\): edge-url's host is not the SpinApp's valkey_host \(valkey.forex.svc.cluster.local:6379\)",
        )
