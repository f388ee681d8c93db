"""The offline checker of manifests/ (run it as manifests/check/check_manifests.py).

Read it in this order:
- model.py: the objects, the sets `kubectl apply` would be given, the Check
  a rule records its findings on, and @rule;
- kustomize.py and patches.py: the subset of kustomize the manifests use;
  schemas.py: the strict built-in schemas and the vendored CRDs;
- context.py: everything read once and given to every rule (the sets,
  spin.toml, the images and their crates' versions, the metrics);
- workloads.py: what the objects make and read (pods, labels, executors,
  issuers, variable values), which several rule families share;
  valkey_config.py: which containers run Valkey or Sentinel, and the config
  their init containers write for them;
- rules/: one module per rule family, and rules/__init__.py's RULES, the
  order they run in;
- cli.py: the command line, the report and the exit code.
"""
