# Two images from this one file:
#
#   docker build . -t api:staging --target builder   # Debian, Rust toolchain, shell and debug tools
#   docker build . -t api:production                 # distroless: the binary, glibc, CA certs; no shell
#
# Version rule: the builder's Debian release must match the runtime's.
# rust:*-slim-bookworm is Debian 12 and so is distroless/cc-debian12. The
# binary links against the builder's glibc; built on a newer Debian (trixie)
# it would ask for glibc symbols that debian12 lacks and fail at start.
# Change both FROM lines together.
#
# Build arguments (all optional) fill the OCI labels and `api --version`:
#   VERSION, GIT_REVISION, CREATED (RFC 3339), SOURCE (repository URL).

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
ARG GIT_REVISION=unknown
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    API_GIT_REVISION="${GIT_REVISION}" cargo build --release --locked \
 && cp target/release/api /usr/local/bin/api

# Staging runs as root, so that a debugging session can install more tools.
EXPOSE 8000 9000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["api", "healthcheck"]
CMD ["api"]


FROM gcr.io/distroless/cc-debian12:nonroot AS production

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
