# sitemon container image: `docker run sitemon producer -c /etc/sitemon/sitemon.yaml`
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole context (see .dockerignore): Cargo.toml names tests and examples, which cargo
# expects to find even when it builds only the binary.
COPY . .
RUN cargo build --release --locked --bin sitemon && cp target/release/sitemon /usr/local/bin/sitemon

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home sitemon
COPY --from=build /usr/local/bin/sitemon /usr/local/bin/sitemon
COPY example_config /etc/sitemon
USER sitemon
ENTRYPOINT ["sitemon"]
CMD ["--help"]
