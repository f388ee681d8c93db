# syntax=docker/dockerfile:1
#
# The project's One-Frame emulator (e2e/one-frame/): a stand-in for the
# paidyinc/one-frame image, on the same port and with the same public token.
#
#   docker build -f docker/one-frame.Dockerfile -t ghcr.io/<org>/one-frame:0.1.0 .
#
# The build context is the repository root; see refresher.Dockerfile for why
# the whole workspace has to be in it.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,id=cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=forex-target,target=/src/target \
    cargo build --release --locked -p one-frame \
 && install -D -m 0755 target/release/one-frame /out/one-frame

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/one-frame /one-frame
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/one-frame"]
# Listen on every interface, not the emulator's default of loopback only.
CMD ["--listen", "0.0.0.0:8080"]
