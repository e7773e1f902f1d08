# syntax=docker/dockerfile:1
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends pkg-config libssl-dev libpq-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release -p coursegate-server && cp target/release/coursegate /usr/local/bin/coursegate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libpq5 libssl3 && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/coursegate --create-home coursegate
COPY --from=build /usr/local/bin/coursegate /usr/local/bin/coursegate
USER coursegate
WORKDIR /var/lib/coursegate
ENV COURSEGATE_BIND=0.0.0.0:8080 \
    COURSEGATE_DATA_DIR=/var/lib/coursegate/data \
    COURSEGATE_DATABASE_URL=sqlite:///var/lib/coursegate/data/coursegate.db \
    COURSEGATE_KEYS_DIR=/var/lib/coursegate/jwks \
    COURSEGATE_LOG_FORMAT=json
VOLUME ["/var/lib/coursegate/data", "/var/lib/coursegate/jwks"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["coursegate"]
CMD ["serve"]
