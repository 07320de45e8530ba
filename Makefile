# outpost: the commands that matter. `make` alone lists them.
#
#   make run    build (release) and start the broker on its embedded default config;
#               storage in ./data
#   make test   install what the tests need, then: fmt check, clippy -D warnings, all tests
#   make kafka  assemble Apache Kafka (for the forwarder tests) into a cache outside the clone
#   make venv   the project venv .venv with confluent-kafka (the tests' verifying client)
#
# GNU make. Recipes are plain commands so a failure stops the target loudly.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
# The binary `make run` starts; follows CARGO_TARGET_DIR when it is set.
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
# Arguments for the storage benchmark, e.g. BENCH_ARGS='--quick' (see `make bench BENCH_ARGS=--help`).
BENCH_ARGS ?=
# Seconds each fuzz target runs for.
FUZZ_SECONDS ?= 60
# Power cuts the soak test simulates.
OUTPOST_SOAK_CUTS ?= 200000

# A real Apache Kafka for the forwarder tests and bench (tools/kafka), from Maven Central,
# cached outside the clone so repeated runs on one machine download once. Pinned: the same
# version is in tools/kafka/pom.xml and tests/support/kafka.rs.
KAFKA_VERSION := 4.1.1
OUTPOST_CACHE_DIR ?= $(HOME)/.cache/outpost
OUTPOST_KAFKA_HOME ?= $(OUTPOST_CACHE_DIR)/kafka-$(KAFKA_VERSION)
# The project venv (tools/py/requirements.txt: confluent-kafka).
VENV := $(CURDIR)/.venv
OUTPOST_PYTHON ?= $(VENV)/bin/python
# What tests/support/kafka.rs reads, for every recipe (test, bench, kafka-bench).
export OUTPOST_KAFKA_HOME OUTPOST_PYTHON
# make kafka-bench: confluent-kafka's own transactional producer against a local Kafka.
TXN_BENCH_RECORDS ?= 1000000
TXN_BENCH_RECORD_BYTES ?= 100
TXN_BENCH_TXN_RECORDS ?= 10000
TXN_BENCH_PARTITIONS ?= 1
# Records sent (committed, untimed) before the timed run: a fresh broker's JIT warms up.
TXN_BENCH_WARMUP ?= 100000

.PHONY: help run test test-tools bench fuzz soak fmt clean kafka venv kafka-bench

help:
	@echo "outpost make targets:"
	@echo "  make run     build (release) and run 'outpost serve' on the embedded default config"
	@echo "               (board x86_64-dev, storage in ./data)"
	@echo "  make test    install what the tests need (rustfmt, clippy, Kafka, a venv), then fmt check,"
	@echo "               clippy -D warnings, all tests"
	@echo "  make bench   storage benchmark, broker benchmark (outpost bench), forwarder drain vs"
	@echo "               confluent-kafka's transactional producer on a local Kafka, the squares"
	@echo "               pipeline exactly-once vs at-least-once; print tables"
	@echo "  make kafka   assemble Apache Kafka $(KAFKA_VERSION) with mvn into $(OUTPOST_KAFKA_HOME)"
	@echo "               (once; OUTPOST_CACHE_DIR moves the cache)"
	@echo "  make venv    .venv with confluent-kafka (tools/py/requirements.txt)"
	@echo "  make kafka-bench  confluent-kafka's transactional producer against a local Kafka:"
	@echo "               $(TXN_BENCH_RECORDS) x $(TXN_BENCH_RECORD_BYTES) B, $(TXN_BENCH_TXN_RECORDS) per transaction"
	@echo "  make fuzz    every fuzz target for FUZZ_SECONDS=$(FUZZ_SECONDS) s (installs cargo-fuzz)"
	@echo "  make soak    long power-cut simulations (records, then producers and offsets),"
	@echo "               OUTPOST_SOAK_CUTS=$(OUTPOST_SOAK_CUTS) cuts each"
	@echo "  make fmt     format the code"
	@echo "  make clean   remove build artefacts (never ./data)"

run:
	$(CARGO) build --release
	$(TARGET_DIR)/release/outpost serve

# What the tests need: cargo, rustfmt and clippy (installed through rustup when missing).
test-tools:
	@command -v $(CARGO) >/dev/null || { echo "make: cargo not found; install Rust with https://rustup.rs" >&2; exit 1; }
	@$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt || { echo "make: rustfmt is missing and 'rustup component add rustfmt' failed" >&2; exit 1; }
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy || { echo "make: clippy is missing and 'rustup component add clippy' failed" >&2; exit 1; }

