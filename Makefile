# sitemon — developer entry points. `make test` is what CI runs (via .ci/run).
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: test lint fmt build release bench services-up services-down deps

## test: install what is missing, start Kafka + PostgreSQL, run every test
test: deps
	@env=$$(scripts/services up) && eval "$$env" && $(CARGO) test --locked --all-targets

## lint: rustfmt check and clippy with warnings as errors
lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

## bench: benchmarks B1-B3, each beside a ceiling measured in the same run; writes BENCHMARKS.md (about 5 minutes)
bench: deps
	python3 scripts/bench.py

fmt:
	$(CARGO) fmt --all

build: deps
	$(CARGO) build --locked

release: deps
	$(CARGO) build --locked --release

## deps: system packages the build needs (C toolchain, OpenSSL and zlib headers for librdkafka)
deps:
	@scripts/deps

services-up:
	@scripts/services up

services-down:
	@scripts/services down
