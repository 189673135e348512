# ctr-seed — see README.md. `make demo` runs the main job end to end,
# `make test` runs every test (what CI runs through .ci/run).

GO        ?= go
BIN       := $(CURDIR)/bin
DEMO_DIR  ?= $(CURDIR)/.demo
FUZZTIME  ?= 10000x
VERSION   := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
CONTAINERD_VERSION := $(shell $(GO) list -m -f '{{.Version}}' github.com/containerd/containerd/v2 | sed 's/^v//')

.PHONY: all build demo test unit fuzz vet clean bench tools

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ctr-seed ./cmd/ctr-seed
	$(GO) build -o $(BIN)/mkseed ./test/mkseed
	CGO_ENABLED=0 $(GO) build -ldflags "-X main.seedVersion=$(VERSION) -X github.com/containerd/containerd/v2/version.Version=$(CONTAINERD_VERSION)" -o $(BIN)/containerd-seed ./cmd/containerd-seed

# demo: build everything (containerd and ctr at the pinned version, cached),
# start a private containerd in a temp root, make small seeds in every
# format, ls/verify/import them, show images and snapshots, clean up.
demo:
	$(GO) run ./test/demo

# bench: ctr-seed import (and --in-daemon, and the plugin importing the
# seed renamed into its directory) vs ctr images import on fresh private
# daemons (root; not part of make test), the plugin's boot import of ten
# seeds (first and last image), and the floor: 3 rounds on
# the ~200 MB seed with pigz (when on PATH) and 3 with it disabled, 3 on
# the ~400 MB seed of big files, then 1 on the ~2 GB one (RSS stays flat); then the bytes a
# delta seed ships for an update (test/benchdelta); then push vs skopeo
# copy of the small seed (BenchmarkPush); then ls and import --no-unpack
# of seeds of 1k, 5k and 20k one-layer images beside ctr images import
# (BenchmarkScale: µs an image stays flat). BENCH_FLAGS replaces
# that plan, e.g. "-pairs 5 -size small".
bench:
ifeq ($(BENCH_FLAGS),)
	$(GO) run ./test/bench -pairs 3 -size small
	CONTAINERD_DISABLE_PIGZ=1 $(GO) run ./test/bench -pairs 3 -size small
	$(GO) run ./test/bench -pairs 3 -size bigfiles
	$(GO) run ./test/bench -pairs 1 -size large
	$(GO) run ./test/benchdelta
	$(GO) test -run '^$$' -bench '^BenchmarkPush$$' -benchtime 1x ./test/
	$(GO) test -run '^$$' -bench '^BenchmarkScale$$' -benchtime 1x -timeout 6h ./test/
else
	$(GO) run ./test/bench $(BENCH_FLAGS)
endif

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

# tools: the peer tools the tests run from the Go module proxy (cosign,
# pinned in test/tools), built once per machine into the harness's cache:
# minutes cold, so before the tests, not inside one test's timeout.
tools:
	$(GO) run ./test/buildtools

unit: tools
	$(GO) test -count=1 ./...

# Count-based budgets: a -fuzztime duration can fail spuriously at its end
# ("context deadline exceeded", golang/go#75804).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzOpenSeed$$' -fuzztime $(FUZZTIME) ./fetcher
	$(GO) test -run '^$$' -fuzz '^FuzzDockerManifest$$' -fuzztime $(FUZZTIME) ./fetcher
	$(GO) test -run '^$$' -fuzz '^FuzzPick$$' -fuzztime $(FUZZTIME) ./fetcher
	$(GO) test -run '^$$' -fuzz '^FuzzRegistryManifest$$' -fuzztime $(FUZZTIME) ./fetcher

test: vet unit fuzz

clean:
	rm -rf $(BIN) $(DEMO_DIR)
