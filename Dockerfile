# Multi-stage build: compile with the full toolchain, run as a non-root user on a slim base.
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY keys/README.md ./keys/README.md
RUN cargo build --release --locked --bin tessera

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/tessera tessera \
 && mkdir -p /var/lib/tessera/keys /var/lib/tessera/data \
 && chown -R tessera:tessera /var/lib/tessera \
 && chmod 0700 /var/lib/tessera/keys
COPY --from=build /src/target/release/tessera /usr/local/bin/tessera
USER tessera
WORKDIR /var/lib/tessera
ENV TESSERA_BIND=0.0.0.0:8080 \
    TESSERA_KEYS_DIR=/var/lib/tessera/keys \
    TESSERA_DATABASE_URL=sqlite:///var/lib/tessera/data/tessera.db \
    TESSERA_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
# SIGTERM drains in-flight requests (TESSERA_SHUTDOWN_TIMEOUT_SECONDS, default 30).
STOPSIGNAL SIGTERM
ENTRYPOINT ["tessera"]
CMD ["serve"]
