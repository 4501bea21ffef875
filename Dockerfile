# syntax=docker/dockerfile:1
# The iamra image: one statically linked binary (musl) for every subcommand — the controller and
# the credential sidecar it injects — on distroless/static (CA certificates, /etc/passwd with
# the nonroot user, nothing else: no shell, no libc).
#
#   docker build -t iamra:dev .
#
# Not built on the development machines (no container engine there); the kind workflow
# (.github/workflows/kind-e2e.yaml) builds it, and tests/dockerfile.rs checks its structure.

# The crate's rust-version.
ARG RUST_VERSION=1.94

FROM rust:${RUST_VERSION}-bookworm AS build
# musl-gcc compiles aws-lc-sys (the one crypto provider) for the musl target; cmake is its
# fallback build system.
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The builder's own architecture (amd64 or arm64 under buildx), linked statically against musl.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(uname -m)-unknown-linux-musl" \
    && rustup target add "$target" \
    && CARGO_PROFILE_RELEASE_STRIP=symbols \
       cargo build --release --locked --no-default-features --target "$target" --bin iamra \
    && cp "target/$target/release/iamra" /iamra

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /iamra /iamra
# distroless's nonroot user; the chart's runAsUser matches.
USER 65532:65532
# webhook (HTTPS) and http (CRL distribution points, /metrics, /healthz, /readyz)
EXPOSE 9443 8080
ENTRYPOINT ["/iamra"]
