# syntax=docker/dockerfile:1
# The hub's two images for k3s (k3s/hub/), built from this repository:
#   docker build --target hub-gateway   -t observability-hub/hub-gateway:0.1.0 .
#   docker build --target hub-collector -t observability-hub/hub-collector:0.1.0 .
# or `make images` (docker or podman), which also saves them for `k3s ctr images import`.
# Both run as the non-root user 10001 the manifests ask for, with a read-only root filesystem:
# state goes to HUB_DATA_DIR (/var/lib/observability-hub, a volume).

# Debian trixie on both sides: its postgresql-client (17) dumps the platform's PostgreSQL 16,
# which bookworm's pg_dump 15 refuses, and the binaries link the same glibc they run on.
FROM rust:1.95-trixie AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p local-gateway -p host-collector \
    && install -D -m 0755 -t /out target/release/hub-gateway target/release/hub-collector

FROM debian:trixie-slim AS hub-gateway
# pg_dump/pg_restore for minio-backup's database sets, git for webhook-gitops, CA roots for
# S3, OTLP and GitHub over TLS.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git postgresql-client \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/hub-gateway /usr/local/bin/hub-gateway
ENV HUB_DATA_DIR=/var/lib/observability-hub
USER 10001:10001
EXPOSE 8085 8086
ENTRYPOINT ["/usr/local/bin/hub-gateway"]
CMD ["serve"]

FROM debian:trixie-slim AS hub-collector
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/hub-collector /usr/local/bin/hub-collector
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/hub-collector"]
