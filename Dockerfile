# syntax=docker/dockerfile:1
# The sentryk8s image: one static-ish binary on a distroless runtime, running
# as the unprivileged "nonroot" user (65532). Published by
# .github/workflows/release.yml as ghcr.io/sentryk8s/sentryk8s:<version>, the
# Helm chart's default image. No shell in the runtime: the chart runs the
# binary directly (/usr/local/bin/sentryk8s <role> …).
ARG RUST_VERSION=1.95

# cargo-chef turns the manifests into a recipe, so that building the
# dependencies is a layer of its own, rebuilt only when Cargo.toml or
# Cargo.lock change — not on every source edit.
FROM rust:${RUST_VERSION}-slim-bookworm AS chef
WORKDIR /src
RUN cargo install cargo-chef --locked --version 0.1.78

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin sentryk8s \
    && install -D -m 0755 target/release/sentryk8s /out/sentryk8s

# glibc and libgcc, CA certificates, no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="sentryk8s" \
      org.opencontainers.image.description="Distributed, self-healing uptime monitor for web services" \
      org.opencontainers.image.source="https://github.com/sentryk8s/sentryk8s" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/sentryk8s /usr/local/bin/sentryk8s
USER 65532:65532
# The ops server of every long-running role (/metrics, /healthz, /readyz).
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/sentryk8s"]
CMD ["--help"]
