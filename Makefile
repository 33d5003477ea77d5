# make targets are the interface: people and CI call the same ones.
GO       ?= go
PKGS     := ./...
FUZZTIME ?= 5s

.PHONY: all build test fuzz lint bench

all: build

build:
	$(GO) build $(PKGS)

## test: vet, the race-checked suite, then each fuzz target briefly.
test: lint
	$(GO) test -race -count=1 $(PKGS)
	$(MAKE) fuzz

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./engine/event/
	@if grep -qs 'func FuzzLoad' rules/*_test.go; then \
		$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./rules/; fi

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## bench: the Go benchmarks of the scoring core (see bench/RESULTS.md).
bench:
	$(GO) test -run '^$$' -bench '^BenchmarkDecode$$' -benchmem ./engine/event/
	$(GO) test -run '^$$' -bench '^BenchmarkEval$$' -benchmem ./rules/
	$(GO) test -run '^$$' -bench '^BenchmarkScoreReference$$' -benchmem ./engine/
	$(GO) test -run '^$$' -bench '^BenchmarkReferenceHeapPerAccount$$' -benchtime 1x ./engine/
