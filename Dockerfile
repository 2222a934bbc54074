# signhook: one release binary (migrations embedded) on a slim Debian.
#
#   docker build -t signhook .
#
# The base images are arguments so the same file builds from the public images
# (the defaults) and from locally made ones where no registry is reachable
# (scripts/container-test.sh passes those).
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src

# Dependencies first, in their own layer: a stub crate with the real manifest
# and lock file. A change under src/ then recompiles signhook alone.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/hot_paths.rs \
    && cargo build --release --locked \
    && rm -rf src benches target/release/signhook* target/release/deps/signhook-* \
        target/release/deps/libsignhook-* target/release/.fingerprint/signhook-*

COPY benches ./benches
COPY migrations ./migrations
COPY src ./src
# touch: COPY keeps the files' times, which may be older than the stub's build.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin signhook \
    && strip target/release/signhook

# Runtime: ca-certificates only, an unprivileged user, no shell tools needed
# (the HEALTHCHECK is the binary itself).
FROM ${RUNTIME_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && groupadd --system --gid 10001 signhook \
    && useradd --system --uid 10001 --gid signhook --no-create-home --shell /usr/sbin/nologin signhook
COPY config /etc/signhook
COPY --from=build /src/target/release/signhook /usr/local/bin/signhook
# Numeric, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
ENV SIGNHOOK_LISTEN=0.0.0.0:8080 \
    SIGNHOOK_LOG_FORMAT=json \
    SIGNHOOK_CONFIG=/etc/signhook/default.toml
EXPOSE 8080
# `signhook healthcheck` reads the same configuration as the server
# (SIGNHOOK_LISTEN included) and GETs /healthz on that address.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/signhook", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/signhook"]
CMD ["serve"]
