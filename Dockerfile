# Two images from this one file (docs/images.md says what each is for):
#
#   docker build . -t api:staging --target builder   # Debian, Rust toolchain, shell and debug tools
#   docker build . -t api:production                 # distroless/static: our binary and CA certs; no shell, no libc
#
# Both build with no arguments. An image meant for a registry also gets the
# build metadata that a Dockerfile cannot find by itself (there is no .git in
# the build context); scripts/push.sh refuses an image without it:
#
#   --build-arg VERSION=<Cargo.toml's version>    (the build fails if it differs)
#   --build-arg GIT_REVISION=<full commit SHA>     (api --version, api_build_info, the label)
#   --build-arg CREATED=<RFC 3339 time>           (the commit's time, or SOURCE_DATE_EPOCH's)
#   --build-arg SOURCE=<repository URL>
#
# CARGO_FEATURES is for the image tests only (`panic-route`).
#
# The binary is linked statically (glibc's static-pie): it loads no shared
# library, so the production image needs none, not even a libc.
#
# Version rule: the builder's Debian release must match the runtime's.
# rust:*-slim-bookworm is Debian 12 and so is distroless/static-debian12.
# With a static binary there is no runtime glibc to match any more; what the
# rule still protects is the data both stages must agree on: CA
# certificates, tzdata, /etc/passwd (uid 65532), and the glibc whose
# built-in files and DNS resolvers are linked in. Change both bases together
# (renovate.json bumps their digests in one pull request).

# The base images, pinned by digest; the tag says what the digest was taken
# from. A digest-free build (machines with local stand-ins under the public
# names) overrides the digest with an empty one: --build-arg RUST_DIGEST=
# --build-arg RUNTIME_DIGEST= (the base.digest label is then empty, and
# scripts/push.sh refuses the image unless told --allow-unpinned-base).
ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUST_DIGEST=sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot
ARG RUNTIME_DIGEST=sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab

FROM ${RUST_IMAGE}${RUST_DIGEST:+@${RUST_DIGEST}} AS toolchain
# Debug tools for staging: curl to poke the API, ps/top to look at it.
# Unpinned on purpose: pinned Debian versions vanish from the mirror with
# every security update, and these tools never reach production.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl procps \
 && rm -rf /var/lib/apt/lists/*
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src


# The dependencies are compiled in a layer of their own, keyed on nothing
# but Cargo.toml and Cargo.lock with our crate's version masked: a change to
# src/ or a version bump keeps it. Being a layer (not a cache mount), it can
# be exported to a CI cache (`--cache-to type=gha,mode=max`, docs/images.md).
FROM toolchain AS recipe
COPY Cargo.toml Cargo.lock ./
RUN sed -i '0,/^version = /s/^version = .*/version = "0.0.0"/' Cargo.toml \
 && sed -i '/^name = "api"$/{n;s/^version = .*/version = "0.0.0"/}' Cargo.lock \
 && mkdir src && echo 'fn main() {}' >src/main.rs

# crt-static links glibc in; naming the --target (this machine's own) makes
# it apply to the binary only, while build scripts and proc-macros, which
# the compiler loads, stay dynamic.
FROM toolchain AS dependencies
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV RUSTFLAGS="-C target-feature=+crt-static"
COPY --from=recipe /src ./
RUN cargo build --release --locked --target "$(rustc -vV | sed -n 's/^host: //p')" \
 && rm -rf src target/*/release/api target/*/release/deps/api-* target/*/release/.fingerprint/api-*


FROM dependencies AS compile
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
ARG VERSION=""
ARG GIT_REVISION=""
ARG CARGO_FEATURES=""
# COPY keeps the build context's modification times, and cargo decides that
# our crate is up to date by comparing them with the times of its last
# build in target/: a checkout older than that build (a second worktree, an
# unpacked tarball) would link the previous code. Touching the sources first
# makes them newer than anything in target/.
RUN crate_version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1) \
 && if [ -n "$VERSION" ] && [ "$VERSION" != "$crate_version" ]; then \
      echo "error: --build-arg VERSION=$VERSION, but Cargo.toml's version is $crate_version" >&2; exit 1; \
    fi \
 && find src build.rs -exec touch {} + \
 && target="$(rustc -vV | sed -n 's/^host: //p')" \
 && API_GIT_REVISION="${GIT_REVISION}" \
    cargo build --release --locked --target "$target" --features "${CARGO_FEATURES}" \
 && cp "target/$target/release/api" /usr/local/bin/api


# Staging: the toolchain, the source and the debug tools, with the binary
# the production image gets. It runs as root, so that a debugging session
# can install more.
FROM toolchain AS builder
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY --from=compile /usr/local/bin/api /usr/local/bin/api
ARG RUST_IMAGE
ARG RUST_DIGEST
ARG VERSION=""
ARG GIT_REVISION=""
ARG CREATED="1970-01-01T00:00:00Z"
ARG SOURCE=""
# The same labels as production's below, but for the base and description.
LABEL org.opencontainers.image.title="api" \
      org.opencontainers.image.description="api, staging: the release binary with the Rust toolchain, its source, a shell and debug tools" \
      org.opencontainers.image.licenses="MIT AND Apache-2.0 AND BSD-3-Clause AND Zlib AND LGPL-2.1-or-later AND GPL-3.0-or-later WITH GCC-exception-3.1" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="${RUST_IMAGE}" \
      org.opencontainers.image.base.digest="${RUST_DIGEST}"
EXPOSE 8000 9000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/api", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/api"]


FROM ${RUNTIME_IMAGE}${RUNTIME_DIGEST:+@${RUNTIME_DIGEST}} AS production
COPY --from=compile /usr/local/bin/api /usr/local/bin/api
ARG RUNTIME_IMAGE
ARG RUNTIME_DIGEST
ARG VERSION=""
ARG GIT_REVISION=""
# Without the argument the image records no time: the Unix epoch, as
# reproducible-image builders write (an RFC 3339 time, unlike "unknown").
ARG CREATED="1970-01-01T00:00:00Z"
ARG SOURCE=""
# licenses: our MIT code, the crates linked in (each under MIT where it
# offers a choice; prometheus and sync_wrapper are Apache-2.0 only, matchit
# adds BSD-3-Clause, zlib-rs is Zlib), and glibc (LGPL) and libgcc's unwinder
# (GPL with the runtime exception), which the static link copies in.
LABEL org.opencontainers.image.title="api" \
      org.opencontainers.image.description="Hello world, the current time and a health check, in Rust" \
      org.opencontainers.image.licenses="MIT AND Apache-2.0 AND BSD-3-Clause AND Zlib AND LGPL-2.1-or-later AND GPL-3.0-or-later WITH GCC-exception-3.1" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}" \
      org.opencontainers.image.base.digest="${RUNTIME_DIGEST}"

# nonroot, by number: Kubernetes can only verify runAsNonRoot for a numeric user.
USER 65532:65532
EXPOSE 8000 9000
# No shell or curl here: the binary probes itself. With no arguments it
# finds the server beside it (/proc: same executable) and probes GET /livez
# on the metrics port its command line or environment sets, or /healthcheck
# on the API port when metrics are disabled (docs/images.md).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/api", "healthcheck"]
# Exec form: api is PID 1 and receives SIGTERM from `docker stop` directly.
ENTRYPOINT ["/usr/local/bin/api"]
