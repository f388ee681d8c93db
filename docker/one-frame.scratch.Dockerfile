# The One-Frame emulator (e2e/one-frame/) from a binary built on the host:
# `make images` (buildah, no base image to pull). The build context is a
# directory holding only the static binary `one-frame`, built with
#
#   cargo build --release --locked --target x86_64-unknown-linux-musl -p one-frame
#
# `make images` fills the build arguments from Cargo metadata and git. For a
# Docker with network access, one-frame.Dockerfile builds the same program
# inside Docker instead (see README.md here).

FROM scratch

ARG VERSION
ARG REVISION
ARG SOURCE=
ARG DESCRIPTION=
ARG LICENSES=

# The only file in the image: no shell, no libc (statically linked with musl).
COPY --chmod=0555 one-frame /one-frame
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/one-frame"]
# Listen on every interface, not the emulator's default of loopback only.
CMD ["--listen", "0.0.0.0:8080"]
LABEL org.opencontainers.image.title="one-frame" \
      org.opencontainers.image.description="${DESCRIPTION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="${LICENSES}"
