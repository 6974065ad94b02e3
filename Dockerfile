# Runtime image of the DashFlow Prometheus exporter, FROM scratch: only the static binary, a CA bundle and a
# non-root user. It builds from local files, with no registry:
#   scripts/build-static
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) -t dashflow-prometheus-exporter .
FROM scratch

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="dashflow-prometheus-exporter" \
      org.opencontainers.image.description="DashFlow quality events from Kafka as Prometheus metrics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY dist/passwd /etc/passwd
COPY dist/group /etc/group
COPY dist/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY dist/dashflow-prometheus-exporter /dashflow-prometheus-exporter

USER 65532:65532
ENV METRICS_BIND_IP=0.0.0.0 \
    METRICS_PORT=9190 \
    RUST_LOG=info
EXPOSE 9190
# The health check reads the daemon's own WEB_CONFIG_FILE: with TLS on it speaks https and trusts the
# certificate the file configures (or HEALTHCHECK_CA_FILE); with basic_auth_users it needs HEALTHCHECK_USER and
# HEALTHCHECK_PASSWORD_FILE (or HEALTHCHECK_PASSWORD). docs/deployment.md, Container health check.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/dashflow-prometheus-exporter", "healthcheck"]
ENTRYPOINT ["/dashflow-prometheus-exporter"]
