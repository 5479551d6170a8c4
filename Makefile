# llmgate — see README.md. Every target installs what it needs from the package registries.
SHELL      := /bin/bash
GO         ?= go
BIN        := bin
MODULE     := github.com/llmgate/llmgate
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -X $(MODULE)/gateway.version=$(VERSION)
LISTEN     ?= 127.0.0.1:8080
ADMIN      ?= 127.0.0.1:8081
SIM_LISTEN ?= 127.0.0.1:8000
FUZZTIME   ?= 20s
BENCH_RATE     ?= 200
BENCH_DURATION ?= 10s
BENCHTIME      ?= 1s
SOAK_DURATION  ?= 5m
GOLANGCI_VERSION := v2.15.0
GOLANGCI   := $(shell $(GO) env GOPATH)/bin/golangci-lint
# Leaves import no other project package; the one allowed edge is sim -> tokenizer.
LEAVES     := telemetry tokenizer gateway/sse internal/otlptest

.PHONY: all build run test vet unit e2e fuzz depcheck lint bench soak clean tools rules

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/llmgate ./cmd/llmsim

## run: start llmsim and llmgate on loopback with configs/llmgate.yaml; Ctrl-C stops both.
run: build
	@set -m; trap 'kill $$sim $$gw 2>/dev/null; wait' EXIT INT TERM; \
	$(BIN)/llmsim -listen $(SIM_LISTEN) -model sim-model -model sim-small & sim=$$!; \
	$(BIN)/llmgate -config configs/llmgate.yaml -listen $(LISTEN) -admin-listen $(ADMIN) & gw=$$!; \
	for i in $$(seq 100); do curl -sf http://$(LISTEN)/readyz >/dev/null 2>&1 && break; \
	  kill -0 $$gw 2>/dev/null || { echo "llmgate did not start" >&2; exit 1; }; sleep 0.1; done; \
	echo; echo "llmgate is up. Point an OpenAI client at:  base_url = http://$(LISTEN)/v1"; \
	echo "  models: sim-model, sim-small (served by llmsim on $(SIM_LISTEN))"; \
	echo "  metrics: http://$(ADMIN)/metrics      Ctrl-C stops both."; echo; \
	wait $$gw

## test: every test the project has (vet, dependency graph, race unit tests, fuzz, the monitoring
## rules, end to end).
test: vet depcheck unit fuzz tools rules e2e

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: files above need formatting" >&2; exit 1; }

unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v '/test$$')
	$(GO) test -count=1 -run 'Allocs' ./gateway/   # allocation counts: without -race, whose sync.Pool drops items

e2e: tools   # the Prometheus end-to-end test runs Debian's prometheus
	$(GO) test -race -count=1 -timeout 10m ./test/...

fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzDecoder -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./gateway/sse

## tools: Debian's prometheus package (prometheus and promtool 2.42), which `make rules` and the
## end-to-end Prometheus test use; installed with apt-get when promtool or prometheus is missing
## (as root, or through sudo). A policy-rc.d keeps the package from starting its service (a
## daemon on :9090) and the service is left disabled.
tools:
	@if command -v promtool >/dev/null && command -v prometheus >/dev/null; then exit 0; fi; \
	set -e; sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; policy=/usr/sbin/policy-rc.d; added=; \
	echo "tools: installing Debian's prometheus package"; \
	if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' | $$sudo tee $$policy >/dev/null; \
	  $$sudo chmod 755 $$policy; added=1; fi; \
	trap '[ -z "$$added" ] || $$sudo rm -f '$$policy EXIT; \
	$$sudo apt-get update; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; \
	if command -v systemctl >/dev/null; then $$sudo systemctl disable --quiet prometheus 2>/dev/null || true; fi; \
	promtool --version | head -1

## rules: promtool checks configs/prometheus.yml (with the rule file it loads, resolved next to
## it), configs/alerts.yml, and runs the rule unit tests of configs/alerts_test.yml.
rules: tools
	promtool check config configs/prometheus.yml
	promtool check rules configs/alerts.yml
	promtool test rules configs/alerts_test.yml

depcheck:
	@fail=0; for p in $(LEAVES) sim; do \
	  allowed='^$$'; [ $$p = sim ] && allowed='^$(MODULE)/tokenizer$$'; \
	  bad=$$($(GO) list -deps ./$$p | grep '^$(MODULE)/' | grep -v "^$(MODULE)/$$p$$" | grep -v -E "$$allowed" || true); \
	  if [ -n "$$bad" ]; then echo "depcheck: $$p imports project packages: $$bad" >&2; fail=1; fi; \
	done; exit $$fail
	@echo "depcheck: leaves import no other project package"

## bench: open-loop load benchmark (llmsim direct, a plain ReverseProxy, llmgate) and the relay
## micro-benchmarks; about 2-3 minutes. See docs/performance.md.
bench:
	$(GO) run ./bench/loadgen -rate $(BENCH_RATE) -duration $(BENCH_DURATION)
	$(GO) test -run='^$$' -bench=. -benchtime=$(BENCHTIME) ./gateway/ ./gateway/sse/ ./tokenizer/

## soak: mixed traffic with every injected fault for SOAK_DURATION against the built binaries,
## then checks that llmgate leaked no goroutines, descriptors or in-flight requests.
soak:
	$(GO) test -tags soak -race -count=1 -run '^TestSoak$$' -timeout 0 -v ./test/ -args -soak.duration=$(SOAK_DURATION)

## lint: golangci-lint with the linters of .golangci.yml; installs the pinned version if missing.
lint:
	@$(GOLANGCI) version 2>/dev/null | grep -q 'version $(GOLANGCI_VERSION:v%=%) ' || \
	  $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)
	$(GOLANGCI) run ./...

clean:
	rm -rf $(BIN)
