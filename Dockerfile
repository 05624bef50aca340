# Two images from this one file:
#
#   docker build . -t api:staging --target builder   # Debian, Rust toolchain, shell and debug tools
#   docker build . -t api:production                 # distroless/static: our binary and CA certs; no shell, no libc
#
# The binary is linked statically (glibc's static-pie): it loads no shared
# library, so the production image needs none, not even a libc. That keeps
# the image small (Fargate pulls it at every task start) and keeps scanners
# from reporting CVEs in libraries that never run.
#
# Version rule: the builder's Debian release must match the runtime's.
# rust:*-slim-bookworm is Debian 12 and so is distroless/static-debian12.
# With a static binary there is no runtime glibc to match any more; what the
# rule still protects is the data both stages must agree on: CA
# certificates, tzdata, /etc/passwd (uid 65532), and the glibc whose
# built-in files and DNS resolvers are linked in. Change both FROM lines
# together.
#
# Build arguments (all optional) fill the OCI labels and `api --version`:
#   VERSION, GIT_REVISION, CREATED (RFC 3339), SOURCE (repository URL).
# CARGO_FEATURES is for the image tests only (`panic-route`).

FROM rust:1.95-slim-bookworm AS builder

# Debug tools for staging: curl to poke the API, ps/top to look at it.
# Unpinned on purpose: pinned Debian versions vanish from the mirror with
# every security update, and these tools never reach production.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl procps \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src

# The cache mounts keep downloaded crates and compiled dependencies between
# builds: after a change to src/ only, just our crate is compiled again.
# Being mounts, they add nothing to the image; the binary is copied out.
# crt-static links glibc in; naming the --target (this machine's own) makes
# it apply to the binary only, while build scripts and proc-macros, which
# the compiler loads, stay dynamic.
ARG GIT_REVISION=unknown
ARG CARGO_FEATURES=""
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(rustc -vV | sed -n 's/^host: //p')" \
 && API_GIT_REVISION="${GIT_REVISION}" RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target "$target" --features "${CARGO_FEATURES}" \
 && cp "target/$target/release/api" /usr/local/bin/api

# Staging runs as root, so that a debugging session can install more tools.
EXPOSE 8000 9000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["api", "healthcheck"]
CMD ["api"]


FROM gcr.io/distroless/static-debian12:nonroot AS production

ARG VERSION=unknown
ARG GIT_REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="api" \
      org.opencontainers.image.description="Hello world, the current time and a health check, in Rust" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}"

COPY --from=builder /usr/local/bin/api /usr/local/bin/api

# nonroot, by number: Kubernetes can only verify runAsNonRoot for a numeric user.
USER 65532:65532
EXPOSE 8000 9000
# No shell or curl here: the binary probes itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/api", "healthcheck"]
# Exec form: api is PID 1 and receives SIGTERM from `docker stop` directly.
ENTRYPOINT ["/usr/local/bin/api"]
