# syntax=docker/dockerfile:1
# sluice serve in a container. Build: docker build -t sluice .
# Run:   docker run -p 8080:8080 -e SLUICE_API_KEYS=change-me -v sluice-data:/var/lib/sluice sluice
# Inside a container the server listens on 0.0.0.0, which it refuses without API keys.

FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin sluice \
    && install -D -m 0755 target/release/sluice /out/sluice \
    && mkdir -p /out/data

# Distroless: glibc and nothing else (no shell, no package manager); the
# `nonroot` tag runs as uid 65532. reqwest's rustls carries its own root certificates.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/sluice /usr/local/bin/sluice
COPY --from=builder --chown=65532:65532 /out/data /var/lib/sluice
ENV SLUICE_ADDR=0.0.0.0:8080 \
    SLUICE_DATA_DIR=/var/lib/sluice \
    SLUICE_LOG_FORMAT=json
USER 65532:65532
VOLUME ["/var/lib/sluice"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/sluice", "healthcheck", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["serve"]
