# make targets are the interface: people and CI call the same ones.
GO       ?= go
PKGS     := ./...
# Fuzz budgets are execution counts, not durations: with a duration, Go
# 1.26's fuzz coordinator can fail a clean run with "context deadline
# exceeded" when a loaded machine starves a worker at the deadline
# (golang/go#75804, fixed in Go 1.27). FUZZ_DECODE=2000000x for longer runs.
FUZZ_DECODE ?= 100000x
FUZZ_LOAD   ?= 2000x

.PHONY: all build test faults fuzz lint bench demo clickhouse graph screenshots

all: build

build:
	$(GO) build $(PKGS)

## demo: embedded broker, generated traffic, engine, decisions stored in a
## local ClickHouse (started, or installed from Debian's packages, first).
EVENTS ?= 100000
demo: clickhouse
	$(GO) run ./cmd/riskd demo --events $(EVENTS)

## clickhouse: make sure a local ClickHouse answers on 127.0.0.1:9000.
clickhouse:
	scripts/clickhouse-up

## test: vet, the race-checked suite (integration tests use the local
## ClickHouse and the embedded broker; the console's browser tests drive
## headless Chromium, and fail without it when CI=true), then each fuzz
## target briefly.
test: lint
	@scripts/clickhouse-up || echo "no local ClickHouse: its integration tests skip (with CI=true they fail)"
	$(GO) test -race -count=1 -timeout 25m $(PKGS)
	$(MAKE) fuzz

## faults: the fault tests in full (cmd/riskd/faults_test.go): the riskd
## binary on a backlog of generated traffic, against the embedded broker
## (and Apache Kafka too when RISKD_TEST_KAFKA is set) and the local
## ClickHouse, killed -9 at seeded random points, joined and left by a
## second instance, stopped while ClickHouse is unreachable, restarted on a
## damaged snapshot; each run must store every event once, decide it as an
## uninterrupted run does and keep every lock. make test runs a short form
## (one kill on a small stream). RISKD_TEST_FAULTS_SEED=N draws other kill
## points.
faults: clickhouse
	RISKD_TEST_FAULTS=full $(GO) test -count=1 -timeout 20m -run '^TestFaults' -v ./cmd/riskd/

## screenshots: the console's browser tests, writing a screenshot of each
## page to docs/console/ (docs/CONSOLE.md).
screenshots: clickhouse
	RISKD_CONSOLE_SCREENSHOTS=$(CURDIR)/docs/console $(GO) test -count=1 -run '^TestConsole' ./cmd/riskd/

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZ_DECODE) ./event/
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZ_LOAD) ./rules/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## graph: rewrite the package graph of docs/ARCHITECTURE.md from go list
## (internal/layout's tests fail while it is stale).
graph:
	$(GO) run ./internal/layout/cmd/graph

## bench: the end-to-end harness (bench/e2e): embedded broker, the reference
## workload, riskd as a child process, ClickHouse; writes bench/results/
## (latest.json, latest.png, profiles). See bench/RESULTS.md, "End-to-end".
bench: clickhouse
	$(GO) run ./bench/e2e $(BENCH_FLAGS)

## bench-micro: the Go benchmarks of the scoring core (see bench/RESULTS.md).
bench-micro:
	$(GO) test -run '^$$' -bench '^BenchmarkDecode$$' -benchmem ./event/
	$(GO) test -run '^$$' -bench '^BenchmarkEval$$' -benchmem ./rules/
	$(GO) test -run '^$$' -bench '^BenchmarkScoreReference$$' -benchmem ./engine/
	$(GO) test -run '^$$' -bench '^BenchmarkReferenceHeapPerAccount$$' -benchtime 1x ./engine/

## kafka-up / kafka-down: a single-node Apache Kafka 4.x (KRaft) on
## 127.0.0.1:19092 from Maven Central, for the suite's Apache Kafka runs:
## export the RISKD_TEST_KAFKA line kafka-up prints, then make test.
.PHONY: kafka-up kafka-down sql-check
kafka-up:
	scripts/kafka-up

kafka-down:
	scripts/kafka-down

## readme-check: every shell block of README.md, run as written
## (scripts/readme-check says how each block is checked).
.PHONY: readme-check
readme-check: clickhouse
	scripts/readme-check

## sql-check: every migration and query riskd sends, run on a current
## ClickHouse engine (chdb-core from PyPI, in a cached virtualenv).
sql-check:
	scripts/chdb-check
