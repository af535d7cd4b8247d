# syntax=docker/dockerfile:1
# Builds the aisocial binary and a small runtime image (non-root, with a health check).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# BuildKit cache mounts keep the crate registry and the build directory between builds, so a
# change to the sources rebuilds only what it touches.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin aisocial \
    && cp target/release/aisocial /usr/local/bin/aisocial

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 aisocial
COPY --from=build /usr/local/bin/aisocial /usr/local/bin/aisocial
USER aisocial
ENV AISOCIAL_BIND=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=2s CMD curl -fsS http://127.0.0.1:8080/health/ready || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["aisocial"]
CMD ["serve"]
