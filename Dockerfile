# Shelf batch job image: a static Go binary on distroless, non-root, no shell.
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t ghcr.io/shelfml/shelf:0.1.0 .
# The pods run it with a read-only root filesystem and a writable /tmp (emptyDir).

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOOS=linux GOFLAGS=-mod=readonly
# Modules first: this layer is reused while only the code changes.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
ARG VERSION=dev
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/shelf ./jobs/shelf

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
