# syntax=docker/dockerfile:1
#
# aichat container image: a static Go binary on distroless (no shell, no
# package manager), running as a non-root user with its data in /data.
#
#   docker build -t aichat --build-arg VERSION=$(git rev-parse --short HEAD) .
#   docker run -p 8080:8080 -v aichat-data:/data aichat
#
# Without AICHAT_DATABASE_URL it uses SQLite in /data; deploy/ has compose,
# Swarm and Kubernetes set-ups with PostgreSQL and Redis.

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so a code change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
# CGO off: the SQLite driver is pure Go, so the binary is static and runs on
# an image with no libc. nomsgpack leaves out gin's MessagePack binding (we
# bind JSON only), which drops ugorji/go/codec and net/rpc: 6 MB.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -tags nomsgpack -ldflags "-s -w -X github.com/aichat/aichat/internal/app.Version=${VERSION}" \
        -o /out/aichat ./cmd/aichat
# The data folder, owned by distroless's nonroot user (65532) and mode 0700
# as the server wants it.
RUN mkdir -p /out/data && chmod 0700 /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/aichat /usr/local/bin/aichat
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV AICHAT_ADDR=:8080 \
    AICHAT_DATA_DIR=/data \
    AICHAT_LOG_FORMAT=json \
    AICHAT_AI_OLLAMA_PROBE=off
VOLUME ["/data"]
EXPOSE 8080
# No shell or curl here: the binary checks its own /healthz.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/aichat", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/aichat"]
CMD ["serve"]
