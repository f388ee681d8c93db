# runtime-shim as spin-operator's `spinImage` executor (manifests/overlays/
# runtime-shim): from a binary built on the host by `make images` (buildah, no
# base image to pull). The build context is a directory holding only the
# static binary `runtime-shim`, built with
#
#   cargo build --release --locked --target x86_64-unknown-linux-musl -p runtime-shim
#
# spin-operator runs it with `up --listen 0.0.0.0:80 -f <SpinApp image>
# --runtime-config-file /runtime-config.toml`; it pulls the app itself.

FROM scratch

ARG VERSION
ARG REVISION
ARG SOURCE=
ARG DESCRIPTION=
ARG LICENSES=

# The only file in the image: no shell, no libc (statically linked with
# musl), no CA bundle: spin-operator mounts one at
# /etc/ssl/certs/ca-certificates.crt when the executor sets
# installDefaultCACerts, which is where runtime-shim looks for it.
COPY --chmod=0555 runtime-shim /runtime-shim
USER 65532:65532
# Pulled layers and compiled components, kept by digest across container
# restarts when a volume is mounted here (the overlay mounts an emptyDir);
# without one, start-up warns that nothing can be kept and goes on.
ENV RUNTIME_SHIM_CACHE_DIR=/var/cache/runtime-shim
# Prometheus metrics on a port of their own (spin-operator fixes the
# container's arguments, not its environment): scraped through the Service
# of manifests/components/monitoring/runtime-shim.
ENV RUNTIME_SHIM_METRICS_LISTEN=0.0.0.0:9465
# At SIGTERM, serve 5 s more while /readyz (the edge's readiness probe)
# answers 503: Kubernetes removes a terminating pod from its Service as it
# signals it, and Traefik or kube-proxy learn of that seconds later. SpinApp
# has no preStop hook, so the wait is the server's own. 5 s plus the 10 s
# drain stay inside the pod's 30 s termination grace period.
ENV RUNTIME_SHIM_SHUTDOWN_DELAY=5s RUNTIME_SHIM_READINESS_PATH=/readyz
EXPOSE 80 9465
ENTRYPOINT ["/runtime-shim"]
CMD ["up", "--listen", "0.0.0.0:80"]
LABEL org.opencontainers.image.title="runtime-shim" \
      org.opencontainers.image.description="${DESCRIPTION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="${LICENSES}"
