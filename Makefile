# Shelf — see README.md. `make demo` and `make test` set up everything they need.
GO        ?= go
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
IMAGE     ?= shelf:$(VERSION)
PKGS      := ./...

.PHONY: all build demo test test-short vet fmt-check bench bench-smoke image setup clean

all: build

build:
	@test -x bin/shelf || echo "make: building bin/shelf (the first build downloads the Go modules and compiles Arrow, parquet-go, Gorgonia and the cloud SDKs: a few minutes)"
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/shelf ./jobs/shelf

# The whole pipeline on the bundled Online Retail sample into ./shelf-out (file://, no cloud account).
demo: build
	@echo "make: running the whole pipeline on testdata/online-retail into ./shelf-out (about half a minute)"
	./bin/shelf demo

# Installs/starts what the tests need (idempotent), runs every test, and
# stops the servers it started.
test:
	@GO=$(GO) bash .ci/test

test-short:
	$(GO) test -short -count=1 $(PKGS)

setup:
	bash .ci/setup >/dev/null

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))"

# Benchmarks of every hot path, once each (CI smoke).
bench-smoke:
	$(GO) test -run '^$$' -bench . -benchtime=1x $(PKGS)

# Benchmark report (Markdown + JSON) into bench-out/: stages vs the machine's limits and PyTorch, the
# retrieval index against the exact scan on a 500k-item shop (bench-retrieval.md)
# (installs Debian's python3-torch when missing), plus every Go benchmark.
bench: build
	@/usr/bin/python3 -c 'import torch' 2>/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-torch; } || true
	./bin/shelf bench --out bench-out >/dev/null
	$(GO) test -run '^$$' -bench . -benchtime=3x $(PKGS) | tee bench-out/go-bench.txt

# docker, else podman (CONTAINER=podman to choose).
CONTAINER ?= $(shell command -v docker 2>/dev/null || command -v podman 2>/dev/null || echo docker)
image:
	$(CONTAINER) build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

clean:
	-bash .ci/setup stop 2>/dev/null
	rm -rf bin shelf-out bench-out bench-out.txt .ci/node/node_modules "$${TMPDIR:-/tmp}/shelf-azurite" "$${TMPDIR:-/tmp}/shelf-minio"
