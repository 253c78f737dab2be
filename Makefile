# sitemon — developer entry points. `make test` is what CI runs (via .ci/run).
SHELL := /bin/bash
CARGO ?= cargo

SOAK_MINUTES ?= 10

.PHONY: test lint lint-container fmt build release bench soak services-up services-down deps

## test: install what is missing, start Kafka + PostgreSQL, run every test, then a 2-minute soak
test: deps
	@scripts/avro-peer install
	@scripts/smtp-server install
	@env=$$(scripts/services up) && eval "$$env" && $(CARGO) test --locked --all-targets \
		&& CARGO="$(CARGO)" python3 scripts/soak.py --minutes 2 --profile debug

## lint: rustfmt check, clippy with warnings as errors, and lint-container
lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	@scripts/lint-container

## lint-container: hadolint on the Dockerfile, dclint on docker-compose.test.yml (both installed into .tools/ when missing; about 20 s the first time, 3 s after)
lint-container:
	@scripts/lint-container

## bench: benchmarks B1-B7, each beside a ceiling measured in the same run; writes BENCHMARKS.md (about 12 minutes; BENCH_ONLY=b4 or b5 runs one and rewrites only its section)
bench: deps
	python3 scripts/bench.py

## soak: producer + consumers under injected faults for SOAK_MINUTES (10); every slot stored exactly once? writes BENCHMARKS.md's Soak section
soak: deps
	CARGO="$(CARGO)" python3 scripts/soak.py --minutes $(SOAK_MINUTES) --write-benchmarks

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
