"""The freshness rule: the refresher's schedule keeps rates younger than
spin.toml's max_rate_age."""

from __future__ import annotations

import unittest

from forex_check.rules.freshness import gaps_seconds, parse_schedule

from .harness import ManifestsTestCase


class FreshnessFails(ManifestsTestCase):
    """A schedule or deadline that could let rates grow stale fails."""

    def test_every_five_minutes_is_too_slow(self):
        self.cronjob(lambda spec: spec.update(schedule="*/5 * * * *"))
        self.assert_fails_with(r"FAIL freshness", r"'\*/5 \* \* \* \*' leaves 300 s between runs")

    def test_twice_an_hour_is_too_slow(self):
        self.cronjob(lambda spec: spec.update(schedule="0,30 * * * *"))
        self.assert_fails_with(r"FAIL freshness", r"leaves 1800 s between runs")

    def test_a_run_longer_than_the_interval(self):
        self.cronjob(lambda spec: spec["jobTemplate"]["spec"].update(activeDeadlineSeconds=300))
        self.assert_fails_with(r"FAIL freshness", r"activeDeadlineSeconds 300 is not below the 240 s")

    def test_refresh_deadline_beyond_the_job_deadline(self):
        self.edit("base/refresher.yaml", "ConfigMap", "refresher", lambda d: d["data"].update(REFRESH_DEADLINE="90s"))
        self.assert_fails_with(
            r"FAIL freshness", r"REFRESH_DEADLINE 90s × 2 attempt\(s\) \(backoffLimit 1\) = 180 s is not below activeDeadlineSeconds 170"
        )

    def test_the_limit_is_spin_tomls_max_rate_age(self):
        spin = self.root / "spin.toml"
        text = spin.read_text()
        spin.write_text(text.replace('max_rate_age = { default = "300" }', 'max_rate_age = { default = "200" }'))
        self.assertNotEqual(text, spin.read_text())
        self.assert_fails_with(r"FAIL freshness", r"leaves 240 s between runs; rates must be refreshed in under 200 s")

    def test_spin_toml_without_a_max_rate_age(self):
        spin = self.root / "spin.toml"
        spin.write_text(spin.read_text().replace('max_rate_age = { default = "300" }\n', ""))
        self.assert_fails_with(r"FAIL load: spin.toml: \[variables\] max_rate_age has no default of whole seconds")

    def test_refresh_deadline_the_refresher_cannot_read(self):
        self.edit("base/refresher.yaml", "ConfigMap", "refresher", lambda d: d["data"].update(REFRESH_DEADLINE="1m30s"))
        self.assert_fails_with(r"FAIL freshness", r"'1m30s' is not a duration the refresher accepts")


class ScheduleParsing(unittest.TestCase):
    """The minute-field reader behind the freshness rule."""

    def gap(self, schedule: str) -> int:
        return max(gaps_seconds(parse_schedule(schedule)))

    def test_gaps(self):
        self.assertEqual(self.gap("*/4 * * * *"), 240)  # 56 -> 0 is 4 minutes too
        self.assertEqual(self.gap("*/5 * * * *"), 300)
        self.assertEqual(self.gap("*/7 * * * *"), 420)  # 56 -> 0 is only 4, but 49 -> 56 is 7
        self.assertEqual(self.gap("0,30 * * * *"), 1800)
        self.assertEqual(self.gap("1-59/2 * * * *"), 120)
        self.assertEqual(self.gap("0-10,20-59 * * * *"), 600)
        self.assertEqual(self.gap("7 * * * *"), 3600)
        self.assertEqual(self.gap("@hourly"), 3600)

    def test_refuses_what_it_cannot_reason_about(self):
        for schedule in ("*/4 9-17 * * *", "*/4 * * * 1-5", "@daily", "*/0 * * * *", "61 * * * *", "* * * *", "x * * * *"):
            with self.assertRaises(ValueError, msg=schedule):
                parse_schedule(schedule)

