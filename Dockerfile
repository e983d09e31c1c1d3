# syntax=docker/dockerfile:1
# tradewire gateway image: a static binary on distroless, running as non-root.
# The dashboard is embedded in the binary (go:embed), so no Node stage is needed.
#   docker build -t tradewire .
#   docker run -p 8080:8080 tradewire            # dev mode
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/tradewire ./cmd/tradewire

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tradewire /usr/local/bin/tradewire
USER 65532:65532
ENV TRADEWIRE_ADDR=:8080 \
    TRADEWIRE_LOG_FORMAT=json
EXPOSE 8080
# SIGTERM starts the graceful drain (docs/OPERATIONS.md section 6).
STOPSIGNAL SIGTERM
# distroless has no shell or curl: the binary probes itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/tradewire", "healthcheck", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/tradewire"]
