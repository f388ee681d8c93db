# syntax=docker/dockerfile:1
#
# The refresher (refresher/), as run by the CronJob in manifests/base/refresher.yaml.
#
#   docker build -f docker/refresher.Dockerfile -t ghcr.io/<org>/forex-refresher:0.1.0 .
#
# The build context is the repository root. Cargo resolves the whole workspace
# before building one package, so every member listed in the root Cargo.toml
# must be in the context with its manifest and sources (shared/, refresher/,
# runtime-shim/ with fixtures/, edge-api/*, e2e/ with one-frame/), plus
# Cargo.toml and Cargo.lock. refresher.Dockerfile.dockerignore beside this
# file keeps target/ and .git/ out of the context.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
# The cache mounts keep downloaded crates and compiled dependencies between
# builds; the binary is copied out of the cached target/ in the same step.
RUN --mount=type=cache,id=cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=forex-target,target=/src/target \
    cargo build --release --locked -p refresher \
 && install -D -m 0755 target/release/refresher /out/refresher

# glibc + libgcc and nothing else: no shell, no package manager. The refresher
# speaks plain http to One-Frame and redis:// to Valkey, so it needs no TLS
# library either.
FROM ${RUNTIME_IMAGE}
COPY --from=build /out/refresher /refresher
# Numeric, so the kubelet can verify runAsNonRoot.
USER 65532:65532
ENTRYPOINT ["/refresher"]
CMD ["once"]
