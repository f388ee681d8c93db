# Entry points. `make up` runs the whole stack on loopback; `make test` runs
# every test (unit, property, end-to-end over real processes, manifests).

CARGO ?= cargo
# The project's Python (scripts/setup.sh makes it for `make test`) comes
# first, so python3 and schemathesis below are the ones it installed.
export PATH := $(CURDIR)/.venv/bin:$(PATH)
WASM_TARGET := wasm32-wasip1
EDGE_COMPONENTS := -p rates-http -p rates-sync
FIXTURE_COMPONENTS := -p probe-http -p probe-redis -p floor-http

.PHONY: setup-up setup-test build wasm push push-preflight images up test test-rust check-docs check-manifests lint audit audit-advisories fmt bench failover soak fuzz clean

## What `make up` / `make test` need, installed where this machine lets us,
## else the exact command to run (scripts/setup.sh).
setup-up:
	bash scripts/setup.sh up

setup-test:
	bash scripts/setup.sh test

## Native binaries (refresher, one-frame, runtime-shim, tools) and the Wasm components.
build: wasm
	$(CARGO) build --bins

## The Spin components (edge + test fixtures), as spin.toml expects them.
wasm:
	$(CARGO) build --release --target $(WASM_TARGET) $(EDGE_COMPONENTS) $(FIXTURE_COMPONENTS)

## The SpinApp image: `make push REGISTRY=ghcr.io/<org>/forex-edge:0.1.0` builds
## the Wasm and runs `spin registry push -f spin.toml` (an OCI artifact, not a
## Dockerfile build). Spin is `$SPIN`, else `spin` on PATH. A registry on
## 127.0.0.1 or localhost is pushed to over plain HTTP (`--insecure`);
## PUSH_FLAGS adds flags, e.g. PUSH_FLAGS=--insecure for another registry
## without TLS.
push: push-preflight wasm
	@spin="$${SPIN:-$$(command -v spin)}"; \
	case "$(REGISTRY)" in 127.0.0.1[:/]*|localhost[:/]*) insecure=--insecure;; *) insecure=;; esac; \
	echo "$$spin" registry push $$insecure $(PUSH_FLAGS) -f spin.toml "$(REGISTRY)"; \
	"$$spin" registry push $$insecure $(PUSH_FLAGS) -f spin.toml "$(REGISTRY)"

# What push needs, checked before anything is built.
push-preflight:
	@case "$(REGISTRY)" in */*:*) ;; *) \
		echo "make push: set REGISTRY=<host>[:port]/<name>:<tag>, e.g. REGISTRY=ghcr.io/<org>/forex-edge:0.1.0" >&2; exit 2;; \
	esac
	@if [ -n "$$SPIN" ]; then \
		[ -x "$$SPIN" ] || { echo "make push: SPIN=$$SPIN is not an executable" >&2; exit 2; }; \
	elif ! command -v spin >/dev/null; then \
		echo "make push: no Spin CLI found (set SPIN=/path/to/spin or put spin on PATH)" >&2; exit 2; \
	fi

## The refresher, One-Frame emulator and runtime-shim images, built with
## buildah from static musl binaries, `FROM scratch`
## (docker/*.scratch.Dockerfile; nothing pulled): forex-refresher:<version>,
## one-frame:<version> and runtime-shim:<version>. With
## REGISTRY=<host>[:port]/<prefix> they are pushed as <prefix>/<name>:<version>
## (plain HTTP for 127.0.0.1 or localhost). BUILDAH_ROOT=<dir> keeps buildah's
## storage there instead of /var/lib/containers. More in scripts/images.sh.
images:
	CARGO="$(CARGO)" REGISTRY="$(REGISTRY)" BUILDAH_ROOT="$(BUILDAH_ROOT)" bash scripts/images.sh

## Valkey :6379, one-frame :8080, the refresher loop and runtime-shim :3000.
up: setup-up build
	bash scripts/up.sh

## Everything CI runs besides formatting and lints.
test: setup-test build check-docs check-manifests test-rust

# The simulated day runs on its own so that its figures (calls, share of the
# day with fresh rates) are printed.
test-rust:
	@if [ -z "$$SPIN" ] && ! command -v spin >/dev/null; then \
		echo "!!! make test: no real Spin found (set SPIN=/path/to/spin or put spin on PATH): the edge suite runs on runtime-shim only" >&2; \
	fi
	$(CARGO) build --target $(WASM_TARGET) -p forex-shared
	$(CARGO) test -- --skip a_simulated_day
	$(CARGO) test -p e2e --test all simulated_day:: -- --show-output

## Every relative link and #anchor of the Markdown files resolves (no network),
## and no file but generated or vendored ones is longer than 700 lines.
check-docs:
	python3 scripts/check_docs.py --max-lines 700
	python3 -m unittest discover -s scripts -p 'test_*.py'

## Offline validation of manifests/ (schemas, CRDs, project rules) and its own tests.
check-manifests:
	python3 manifests/check/check_manifests.py
	python3 manifests/check/run_tests.py
	promtool check rules manifests/components/monitoring/rules/forex.rules.yaml
	promtool test rules manifests/components/monitoring/rules/forex.rules.test.yaml

## Edge vs. native baseline on this machine (release build; the run takes about 2 minutes).
bench: wasm
	$(CARGO) build --release --bins
	target/release/bench

## Valkey's primary killed under load, three rounds per host: the failover
## time and the requests failed on each (about a minute; not in CI).
failover: wasm
	$(CARGO) build --release --bins
	target/release/failover

## Ten minutes of steady load with frequent refreshes: success and flat memory (not in CI).
soak: wasm
	$(CARGO) build --release --bins
	target/release/soak

## Longer property-based fuzzing of every parser (CI runs the short default).
fuzz:
	PROPTEST_CASES=$${PROPTEST_CASES:-20000} $(CARGO) test -p forex-shared -p runtime-shim -- --nocapture never_panics

## Dependency policy (deny.toml): sources, licenses, banned crates. Offline.
audit:
	$(CARGO) deny check licenses bans sources

## Known vulnerabilities (RustSec). The database comes from GitHub: where it
## cannot be fetched this says so loudly and checks nothing.
audit-advisories:
	@if timeout 120 $(CARGO) deny fetch db; then \
		$(CARGO) deny --offline check advisories; \
	else \
		echo "audit-advisories: the RustSec database could not be fetched: advisories NOT checked" >&2; \
	fi

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) $(EDGE_COMPONENTS) $(FIXTURE_COMPONENTS) -p edge-cache -p forex-shared -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
