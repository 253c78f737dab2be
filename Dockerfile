# sitemon container image (see README, "Container").
#   docker build -t sitemon .
#   docker run --rm -v sitemon-data:/var/lib/sitemon sitemon run -c /etc/sitemon/standalone.yaml
# The shipped binary is stripped; its debug info (for symbolising a core dump or backtrace
# addresses) is a stage of its own, written out on request:
#   docker build --target debug-symbols --output type=local,dest=symbols .

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# librdkafka is compiled from source (C toolchain) and links OpenSSL and zlib. Unpinned on
# purpose: Debian replaces point-release versions, so pins would break the build over time.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# Dependencies first, in a layer of their own that is reused as long as Cargo.toml, Cargo.lock
# and build.rs are unchanged: cargo needs every target the manifest declares ([[bin]], [[test]]:
# each `path = "…"`) to exist, so each gets a stand-in `fn main`, as does the library.
COPY Cargo.toml Cargo.lock build.rs ./
RUN sed -n 's/^path = "\(.*\)"$/\1/p' Cargo.toml | while read -r target; do \
      mkdir -p "$(dirname "$target")" && echo 'fn main() {}' > "$target"; \
    done \
 && touch src/lib.rs \
 && cargo build --release --locked --bin sitemon

# Then the real sources. migrations/ is embedded by sqlx::migrate!, schemas/ by include_str!.
# COPY keeps the files' modification times, older than the stand-ins' build, so touch the crate
# roots or cargo would keep the stand-in binary.
COPY src ./src
COPY migrations ./migrations
COPY schemas ./schemas
# The release profile keeps limited debug info (debug = 1, for `make bench`'s profiles), 107 of
# the binary's 125 MB. The image ships the binary without it and without the symbol table
# (17 MB); the debug file keeps both, and the binary's .gnu_debuglink names it for gdb.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin sitemon \
 && mkdir /out \
 && objcopy --only-keep-debug target/release/sitemon /out/sitemon.debug \
 && objcopy --strip-all --add-gnu-debuglink=/out/sitemon.debug target/release/sitemon /out/sitemon \
 && /out/sitemon --version

FROM scratch AS debug-symbols
COPY --from=build /out/sitemon.debug /

FROM debian:${DEBIAN_RELEASE}-slim
# Shared libraries of the binary (ldd): libssl3 for librdkafka and native-tls, zlib1g (already
# in the base); ca-certificates for checking https sites and TLS to Kafka and PostgreSQL.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 sitemon \
 && useradd --system --uid 10001 --gid sitemon --home-dir /var/lib/sitemon --no-create-home \
      --shell /usr/sbin/nologin sitemon \
 && install -d -o sitemon -g sitemon -m 0750 /var/lib/sitemon
COPY --from=build /out/sitemon /usr/local/bin/sitemon
COPY example_config /etc/sitemon

# The data directory and working directory: `sitemon run`'s relative `sqlite.path` (default
# `sitemon.db`) lands here. Mount a named volume on it to keep the history; a new named volume
# takes this directory's owner. No VOLUME instruction: it would give every producer, consumer and
# migrate container an anonymous volume they never use.
WORKDIR /var/lib/sitemon
USER 10001:10001

# /healthz, /readyz and /metrics for every long-running subcommand.
ENV SITEMON_LISTEN=0.0.0.0:9464
EXPOSE 9464
# The binary is its own probe: `sitemon check` exits 0 when /healthz answers 200. A shell maps
# its other exit codes (2 = down, 64 = usage) to 1, the only failure code Docker defines, and
# takes the port from SITEMON_LISTEN at run time; with SITEMON_LISTEN unset, run with
# --no-healthcheck.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/bin/sh", "-c", "sitemon check --timeout 3s \"http://127.0.0.1:${SITEMON_LISTEN##*:}/healthz\" || exit 1"]

ENTRYPOINT ["sitemon"]
CMD ["--help"]
