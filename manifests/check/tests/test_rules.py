"""The rule list: every rule runs once, under its own name, documented."""

from __future__ import annotations

import subprocess
import sys
import unittest

from forex_check.rules import RULES

from .harness import CHECKER


class RuleList(unittest.TestCase):
    def test_every_rule_has_a_unique_name_and_a_docstring(self):
        names = [rule.rule_name for rule in RULES]
        self.assertEqual(len(names), len(set(names)), names)
        for rule in RULES:
            self.assertTrue((rule.__doc__ or "").strip(), f"rule {rule.rule_name} has no docstring")

    def test_list_rules_prints_each_name_and_its_documentation_in_order(self):
        out = subprocess.run([sys.executable, str(CHECKER), "--list-rules"], capture_output=True, text=True, timeout=60, check=True).stdout
        listed = [line for line in out.splitlines() if line and not line.startswith(" ")]
        self.assertEqual(listed, [rule.rule_name for rule in RULES])
        self.assertIn("    Lists, for each set an operator applies, the placeholders", out)
