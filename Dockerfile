# Two images from this one file (docs/images.md says what each is for):
#
#   docker build . -t api:staging --target builder   # Debian, Rust toolchain, shell and debug tools
#   docker build . -t api:production                 # distroless/static: our binary and CA certs; no shell, no libc
#
# and the SBOM of either, CycloneDX JSON (docs/supply-chain.md):
#
#   docker build . --target sbom --output type=local,dest=sbom               # production's
#   docker build . --target sbom --build-arg SBOM_OF=staging --output ...    # staging's
#
# All build with no arguments. An image meant for a registry also gets the
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
# Platforms: the compiler always runs on the build machine's platform and
# cross-compiles for --platform (linux/amd64 or linux/arm64): no emulation.
# The release builds production for both; staging, a debugging image, for
# amd64 (docs/images.md).
#
# The binary is linked statically (glibc's static-pie): it loads no shared
# library, so the production image needs none, not even a libc. It is built
# with cargo-auditable: the list of the crates compiled into it travels in
# the binary (an ELF section, .dep-v0), for scanners and `rust-audit-info`.
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
# Which image `--target sbom` describes: production or staging.
ARG SBOM_OF=production

# The compiler, on the build machine's platform. cargo-auditable is pinned:
# the version is part of what the binary records about its build.
FROM --platform=$BUILDPLATFORM ${RUST_IMAGE}${RUST_DIGEST:+@${RUST_DIGEST}} AS toolchain
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
ARG CARGO_AUDITABLE_VERSION=0.7.7
RUN cargo install --locked --quiet "cargo-auditable@${CARGO_AUDITABLE_VERSION}" \
 && rm -rf /usr/local/cargo/registry


# What to compile for: the Rust target, and, when it is not the build
# machine's own, the cross linker and the Debian packages that bring it and
# the target's static glibc. Written to /etc/rust-target.env and nothing
# else, so that the choice can be checked without building anything
# (`--platform linux/arm64 --target rust-target`, scripts/test-images.sh).
FROM toolchain AS rust-target
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG TARGETARCH
ARG BUILDARCH
RUN case "$TARGETARCH" in \
      amd64) rust_target=x86_64-unknown-linux-gnu gnu=x86_64-linux-gnu ;; \
      arm64) rust_target=aarch64-unknown-linux-gnu gnu=aarch64-linux-gnu ;; \
      *) echo "error: no Rust target for TARGETARCH=$TARGETARCH: linux/amd64 and linux/arm64 are built" >&2; exit 1 ;; \
    esac \
 && { echo "RUST_TARGET=$rust_target"; \
      if [ "$TARGETARCH" = "$BUILDARCH" ]; then \
        echo "CROSS_PACKAGES="; \
      else \
        echo "CROSS_PACKAGES='gcc-$(echo "$gnu" | tr _ -) libc6-dev-$TARGETARCH-cross'"; \
        echo "export CARGO_TARGET_$(echo "$rust_target" | tr a-z- A-Z_)_LINKER=$gnu-gcc CC_$(echo "$rust_target" | tr - _)=$gnu-gcc"; \
      fi; } >/etc/rust-target.env \
 && sed 's/^/rust-target.env: /' /etc/rust-target.env

# The cross linker and the target's standard library, when cross-compiling.
# The packages are Debian 12's current ones (unpinned, as the debug tools
# below): the SBOM records the glibc version they link in.
FROM rust-target AS cross-toolchain
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008,SC1091
RUN . /etc/rust-target.env \
 && if [ -n "$CROSS_PACKAGES" ]; then \
      apt-get update \
      && read -ra packages <<<"$CROSS_PACKAGES" \
      && apt-get install -y --no-install-recommends "${packages[@]}" \
      && rm -rf /var/lib/apt/lists/* \
      && rustup target add "$RUST_TARGET"; \
    fi


# The dependencies are compiled in a layer of their own, keyed on nothing
# but Cargo.toml and Cargo.lock with our crate's version masked: a change to
# src/ or a version bump keeps it. Being a layer (not a cache mount), it can
# be exported to a CI cache (`--cache-to type=gha,mode=max`, docs/images.md).
FROM toolchain AS recipe
COPY Cargo.toml Cargo.lock ./
RUN sed -i '0,/^version = /s/^version = .*/version = "0.0.0"/' Cargo.toml \
 && sed -i '/^name = "api"$/{n;s/^version = .*/version = "0.0.0"/}' Cargo.lock \
 && mkdir src && echo 'fn main() {}' >src/main.rs

