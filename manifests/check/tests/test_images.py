"""Images: what the project's builds push, tags and digests; and the placeholders."""

from __future__ import annotations

from .harness import ManifestsTestCase


class ImagesFail(ManifestsTestCase):
    """An image the builds do not push, or not pinned where it must be, fails."""

    # -- placeholders ----------------------------------------------------------

    def test_placeholders_are_listed_until_filled_in(self):
        out = self.run_checker("--no-kubectl")
        self.assertEqual(out.returncode, 0, out.stdout)
        listed = self.placeholder_line(out.stdout)
        for placeholder in ("ops@example.com", "rates.example.com", "valkey/valkey:8.1.4@sha256:000…", "registry.example.com/forex/one-frame:0.1.0"):
            self.assertIn(placeholder, listed)

        def email(docs):
            for d in docs:
                d["spec"]["acme"]["email"] = "ops@forex.dev"

        self.component_file("tls-letsencrypt/issuers.yaml", email)
        self.component_object(
            "tls-letsencrypt/certificate.yaml", "Certificate", "forex-edge", lambda d: d["spec"].update(dnsNames=["rates.forex.dev"])
        )

        def host(ops):
            self.op(ops, "/spec/rules/0/host")["value"] = "rates.forex.dev"
            self.op(ops, "/spec/tls")["value"][0]["hosts"] = ["rates.forex.dev"]

        self.ingress_patch("tls-letsencrypt", host)
        out = self.run_checker("--no-kubectl")
        self.assertEqual(out.returncode, 0, out.stdout)
        listed = self.placeholder_line(out.stdout)
        self.assertNotIn("example.com,", listed.replace("registry.example.com", ""))
        self.assertNotIn("ops@", listed)
        self.assertIn("valkey/valkey:8.1.4@sha256:000…", listed)

    # -- image -------------------------------------------------------------

    def test_image_tag_other_than_spin_toml_version(self):
        self.spinapp(lambda spec: spec.update(image="forex-edge:0.2.0"))
        self.assert_fails_with(r"FAIL image", r"\[base\] SpinApp .*tag 0.2.0, not spin.toml's version '0.1.0'")

    def test_image_of_another_app(self):
        self.spinapp(lambda spec: spec.update(image="forex-api:0.1.0"))
        for overlay in ("production", "demo"):
            self.image_entry("forex-edge", lambda e: e.update(name="forex-api", newName="registry.example.com/forex/forex-api"), overlay)
        self.assert_fails_with(r"FAIL image", r"'forex-api:0.1.0' is not what `make push` pushes")

    def test_image_pinned_by_digest_is_fine(self):
        def pin(e):
            e.pop("newTag")
            e.update(newName="127.0.0.1:5000/forex-edge", digest="sha256:" + "1" * 64)

        self.image_entry("forex-edge", pin)
        out = self.run_checker("--no-kubectl")
        self.assertEqual(out.returncode, 0, out.stdout)
        # The pinned image is no placeholder any more; the others still are.
        listed = self.placeholder_line(out.stdout)
        self.assertNotIn("forex-edge:0.1.0@sha256:000", listed)
        self.assertIn("forex-refresher:0.1.0@sha256:000", listed)

    def test_overlay_image_tag_other_than_spin_toml_version(self):
        def retag(e):
            e.pop("digest")
            e.update(newTag="0.2.0")

        self.image_entry("forex-edge", retag)
        self.assert_fails_with(
            r"FAIL image", r"\[overlay production\] SpinApp .*'registry.example.com/forex/forex-edge:0.2.0' has tag 0.2.0, not spin.toml's version"
        )

    def test_overlay_image_of_another_app(self):
        self.image_entry("forex-edge", lambda e: e.update(newName="registry.example.com/forex/forex-api"))
        self.assert_fails_with(
            r"FAIL image", r"'registry.example.com/forex/forex-api:0.1.0@sha256:0+' is not what `make push` pushes"
        )

    def test_overlay_image_without_registry(self):
        self.image_entry("forex-refresher", lambda e: e.pop("newName"), "demo")
        self.assert_fails_with(
            r"FAIL image",
            r"\[overlay demo\] CronJob forex/refresher .*'forex-refresher:0.1.0' has no registry: give the overlay's images: entry "
            r"'forex-refresher' a newName <registry>/<prefix>/forex-refresher",
        )

    def test_refresher_image_tag_other_than_the_crate_version(self):
        self.image_entry("forex-refresher", lambda e: e.update(newTag="0.2.0"), "demo")
        self.assert_fails_with(
            r"FAIL image",
            r"\[overlay demo\] CronJob forex/refresher .*has tag 0.2.0, not refresher/Cargo.toml's version '0.1.0': `make images` tags it",
        )

    def test_emulator_image_follows_its_crate_version(self):
        cargo = self.root / "e2e" / "one-frame" / "Cargo.toml"
        text = cargo.read_text()
        cargo.write_text(text.replace('version = "0.1.0"', 'version = "0.2.0"', 1))
        self.assertNotEqual(text, cargo.read_text())
        self.assert_fails_with(
            r"FAIL image", r"Deployment forex/one-frame .*has tag 0.1.0, not e2e/one-frame/Cargo.toml's version '0.2.0'"
        )

    def test_production_image_not_pinned(self):
        self.image_entry("valkey/valkey", lambda e: e.pop("digest"))
        self.assert_fails_with(r"FAIL image", r"\[overlay production\] StatefulSet forex/valkey .*'valkey/valkey:8.1.4' is not pinned by digest")

    def test_images_entry_matching_no_image(self):
        self.image_entry("valkey/valkey", lambda e: e.update(name="docker.io/valkey/valkey"))
        self.assert_fails_with(r"FAIL load", r"images\[2\]: name 'docker.io/valkey/valkey' matches no image", r"valkey/valkey")

    def test_malformed_digest(self):
        self.image_entry("valkey/valkey", lambda e: e.update(digest="sha256:1234"))
        self.assert_fails_with(r"FAIL load", r"digest 'sha256:1234' is not sha256:<64 hex digits>")

    def test_app_named_otherwise_than_the_images_list(self):
        images = self.root / "scripts" / "images.txt"
        text = images.read_text()
        images.write_text(text.replace("forex-edge        spin.toml", "forex-api         spin.toml"))
        self.assertNotEqual(text, images.read_text())
        self.assert_fails_with(r"FAIL image", r"spin.toml \[application\] name 'forex-edge' is not the image scripts/images.txt builds from spin.toml \(forex-api\)")

    def test_image_versions_follow_the_crate_the_images_list_names(self):
        cargo = self.root / "runtime-shim" / "Cargo.toml"
        cargo.write_text(cargo.read_text().replace('version = "0.1.0"', 'version = "0.3.0"', 1))
        images = self.root / "scripts" / "images.txt"
        images.write_text(images.read_text().replace("one-frame         e2e/one-frame", "one-frame         runtime-shim"))
        self.assert_fails_with(
            r"FAIL image", r"\[overlay demo\] Deployment forex/one-frame .*has tag 0.1.0, not runtime-shim/Cargo.toml's version '0.3.0'"
        )
