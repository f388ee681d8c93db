"""Tests of check_docs.py: GitHub's slugs, and each kind of broken link found.

    python3 -m unittest discover -s scripts -p 'test_*.py'

Each test writes a small git repository in a temporary directory and runs
the checker against it with --root.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
import unittest
from contextlib import redirect_stdout
from pathlib import Path

import check_docs


class Slugs(unittest.TestCase):
    def test_github_slug_rules(self):
        cases = {
            "Quick start": "quick-start",
            "10. Watch the refresher": "10-watch-the-refresher",
            "On Spin: the 40 ms, and what is Spin's own": "on-spin-the-40-ms-and-what-is-spins-own",
            "`refresher status`": "refresher-status",
            "The same app on real Spin": "the-same-app-on-real-spin",
            "How it differs from `spin up`": "how-it-differs-from-spin-up",
            "[Monitoring](#x) and *more*": "monitoring-and-more",
            "snake_case stays, _emphasis_ goes": "snake_case-stays-emphasis-goes",
            "A  double  space": "a--double--space",
            "Café & Ünïcode": "café--ünïcode",
        }
        for heading, expected in cases.items():
            self.assertEqual(check_docs.slug(check_docs.heading_text(heading)), expected, heading)

    def test_repeated_headings_and_explicit_anchors(self):
        text = "# Notes\n\n## Notes\n\nNotes\n-----\n\n<a id=\"here\"></a>\n```\n# not a heading\n```\n"
        self.assertEqual(check_docs.anchors(text), {"notes", "notes-1", "notes-2", "here"})


class Links(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.root = Path(self.dir.name)
        subprocess.run(["git", "init", "-q", str(self.root)], check=True)
        (self.root / ".gitignore").write_text("build/\n")
        (self.root / "build").mkdir()
        (self.root / "build" / "out.md").write_text("# Out\n")
        (self.root / "docs").mkdir()
        (self.root / "docs" / "guide.md").write_text("# Guide\n\n## Install it\n\ntext\n")
        (self.root / "src").mkdir()
        (self.root / "src" / "main.rs").write_text("fn main() {}\n" * 30)

    def tearDown(self):
        self.dir.cleanup()

    def run_checker(self, readme: str, *args: str) -> tuple[int, list[str]]:
        (self.root / "README.md").write_text(readme)
        out = io.StringIO()
        with redirect_stdout(out):
            code = check_docs.main(["--root", str(self.root), *args])
        return code, [line for line in out.getvalue().splitlines() if line]

    def test_links_that_resolve(self):
        code, lines = self.run_checker(
            "# Top\n\nSee [the guide](docs/guide.md#install-it), [top](#top), [src](src/),\n"
            "[main](./src/main.rs#L3), ![img](docs/guide.md), [abs](/docs/guide.md),\n"
            "[ref]: docs/guide.md\n<a href=\"docs/guide.md\">x</a> [web](https://example.com/nowhere)\n"
            "`[not a link](nowhere.md)`\n\n```\n[not a link](nowhere.md)\n```\n"
        )
        self.assertEqual((code, lines), (0, []))

    def test_each_broken_link_gets_a_line(self):
        code, lines = self.run_checker(
            "# Top\n\n[a](docs/missing.md)\n[b](docs/guide.md#uninstall)\n[c](#nowhere)\n"
            "[d](../outside.md)\n[e](build/out.md)\n[f\nacross lines](docs/gone.md)\n"
        )
        self.assertEqual(code, 1)
        self.assertEqual(
            lines,
            [
                "README.md:3: docs/missing.md: no file or directory docs/missing.md",
                "README.md:4: docs/guide.md#uninstall: no heading or anchor #uninstall in docs/guide.md",
                "README.md:5: #nowhere: no heading or anchor #nowhere in this file",
                "README.md:6: ../outside.md: leads outside the repository",
                "README.md:7: build/out.md: build/out.md exists but is not in the repository (ignored by git)",
                "README.md:9: docs/gone.md: no file or directory docs/gone.md",
            ],
        )

    def test_verbose_lists_external_links_without_fetching(self):
        code, lines = self.run_checker("[web](https://example.invalid/x)\n", "--verbose")
        self.assertEqual(code, 0)
        self.assertIn("README.md:1: https://example.invalid/x: external, not fetched", lines)

    def test_max_lines_spares_the_allowed_long_files(self):
        (self.root / "Cargo.lock").write_text("x\n" * 50)
        code, lines = self.run_checker("# Top\n", "--max-lines", "20")
        self.assertEqual(code, 1)
        self.assertEqual(lines, ["src/main.rs:30: 30 lines, more than --max-lines 20"])
        self.assertEqual(self.run_checker("# Top\n", "--max-lines", "30"), (0, []))


if __name__ == "__main__":
    unittest.main()
