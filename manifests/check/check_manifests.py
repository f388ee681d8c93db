#!/usr/bin/env python3
"""Offline checks of the Kubernetes manifests in manifests/.

Run from the repository root:

    python3 manifests/check/check_manifests.py [--root DIR] [--no-kubectl] [--list-rules]
        [--format text|json] [--upstream-crds DIR]

It loads every kustomization an operator applies, in the order of
manifests/README.md: manifests/cluster (step 1), then the app (step 2): the
base (manifests/base) or one of the overlays (manifests/overlays/*, with the
components of manifests/components/ they use); and the example Secrets
(manifests/secrets.example.yaml). When kubectl is on PATH it also loads
`kubectl kustomize` of each kustomization, which must agree. Then it runs
every rule: built-in kinds validated in strict mode, custom resources
against the CRDs vendored in manifests/crds/, and the project's own rules.
`--list-rules` prints what each rule checks.

Each rule prints one line; failures are listed under it (`--format json`:
one JSON object per failure instead, for CI). The exit code is 0 only when
every rule passes. The code is the package forex_check beside this
file (forex_check/__init__.py says where to start reading).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from forex_check.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(description=__doc__.split("\n\n")[0], default_root=Path(__file__).resolve().parents[2]))