# crt-static links glibc in; naming the --target makes it apply to the
# binary only, while build scripts and proc-macros, which the compiler
# loads, stay dynamic. `cargo auditable build` is `cargo build` plus the
# crate list linked into the binary; the dependencies are built through it
# too, so that the final build finds them fresh.
FROM cross-toolchain AS dependencies
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV RUSTFLAGS="-C target-feature=+crt-static"
COPY --from=recipe /src ./
# hadolint ignore=SC1091
RUN . /etc/rust-target.env \
 && cargo auditable build --release --locked --target "$RUST_TARGET" \
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
# hadolint ignore=SC1091
RUN crate_version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1) \
 && if [ -n "$VERSION" ] && [ "$VERSION" != "$crate_version" ]; then \
      echo "error: --build-arg VERSION=$VERSION, but Cargo.toml's version is $crate_version" >&2; exit 1; \
    fi \
 && find src build.rs -exec touch {} + \
 && . /etc/rust-target.env \
 && API_GIT_REVISION="${GIT_REVISION}" \
    cargo auditable build --release --locked --target "$RUST_TARGET" --features "${CARGO_FEATURES}" \
 && cp "target/$RUST_TARGET/release/api" /usr/local/bin/api


# Staging: the toolchain, the source and the debug tools, with the binary
# the production image gets, on the target platform (the compiler above runs
# on the build machine's). It runs as root, so that a debugging session can
# install more.
FROM ${RUST_IMAGE}${RUST_DIGEST:+@${RUST_DIGEST}} AS builder
# Debug tools for staging: curl to poke the API, ps/top to look at it.
# Unpinned on purpose: pinned Debian versions vanish from the mirror with
# every security update, and these tools never reach production.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl procps \
 && rm -rf /var/lib/apt/lists/*
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
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


FROM ${RUNTIME_IMAGE}${RUNTIME_DIGEST:+@${RUNTIME_DIGEST}} AS runtime


# The SBOM (docs/supply-chain.md): the crates of the binary, from
# cargo-cyclonedx for the same target and features; the Debian packages of
# the image, from its dpkg status (distroless keeps one file per package in
# /var/lib/dpkg/status.d); and what the static link copied into the binary:
# glibc and libgcc, from the toolchain's dpkg status, and Rust's standard
# library, of the toolchain's version (staging also lists the toolchain
# itself, which it carries). Reproducible:
# its time is CREATED's and its serial number a UUID derived from what it
# describes, so the same commit and arguments give the same bytes.
FROM toolchain AS sbom-tools
ARG CARGO_CYCLONEDX_VERSION=0.5.9
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends jq \
 && rm -rf /var/lib/apt/lists/* \
 && cargo install --locked --quiet "cargo-cyclonedx@${CARGO_CYCLONEDX_VERSION}" \
 && rm -rf /usr/local/cargo/registry

# The Debian packages of each image, as dpkg status records, and the
# os-release that names its Debian release.
FROM scratch AS dpkg-of-production
COPY --from=runtime /var/lib/dpkg/status.d/ /status.d/
COPY --from=runtime /usr/lib/os-release /os-release
FROM scratch AS dpkg-of-staging
COPY --from=builder /var/lib/dpkg/status /status.d/status
COPY --from=builder /usr/lib/os-release /os-release
# checkov:skip=CKV_DOCKER_7:dpkg-of-${SBOM_OF} is one of the two stages above, not an image from a registry
# hadolint ignore=DL3006
FROM dpkg-of-${SBOM_OF} AS dpkg-of-image

FROM sbom-tools AS sbom-build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY --from=rust-target /etc/rust-target.env /etc/rust-target.env
COPY --from=dpkg-of-image / /sbom/image/
COPY --from=cross-toolchain /var/lib/dpkg/status /sbom/toolchain/status.d/status
COPY --from=compile /usr/local/bin/api /sbom/api
ARG SBOM_OF
ARG TARGETPLATFORM
ARG VERSION=""
ARG GIT_REVISION=""
ARG CARGO_FEATURES=""
ARG CREATED="1970-01-01T00:00:00Z"
ARG SOURCE=""
ARG CARGO_CYCLONEDX_VERSION
# Any value makes this step run again instead of coming from the cache, and
# changes nothing else: how the image suite proves the bytes reproducible.
ARG SBOM_RERUN=""
# 1. cargo cyclonedx: every crate of the build for this target and these
#    features (build-only crates with scope "excluded"), as api_bin.cdx.json.
# 2. dpkg status records, one JSON object each (distroless's *.md5sums
#    files skipped): the image's packages, and from the toolchain the two
#    whose static libraries the link copies in, libc6-dev (glibc) and
#    libgcc-12-dev, or when cross-compiling their -<arch>-cross builds only
#    (the toolchain has the native two as well).
# 3. jq assembles: the image as metadata.component (what the SBOM is about),
#    the binary (with its SHA-256) depending on the crates, the packages
#    with Debian purls as Syft writes them (`upstream` is the source
#    package, which advisories name), CREATED as the time, and a UUIDv5
#    serial number of what it describes instead of a random one.
# hadolint ignore=SC1091,SC2016
RUN . /etc/rust-target.env \
 && SOURCE_DATE_EPOCH=$(date -u -d "$CREATED" +%s) cargo cyclonedx --format json --spec-version 1.5 --all \
      --describe binaries --target "$RUST_TARGET" ${CARGO_FEATURES:+--features "$CARGO_FEATURES"} \
 && packages() { \
      find "$1" -type f ! -name '*.md5sums' -exec awk -v RS= -v FS='\n' -v OFS='\t' '{ \
        p = v = a = s = ""; installed = 1; \
        for (i = 1; i <= NF; i++) { \
          if ($i ~ /^Package: /) p = substr($i, 10); else if ($i ~ /^Version: /) v = substr($i, 10); \
          else if ($i ~ /^Architecture: /) a = substr($i, 15); else if ($i ~ /^Source: /) s = substr($i, 9); \
          else if ($i ~ /^Status: / && $i !~ / installed$/) installed = 0; } \
        if (p != "" && installed) print p, v, a, s }' {} + \
      | jq -R 'split("\t") | {name: .[0], version: .[1], arch: .[2], source: (.[3] | sub(" .*"; ""))}' \
      | jq -s 'sort_by(.name, .arch)'; } \
 && packages /sbom/image/status.d >/sbom/image-packages.json \
 && packages /sbom/toolchain/status.d \
      | jq --arg linked "$(if [ -n "$CROSS_PACKAGES" ]; then echo '-[a-z0-9]+-cross'; fi)" \
          '[.[] | select(.name | test("^(libc6-dev|libgcc-[0-9]+-dev)" + $linked + "$"))]' >/sbom/static-packages.json \
 && test "$(jq length /sbom/static-packages.json)" = 2 \
 && binary_sha256=$(sha256sum /sbom/api | cut -d' ' -f1) \
 && name="${SOURCE:-api}/sbom/${GIT_REVISION:-unknown}/$SBOM_OF/$TARGETPLATFORM/$binary_sha256" \
 && hash=$({ printf '\x6b\xa7\xb8\x11\x9d\xad\x11\xd1\x80\xb4\x00\xc0\x4f\xd4\x30\xc8'; printf '%s' "$name"; } | sha1sum) \
 && serial="${hash:0:8}-${hash:8:4}-5${hash:13:3}-$(printf '%x' $(( (0x${hash:16:1} & 3) | 8 )))${hash:17:3}-${hash:20:12}" \
 && distro() { echo "debian-$(sed -n 's/^VERSION_ID="\{0,1\}\([0-9]*\)"\{0,1\}$/\1/p' "$1")"; } \
 && program=' \
      def deb(why; distro): { \
        type: "library", "bom-ref": ("pkg:deb/" + .name + "@" + .version + "?arch=" + .arch), \
        name, version, \
        purl: ("pkg:deb/debian/" + .name + "@" + .version + "?arch=" + .arch \
               + (if .source == "" then "" else "&upstream=" + .source end) + "&distro=" + distro), \
        properties: [{name: "api:package-of", value: why}] }; \
      .metadata.component as $crate \
      | .serialNumber = $serial | .version = 1 | .metadata.timestamp = $created \
      | .metadata.tools = {components: [{type: "application", name: "cargo-cyclonedx", version: $cyclonedx}]} \
      | .metadata.component = { \
          type: "container", "bom-ref": "image", name: "api", version: $version, \
          description: ("api, the " + $image + " image, " + $platform), \
          properties: [{name: "api:image", value: $image}, {name: "api:platform", value: $platform}, \
                       {name: "api:revision", value: $revision}, {name: "api:source", value: $source}]} \
      | ($image_packages[0] | map(deb("the image"; $image_distro))) as $debs \
      | ($static_packages[0] | map(deb("linked statically into /usr/local/bin/api"; $toolchain_distro))) as $static \
      | [{type: "library", "bom-ref": "rust-std", name: "rust-std", version: $rust, \
          description: "the Rust standard library (std, core, alloc) of the toolchain that compiled the binary", \
          purl: ("pkg:generic/rust-std@" + $rust), \
          properties: [{name: "api:package-of", value: "linked statically into /usr/local/bin/api"}]}] as $std \
      | ([{type: "application", "bom-ref": "rust-toolchain", name: "rust", version: $rust, \
           purl: ("pkg:generic/rust@" + $rust), properties: [{name: "api:package-of", value: "the image"}]}] \
         | if $image == "staging" then . else [] end) as $toolchain \
      | .components = [$crate + {hashes: [{alg: "SHA-256", content: $sha256}], \
                                 properties: [{name: "api:path", value: "/usr/local/bin/api"}]}] \
                      + .components + $debs + $static + $std + $toolchain \
      | .dependencies += [ \
          {ref: "image", dependsOn: ([$crate["bom-ref"]] + ($debs + $toolchain | map(.["bom-ref"])))}, \
          {ref: $crate["bom-ref"], dependsOn: ($static + $std | map(.["bom-ref"]))}] \
      | .dependencies |= (group_by(.ref) | map({ref: .[0].ref, dependsOn: (map(.dependsOn // []) | add | unique)}))' \
 && jq --sort-keys "$program" \
      --arg created "$CREATED" --arg serial "urn:uuid:$serial" --arg image "$SBOM_OF" \
      --arg platform "$TARGETPLATFORM" --arg version "${VERSION:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)}" \
      --arg revision "$GIT_REVISION" --arg source "$SOURCE" --arg sha256 "$binary_sha256" \
      --arg cyclonedx "$CARGO_CYCLONEDX_VERSION" --arg rust "$(rustc -V | cut -d' ' -f2)" \
      --arg image_distro "$(distro /sbom/image/os-release)" --arg toolchain_distro "$(distro /etc/os-release)" \
      --slurpfile image_packages /sbom/image-packages.json --slurpfile static_packages /sbom/static-packages.json \
      api_bin.cdx.json >/sbom/sbom.cdx.json
FROM scratch AS sbom
COPY --from=sbom-build /sbom/sbom.cdx.json /


FROM runtime AS production
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
