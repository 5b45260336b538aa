# Shelf batch job image: a static Go binary on distroless, non-root, no shell.
#   make image IMAGE=ghcr.io/shelfml/shelf:0.1.0          (docker or podman)
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/shelfml/shelf:0.1.0 .
# The pods run it with a read-only root filesystem and a writable /tmp (emptyDir).
#
# Base images are fully qualified (podman and buildah resolve no short names).
# For a release, pin them by digest where they are named below
# (…:1.26-bookworm@sha256:<digest>, from `docker buildx imagetools inspect`).

# The compiler runs on the build machine's platform and cross-compiles the
# static binary for the target's (no emulation needed for multi-arch).
FROM --platform=$BUILDPLATFORM docker.io/library/golang:1.26-bookworm AS build
ARG TARGETOS=linux
ARG TARGETARCH
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-mod=readonly
# Modules first: this layer is reused while only the code changes.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
ARG VERSION=dev
RUN GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/shelf ./jobs/shelf

# static-debian12 carries CA certificates (TLS to object stores) and tzdata
# (events.timestamp.timezone); :nonroot runs as 65532.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="shelf" \
      org.opencontainers.image.description="Trains e-commerce recommendation models as a batch job" \
      org.opencontainers.image.source="https://github.com/shelfml/shelf" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/shelf /shelf
USER 65532:65532
ENTRYPOINT ["/shelf"]
