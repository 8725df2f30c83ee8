# pipelined: make demo | test | bench | pgo | check | build
# Large downloads (libchdb.so for the local ClickHouse) go to $(CACHE), outside git.

GO      ?= go
CACHE   ?= $(or $(PIPELINED_CACHE),$(HOME)/.cache/pipelined)
export PIPELINED_CACHE := $(CACHE)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build demo test test-short bench pgo check check-deploy chdb pulsar-local clickhouse-local fuzz clean

all: build

## build: the pipelined binary
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o pipelined .

## chdb: fetch libchdb.so (the ClickHouse engine behind the local ClickHouse) into the cache, once
chdb:
	@command -v npm >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }; } || \
		{ echo "make chdb: npm is needed: apt-get install npm" >&2; exit 1; }
	@sh internal/chlocal/fetch-chdb.sh >/dev/null

## demo: local Pulsar + producer + pipelined + local ClickHouse, end to end, with a readable result
demo: chdb build
	$(GO) run ./internal/cmd/demo -pipelined ./pipelined

# The packages of the patched pulsar-client-go (internal/third_party/pulsar-client-go, a module
# of its own that go.mod's replace points at) that carry tests of the patches: ./... skips them.
PATCHED_PKGS = github.com/apache/pulsar-client-go/pulsar github.com/apache/pulsar-client-go/pulsar/internal

# The packages that make test runs again under the race detector: all but the end-to-end tests
# (./tests), which take some twenty minutes under it; TestMetricsPartitionsWhileReceived stands
# in for the one race they found.
RACE_PKGS = $(shell $(GO) list ./... | grep -v '/tests$$')

## test: every test (unit, fuzz seeds, end-to-end through real TCP), the packages but the
## end-to-end tests again under the race detector, then each benchmark once
test: chdb
	$(GO) vet ./... $(PATCHED_PKGS)
	$(GO) test -count=1 -timeout 40m ./... $(PATCHED_PKGS)
	$(GO) test -count=1 -race -timeout 20m $(RACE_PKGS)
	$(GO) test -count=1 -run '^$$' -bench . -benchtime=1x ./... $(PATCHED_PKGS)

## bench: the hot-path Go benchmarks, then the backlog benchmark, under the same transparent huge
## pages mode (-hotpath-count); both tables in bench/RESULTS.md
bench: chdb build
	$(GO) run ./bench -pipelined ./pipelined

## pgo: renew the CPU profiles behind profile-guided optimisation from one drain of each backlog:
## default.pgo (pipelined; go build uses it) and bench/default.pgo (the bench's bare client)
PGO_DIR = $(CACHE)/pgo
pgo: chdb build
	@mkdir -p $(PGO_DIR)
	$(GO) run ./bench -pipelined ./pipelined -rounds 1 -results "" -padded-n 0 -hotpath-count 0 \
		-pipelined-cpuprofile $(PGO_DIR)/pipelined-41.pprof -bare-cpuprofile $(PGO_DIR)/bare-41.pprof
	$(GO) run ./bench -pipelined ./pipelined -rounds 1 -results "" -n 0 -hotpath-count 0 \
		-pipelined-cpuprofile $(PGO_DIR)/pipelined-300.pprof -bare-cpuprofile $(PGO_DIR)/bare-300.pprof
	$(GO) tool pprof -proto $(PGO_DIR)/pipelined-41.pprof $(PGO_DIR)/pipelined-300.pprof > default.pgo
	$(GO) tool pprof -proto $(PGO_DIR)/bare-41.pprof $(PGO_DIR)/bare-300.pprof > bench/default.pgo
	$(MAKE) build

## check: formatting, vet and lint
check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

## check-deploy: ansible-lint, syntax check, the pipelined role applied to a throwaway Debian root, systemd-analyze
check-deploy: build
	bash ansible/tests/check-deploy.sh

## fuzz: run each fuzz target for a while (FUZZTIME, default 30s)
FUZZTIME ?= 30s
FUZZ_TARGETS = ./internal/avrodec:FuzzDecode ./internal/avrodec:FuzzDecodeVarints ./pipeline:FuzzLoadConfig ./pipeline:FuzzDecodeAndAggregate \
	./internal/registry:FuzzReadFrame ./internal/pulsarlocal:FuzzReadFrame \
	./internal/chlocal:FuzzDecode ./internal/chlocal:FuzzServe \
	internal/third_party/pulsar-client-go/./pulsar/internal:FuzzSingleMetadata \
	internal/third_party/pulsar-client-go/./pulsar/internal:FuzzMessageMetadata \
	internal/third_party/pulsar-client-go/./pulsar/internal:FuzzMessageCommand
# A target's package is fuzzed from the module it belongs to (the text before /./, if any):
# go test -fuzz takes only packages of the main module.
fuzz: chdb
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; mod=.; \
		case $$pkg in */./*) mod=$${pkg%%/./*}; pkg=./$${pkg#*/./};; esac; \
		if grep -qs "func $$fn(" $$mod/$$pkg/*_test.go; then \
			echo "== $$mod $$pkg $$fn"; (cd $$mod && $(GO) test $$pkg -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -test.fuzzminimizetime=1s) || exit 1; fi; done

## pulsar-local: the local Pulsar broker on 127.0.0.1:6650 (PULSAR_LISTEN=host:port), until Ctrl-C
pulsar-local:
	$(GO) run ./internal/cmd/pulsar-local

## clickhouse-local: the local ClickHouse on 127.0.0.1:9000 (CLICKHOUSE_LISTEN, CLICKHOUSE_DATA), until Ctrl-C
clickhouse-local: chdb
	$(GO) run ./internal/cmd/clickhouse-local

clean:
	rm -f pipelined