# `cargo test --all-targets` also runs benches/storage.rs (without --bench): as a quick
# smoke run, so the tests stay fast.
test: test-tools kafka venv
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	OUTPOST_BENCH_QUICK=1 $(CARGO) test --all-targets
	# The wire protocol alone, without std: what a device-side client links.
	$(CARGO) build --lib --no-default-features
	$(CARGO) clippy --lib --no-default-features -- -D warnings

# Storage alone (durable appends vs the disk's raw limit), then the broker end to end through
# the protocol (issue 4's workloads: W=1000 unacked, acks=durable, a broker it starts itself),
# then the forwarder's backlog drain to a local Kafka vs confluent-kafka's own transactional
# producer (issue 6; OUTPOST_BENCH_FWD_* variables, see benches/forward.rs); then the squares
# pipeline (examples/squares.rs) draining 200,000 records exactly once vs at least once
# (OUTPOST_BENCH_PIPE_* variables, see benches/pipeline.rs).
bench: kafka venv
	$(CARGO) bench --bench storage -- $(BENCH_ARGS)
	$(CARGO) build --release
	$(TARGET_DIR)/release/outpost bench --records 1000000 --record-bytes 100 --window 1000 --acks durable
	$(TARGET_DIR)/release/outpost bench --records 200000 --record-bytes 1024 --window 1000 --acks durable
	$(CARGO) bench --bench forward
	$(CARGO) build --release --example squares
	$(CARGO) bench --bench pipeline

# Kafka jars + log4j2.xml into $(OUTPOST_KAFKA_HOME); does nothing when already there.
kafka:
	@tools/kafka/assemble.sh $(KAFKA_VERSION) "$(OUTPOST_KAFKA_HOME)"

# .venv with tools/py/requirements.txt; does nothing when its stamp matches.
venv:
	@tools/py/setup_venv.sh "$(VENV)"

# One Kafka (full JIT: tools/kafka/run.sh) in a temp dir, one topic, then txn_bench.py.
kafka-bench: kafka venv
	@dir=$$(mktemp -d "$${TMPDIR:-/tmp}/outpost-kafka-bench.XXXXXX"); \
	trap 'tools/kafka/run.sh stop "'"$$dir"'"; rm -rf "'"$$dir"'"' EXIT; \
	bs=$$(tools/kafka/run.sh start "$$dir"); \
	"$(OUTPOST_PYTHON)" tools/py/kafka_tool.py create-topic --bootstrap "$$bs" --topic txn-bench --partitions $(TXN_BENCH_PARTITIONS) >/dev/null; \
	"$(OUTPOST_PYTHON)" tools/py/txn_bench.py --bootstrap "$$bs" --topic txn-bench \
		--records $(TXN_BENCH_RECORDS) --record-bytes $(TXN_BENCH_RECORD_BYTES) --txn-records $(TXN_BENCH_TXN_RECORDS) \
		--warmup-records $(TXN_BENCH_WARMUP)

fuzz:
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked || { echo "make: cargo-fuzz is missing and 'cargo install cargo-fuzz --locked' failed" >&2; exit 1; }
	@test -f fuzz/Cargo.toml || { echo "make: fuzz/Cargo.toml is missing" >&2; exit 1; }
	@targets=$$(ls fuzz/fuzz_targets/*.rs 2>/dev/null) || true; \
	if [ -z "$$targets" ]; then echo "make: no fuzz targets in fuzz/fuzz_targets/" >&2; exit 1; fi; \
	for f in $$targets; do \
		name=$$(basename "$$f" .rs); \
		echo "== fuzz $$name for $(FUZZ_SECONDS) s"; \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run "$$name" -- -max_total_time=$(FUZZ_SECONDS); \
	done

soak:
	OUTPOST_SOAK_CUTS=$(OUTPOST_SOAK_CUTS) $(CARGO) test --release --test power_cut -- --ignored --nocapture
	OUTPOST_SOAK_CUTS=$(OUTPOST_SOAK_CUTS) $(CARGO) test --release --test producer_power_cut -- --ignored --nocapture

fmt:
	$(CARGO) fmt

clean:
	$(CARGO) clean
