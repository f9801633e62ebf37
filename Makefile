# pg_privacy — the two commands a newcomer runs: `make demo` and `make test`.
#
# Everything runs as root on the build machine; PostgreSQL itself always runs
# as the `postgres` OS user (initdb refuses root). Each target installs what is
# missing first: Debian packages, cargo-pgrx 0.18.1, pgrx's configuration
# (kept in ./pgrx-config, pointing at the system /usr/bin/pg_config).

SHELL        := /bin/bash
PG_CONFIG    ?= /usr/bin/pg_config
PGRX_VERSION := 0.18.1
export PGRX_HOME := $(CURDIR)/pgrx-config
# Installing the extension writes into PostgreSQL's system directories: one
# build at a time (several checkouts on one machine share them).
LOCK         := flock /tmp/pg_privacy-install.lock
APT_PACKAGES := postgresql-15 postgresql-contrib postgresql-server-dev-15 libclang-dev clang sudo pkg-config python3-cryptography
# Clusters and pgrx's test data live outside the checkout, where the postgres
# user can always reach them (same rule as tests/lib.sh).
RUN_DIR      := $(or $(PG_PRIVACY_RUN_DIR),/tmp/pg_privacy-$(shell printf %s "$(CURDIR)" | md5sum | cut -c1-8))
TEST_PGDATA  := $(RUN_DIR)/pgrx-test-data

.PHONY: all deps demo test test-pg test-integration _test-pg _test-integration install bench fmt clean

all: install

## deps: Debian packages, cargo-pgrx, pgrx configuration — only what is missing
deps: .deps-apt .deps-cargo-pgrx pgrx-config/config.toml

.deps-apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@touch $@

.deps-cargo-pgrx:
	@if [ "$$(cargo pgrx --version 2>/dev/null)" != "cargo-pgrx $(PGRX_VERSION)" ]; then \
	  echo "installing cargo-pgrx $(PGRX_VERSION) (takes a few minutes, once)"; \
	  cargo install cargo-pgrx --version $(PGRX_VERSION) --locked; \
	fi
	@touch $@

pgrx-config/config.toml:
	cargo pgrx init --pg15 $(PG_CONFIG)

## install: build (release) and install into the system PostgreSQL 15,
## through temporary files renamed into place (a running server keeps its
## mapped library; restart it to load the new one)
install: deps
	$(LOCK) env PG_CONFIG=$(PG_CONFIG) tools/install.sh

## demo: throwaway cluster with the extension preloaded, plays examples/demo.sql
demo: install
	@bash examples/run-demo.sh

## test: every test — unit, #[pg_test], SQL scenarios, integration
test: deps
	$(LOCK) $(MAKE) --no-print-directory _test-pg _test-integration
	@echo "all test suites passed"

# Unit tests and #[pg_test]s only; T=filter runs the tests whose name matches.
test-pg: deps
	$(LOCK) $(MAKE) --no-print-directory _test-pg

# SQL scenario tests (pg_regress) and cluster tests (dump/restore, worker,
# crash, standby) against clusters they start under $(RUN_DIR)/clusters.
# ONLY=name runs tests/regress (ONLY=regress) or tests/integration/name.sh.
test-integration: deps
	$(LOCK) $(MAKE) --no-print-directory _test-integration

_test-pg:
	install -d -m 755 $(RUN_DIR)
	install -d -o postgres -g postgres $(TEST_PGDATA)
	cargo pgrx test pg15 --runas postgres --pgdata $(TEST_PGDATA) $(T)

_test-integration:
	env PG_CONFIG=$(PG_CONFIG) tools/install.sh --debug
	bash tests/run-all.sh $(ONLY)

bench: install
	bash bench/run.sh

fmt:
	cargo fmt

clean:
	cargo clean
	rm -f .deps-apt .deps-cargo-pgrx
