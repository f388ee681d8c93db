# The refresher from a binary built on the host: `make images` (buildah, no
# base image to pull). The build context is a directory holding only the
# static binary `refresher`, built with
#
#   cargo build --release --locked --target x86_64-unknown-linux-musl -p refresher
#
# `make images` fills the build arguments from Cargo metadata and git. For a
# Docker with network access, refresher.Dockerfile builds the same program
# inside Docker instead (see README.md here).

FROM scratch

ARG VERSION
ARG REVISION
ARG SOURCE=
ARG DESCRIPTION=
ARG LICENSES=

# The only file in the image: no shell, no libc (statically linked with musl),
# no CA bundle (the refresher speaks plain http and redis://). Owned by root
# and read-only, so the user it runs as cannot change it.
COPY --chmod=0555 refresher /refresher
# Numeric, so the kubelet can verify runAsNonRoot.
USER 65532:65532
ENTRYPOINT ["/refresher"]
CMD ["once"]
LABEL org.opencontainers.image.title="forex-refresher" \
      org.opencontainers.image.description="${DESCRIPTION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="${LICENSES}"
