# syntax=docker/dockerfile:1
# The `retrain` binary in a small image, for docker-compose.yml: the API and
# the worker run this one image with different roles. Untested by a real
# Docker engine where it was written (none there); see docker-compose.yml.
#
#   docker build -t retrain .
#   docker run --rm -e DATABASE_URL=postgres://... -p 8000:8000 retrain serve

# rust:1.95 on Debian bookworm, so the binary links against the glibc the
# bookworm-slim runtime has (the default rust:1.95 variant may be newer).
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# The caches keep the registry and target/ between builds; the binary is
# copied out because a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p retrain-api \
    && cp target/release/retrain /usr/local/bin/retrain

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# An unprivileged user; a generated admin token goes under its home.
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/retrain retrain
COPY --from=builder /usr/local/bin/retrain /usr/local/bin/retrain
USER retrain
WORKDIR /var/lib/retrain
ENV RETRAIN_BIND=0.0.0.0:8000
EXPOSE 8000
ENTRYPOINT ["retrain"]
CMD ["serve"]
