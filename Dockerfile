# Build stage: compile the release binary (migrations are embedded in it).
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked && strip target/release/signhook

# Runtime stage: a small image running as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home signhook
COPY --from=build /src/target/release/signhook /usr/local/bin/signhook
COPY config /etc/signhook
USER signhook
ENV SIGNHOOK_LISTEN=0.0.0.0:8080 \
    SIGNHOOK_LOG_FORMAT=json \
    SIGNHOOK_CONFIG=/etc/signhook/default.toml
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/signhook"]
CMD ["serve"]
