"""Runs the checker's own tests in one process per core: each test runs the
whole checker in a process of its own, so they are independent, and the
suite takes half the time on two cores.

    python3 manifests/check/run_tests.py [-j N] [unittest name ...]

Without names, every test_*.py under manifests/check/tests. The output is
unittest's, one block per process, then one line for the whole run; the exit
status is non-zero when any test failed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_ids(suite: unittest.TestSuite) -> list[str]:
    out = []
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            out += test_ids(item)
        else:
            out.append(item.id())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-j", type=int, default=os.cpu_count() or 1, help="processes (default: one per core)")
    parser.add_argument("names", nargs="*", help="unittest names (default: discover every test)")
    args = parser.parse_args()

    sys.path.insert(0, str(HERE))
    loader = unittest.TestLoader()
    suite = loader.loadTestsFromNames(args.names) if args.names else loader.discover(str(HERE), pattern="test_*.py")
    if loader.errors:
        print("\n".join(loader.errors), file=sys.stderr)
        return 1
    ids = test_ids(suite)
    jobs = max(1, min(args.j, len(ids)))
    # Round robin: the tests of a module cost about the same, so every
    # process gets a share of each.
    shares = [ids[i::jobs] for i in range(jobs)]
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "unittest", *share],
            cwd=HERE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for share in shares
    ]
    ran, failed = 0, False
    for proc in procs:
        out, _ = proc.communicate()
        sys.stdout.write(out)
        m = re.search(r"^Ran (\d+) tests?", out, re.M)
        ran += int(m.group(1)) if m else 0
        failed |= proc.returncode != 0
    elapsed = time.monotonic() - started
    print(f"run_tests: {ran} of {len(ids)} tests in {jobs} processes, {elapsed:.1f} s: {'FAILED' if failed else 'OK'}")
    return 1 if failed or ran != len(ids) else 0


if __name__ == "__main__":
    sys.exit(main())
