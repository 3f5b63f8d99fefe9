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

## integration: against a real etcd + kube-apiserver started by the tests, and
## end to end on the network lab (root). One package at a time: the lab's
## failover tests measure timing and must not share two cores with a build.
integration: build
	IRONLB_BIN_DIR=$(abspath $(BIN)) $(GO) test -p 1 -count=1 -timeout 25m ./test/...

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

## bench-e2e: LoadBalancer IP latency end to end through the real ironlb-ccm
## (e.g. BENCH_E2E_ARGS="-n 1000 -syncs 1,10 -out bench-e2e.md").
.PHONY: bench-e2e
bench-e2e: build deps apiserver
	$(GO) run ./test/cmd/bench-e2e $(BENCH_E2E_ARGS)

## lab-up / lab-down: the network lab (namespaces on a bridge: nodes, a client,
## a router, a control plane at 198.51.100.2) to poke at by hand as root
## (e.g. LAB_ARGS="-nodes 5 -client2"); lab-up prints how to use it.
.PHONY: lab-up lab-down
lab-up: deps apiserver
	@$(GO) run ./test/cmd/lab up $(LAB_ARGS)

lab-down:
	@$(GO) run ./test/cmd/lab down

## bench-failover: layer2 failover times and speaker memory on the network
## lab (root); e.g. BENCH_FAILOVER_ARGS="-trials 20 -out docs/benchmarks.md".
.PHONY: bench-failover
bench-failover: build deps apiserver
	$(GO) run ./test/cmd/bench-failover $(BENCH_FAILOVER_ARGS)

## demo: ironlb running for real on the network lab (root): a control plane,
## three nodes with speakers, a client; prints who announces what and what
## the client gets. make demo-down removes it.
.PHONY: demo demo-down
demo: deps apiserver build
	@IRONLB_BIN_DIR=$(abspath $(BIN)) $(GO) run ./test/cmd/lab up -ironlb -service-cidr=198.18.0.0/16,2001:db8:ffff::/112

demo-down: lab-down
