# ironlb — see README.md. `make test` is what CI runs.
SHELL := /bin/bash
GO ?= go
BIN ?= bin
FUZZTIME ?= 10s
# Unit-level packages: no control plane (announcer/layer2 needs root: CI runs as root).
UNIT_PKGS := ./config/... ./ipam/... ./provider/... ./announcer/...

.PHONY: all build test unit integration vet fmt fmt-check fuzz bench deps apiserver cluster-up cluster-down clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

## deps: apt packages the tests use (etcd, later FRR, BIRD, arping, ndisc6).
deps:
	@bash hack/ensure-deps.sh

## apiserver: kube-apiserver built from the Go module proxy, cached in .cache/.
apiserver:
	@bash hack/ensure-apiserver.sh

## test: everything CI runs.
test: deps apiserver fmt-check vet unit fuzz integration

unit:
	$(GO) test -race -count=1 $(UNIT_PKGS)

## integration: against a real etcd + kube-apiserver started by the tests.
integration: build
	$(GO) test -count=1 -timeout 20m ./test/...

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi

## fuzz: a short run of every parser fuzz target (FUZZTIME each).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseRange$$' -fuzztime $(FUZZTIME) ./ipam/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./config/

## bench: allocator benchmarks (figures go to docs/benchmarks.md).
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(UNIT_PKGS)

## cluster-up / cluster-down: a local etcd + kube-apiserver to poke at with kubectl.
cluster-up: deps apiserver
	@$(GO) run ./test/cmd/controlplane up

cluster-down:
	@$(GO) run ./test/cmd/controlplane down

clean:
	rm -rf $(BIN)
