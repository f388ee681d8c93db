"""The refresher's defaults the checker assumes (REFRESHER_DEFAULTS: what a
setting is when the manifests leave it out) are the ones clap gives the
refresher: `refresher once --help` and `refresher exporter --help` print them
as `[env: NAME=] [default: VALUE]`. Needs the debug binary, which `make test`
builds before it runs `make check-manifests`."""

from __future__ import annotations

import os
import re
import subprocess
import unittest
from pathlib import Path

from forex_check.workloads import REFRESHER_DEFAULTS

from .harness import REPO

REFRESHER = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target") / "debug" / "refresher"


def help_defaults(mode: str) -> dict[str, str]:
    """{environment variable: default} of a refresher mode's --help."""
    out = subprocess.run([str(REFRESHER), mode, "--help"], capture_output=True, text=True, timeout=60, check=True).stdout
    return dict(re.findall(r"\[env: (\w+)=?[^\]]*\] \[default: ([^\]]*)\]", " ".join(out.split())))


class RefresherDefaults(unittest.TestCase):
    def setUp(self):
        if not REFRESHER.is_file():
            self.fail(f"{REFRESHER} is missing: run `make build` first (this test reads the refresher's --help)")

    def test_the_checkers_refresher_defaults_are_clap_defaults(self):
        # `once` is the CronJob's mode; the exporter reads RATES_KEY too.
        for mode in ("once", "exporter"):
            defaults = help_defaults(mode)
            for env, value in REFRESHER_DEFAULTS.items():
                self.assertIn(env, defaults, f"`refresher {mode} --help` shows no default for {env}")
                self.assertEqual(
                    defaults[env], value, f"the checker assumes {env}={value} when unset, `refresher {mode}` defaults it to {defaults[env]}"
                )
