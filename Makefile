# Targets as in Kubewarden's Rust policies.
SOURCE_FILES := $(shell find src -type f -name '*.rs')
VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
KWCTL ?= kwctl
# Where the policy is published: defined once, in policy-metadata.yml (a test keeps the
# README, examples and Artifact Hub file in step with it).
OCI_URL ?= $(shell sed -n 's/^ *io\.kubewarden\.policy\.ociUrl: *//p' policy-metadata.yml)
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
WASM_TARGET := $(TARGET_DIR)/wasm32-wasip1/release/azure_workload_identity_policy.wasm

# The release build, then wasm-opt (Debian's binaryen) when installed: the same artifact the
# tests load and the release publishes. WASM_OPT_REQUIRED=1 (CI, the release) makes a missing
# wasm-opt an error instead of a loud skip.
WASM_OPT ?= wasm-opt
# The features Rust's wasm32-wasip1 output uses, which wasm-opt must be told about.
WASM_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int
# -Oz: 2% smaller than -O3 and as fast in policy-server (docs/performance.md); rustc's own
# opt-level stays 3, which is what keeps serde's code fast.
WASM_OPT_FLAGS := -Oz $(WASM_FEATURES)
policy.wasm: $(SOURCE_FILES) Cargo.toml Cargo.lock
	cargo build --target=wasm32-wasip1 --release --package azure-workload-identity-policy
	@if command -v $(WASM_OPT) >/dev/null 2>&1; then \
		$(WASM_OPT) $(WASM_OPT_FLAGS) -o policy.wasm.$$$$.tmp $(WASM_TARGET) && mv policy.wasm.$$$$.tmp policy.wasm; \
	elif [ "$${WASM_OPT_REQUIRED:-0}" = 1 ]; then echo "WASM_OPT_REQUIRED=1 but $(WASM_OPT) is not installed (apt-get install binaryen)" >&2; exit 1; \
	else echo "# wasm-opt not installed (apt-get install binaryen): policy.wasm is the unoptimised build" >&2; \
		cp $(WASM_TARGET) policy.wasm.$$$$.tmp && mv policy.wasm.$$$$.tmp policy.wasm; fi
	@echo "policy.wasm: $$(stat -c %s policy.wasm) bytes"

annotated-policy.wasm: policy.wasm policy-metadata.yml README.md
	$(KWCTL) annotate -m policy-metadata.yml -u README.md -o annotated-policy.wasm policy.wasm

.PHONY: test
test: policy.wasm
	cargo test --workspace --locked
	$(MAKE) e2e-tests
	$(MAKE) oci-test
	$(MAKE) chain-tests

# The real admission chain (tests/chain/): kube-apiserver, etcd and kubectl (KUBEBUILDER_ASSETS),
# policy-server (POLICY_SERVER), pytest and PyYAML. Without them it is skipped, naming what is
# missing, unless CHAIN_REQUIRED=1.
.PHONY: chain-tests
chain-tests: policy.wasm
	@if ! python3 -c 'import yaml' 2>/dev/null; then missing="PyYAML (pip install -r .ci/requirements.txt)"; \
	else missing=$$(python3 tests/chain/harness.py | paste -sd';' - | sed 's/;/; /g'); fi; \
	if [ -n "$$missing" ]; then \
		if [ "$${CHAIN_REQUIRED:-0}" = 1 ]; then echo "CHAIN_REQUIRED=1 but the real chain lacks $$missing" >&2; exit 1; fi; \
		echo "# SKIPPING the real-chain suite (tests/chain): it needs $$missing; none of it ran" >&2; \
	else \
		if command -v $(KWCTL) >/dev/null 2>&1; then $(MAKE) --no-print-directory annotated-policy.wasm || exit 1; fi; \
		python3 -m pytest -rs -p no:cacheprovider tests/chain; \
	fi

# Push to a registry on loopback, pull back, compare (needs docker-registry and PyPI's oras).
.PHONY: oci-test
oci-test: policy.wasm
	@if command -v $(KWCTL) >/dev/null 2>&1; then $(MAKE) annotated-policy.wasm; fi
	@if command -v python3 >/dev/null 2>&1; then KWCTL=$(KWCTL) python3 tests/oci/roundtrip.py; \
	elif [ "$${OCI_REQUIRED:-0}" = 1 ]; then echo "OCI_REQUIRED=1 but python3 is not installed" >&2; exit 1; \
	else echo "# SKIPPING the OCI round trip: python3 is not installed; nothing was tested" >&2; fi

# Needs bats (and jq, with kwctl); skipped loudly without bats, unless E2E_REQUIRED=1. The runner
# binary that applies kwctl's patches is the one `cargo test` built (runner/tests/cli.rs needs
# it), with the test build's features: wasmtime is compiled once.
RUNNER_BIN := $(abspath $(TARGET_DIR))/debug/azwi-policy-runner
.PHONY: e2e-tests
e2e-tests: policy.wasm
	@if ! command -v bats >/dev/null 2>&1; then \
		if [ "$${E2E_REQUIRED:-0}" = 1 ]; then echo "E2E_REQUIRED=1 but bats is not installed" >&2; exit 1; fi; \
		echo "# SKIPPING e2e.bats: bats is not installed (Debian: apt-get install bats jq); none of it ran" >&2; \
	else \
		if command -v $(KWCTL) >/dev/null 2>&1; then $(MAKE) --no-print-directory annotated-policy.wasm || exit 1; fi; \
		KWCTL=$(KWCTL) RUNNER_BIN=$(RUNNER_BIN) bats e2e.bats; \
	fi

RUNNER := cargo run --quiet --package azwi-policy-runner --
EXAMPLE_ARGS := --request-path examples/admission-request.json --settings-path examples/settings.yaml \
	--replay-host-capabilities-interactions examples/session.yml

# Evaluates the example request: with kwctl when it is installed (the response, then its patch
# decoded: nothing more to compile), else with the waPC runner the tests use (which compiles
# wasmtime once).
.PHONY: example
example: policy.wasm
	@if command -v $(KWCTL) >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory annotated-policy.wasm && mkdir -p $(TARGET_DIR) && \
		$(KWCTL) run --allow-context-aware $(EXAMPLE_ARGS) annotated-policy.wasm > $(TARGET_DIR)/example-response.json && \
		cat $(TARGET_DIR)/example-response.json && echo "# the patch, decoded" && \
		python3 -c 'import base64, json, sys; r = json.load(sys.stdin); print(json.dumps(json.loads(base64.b64decode(r["patch"])), indent=2) if r.get("patch") else "(none)")' \
			< $(TARGET_DIR)/example-response.json; \
	else \
		echo "kwctl not found: evaluating with the waPC runner" >&2; \
		$(RUNNER) run --policy policy.wasm $(EXAMPLE_ARGS); \
	fi

.PHONY: push
push: annotated-policy.wasm
	$(KWCTL) push annotated-policy.wasm registry://$(OCI_URL):v$(VERSION)

.PHONY: oci-url
oci-url:
	@echo $(OCI_URL)

.PHONY: fmt
fmt:
	cargo fmt --all -- --check

.PHONY: lint
lint:
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target=wasm32-wasip1 --release --package azure-workload-identity-policy -- -D warnings

.PHONY: clean
clean:
	cargo clean
	rm -f policy.wasm annotated-policy.wasm

BASELINE_WASM := $(TARGET_DIR)/wasm32-wasip1/release/azwi_bench_baseline.wasm
PEER_WASM := $(TARGET_DIR)/wasm32-wasip1/release/azwi_bench_peer.wasm

# Benchmarks, not pass/fail tests: evaluation time per scenario and module sizes.
.PHONY: bench
bench: policy.wasm
	cargo build --target=wasm32-wasip1 --release --package azwi-bench-baseline --package azwi-bench-peer
	cargo run --quiet --package azwi-bench -- --policy policy.wasm --baseline $(BASELINE_WASM) --peer $(PEER_WASM)
	@echo
	@echo "| module | bytes |"
	@echo "|---|---:|"
	@echo "| policy.wasm (as built: the release profile, then wasm-opt where installed) | $$(stat -c %s policy.wasm) |"
	@echo "| the release profile alone | $$(stat -c %s $(WASM_TARGET)) |"
	@if command -v $(WASM_OPT) >/dev/null 2>&1; then \
		$(WASM_OPT) -O3 $(WASM_FEATURES) -o $(TARGET_DIR)/policy.o3.wasm $(WASM_TARGET) && \
		echo "| the release profile after wasm-opt -O3 | $$(stat -c %s $(TARGET_DIR)/policy.o3.wasm) |"; \
	else echo "| wasm-opt -O3 | wasm-opt not installed (apt-get install binaryen) |"; fi
	@echo "| decode-only baseline | $$(stat -c %s $(BASELINE_WASM)) |"
	@echo "| SDK-style peer | $$(stat -c %s $(PEER_WASM)) |"
	@echo
	@if command -v $(KWCTL) >/dev/null 2>&1; then KWCTL=$(KWCTL) bash bench/kwctl-bench.sh policy.wasm $(PEER_WASM); \
	else echo "# kwctl not found: the kwctl bench comparison with the peer did not run"; fi
	@echo
	@KWCTL=$(KWCTL) python3 bench/policy-server-bench.py policy.wasm $(PEER_WASM) $(BASELINE_WASM)

# Bounded fuzzing of the request decoder + core and of the settings. Crashes land in
# fuzz/artifacts/<target>/; move each request crash to fuzz/regressions/, where
# tests/module/fuzz_corpus.rs replays it on every cargo test.
FUZZ_SECONDS ?= 60
# cargo tools pinned once (CI installs through these targets; PyPI tools: .ci/requirements.txt).
CARGO_FUZZ_VERSION := 0.13.2
CARGO_MUTANTS_VERSION := 27.1.0
.PHONY: fuzz
fuzz:
	cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $(CARGO_FUZZ_VERSION)" || cargo install cargo-fuzz --version $(CARGO_FUZZ_VERSION) --locked
	cd fuzz && for t in request settings; do \
		mkdir -p corpus/$$t && \
		RUSTC_BOOTSTRAP=1 cargo fuzz run -O $$t corpus/$$t seeds/$$t -- \
			-dict=json.dict -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -max_len=65536 || exit 1; \
	done

# Line and region coverage of the mutation code (and the allowlist rules) reached by the request
# fuzz target's seeds plus whatever corpus a `make fuzz` run left behind.
COVERAGE_FILES ?= src/webhook/plan.rs src/webhook/inject.rs src/webhook/proxy.rs src/webhook/rules.rs src/guard/allowlist.rs src/guard/grants.rs
HOST_TRIPLE = $(shell rustc -vV | sed -n 's/^host: //p')
LLVM_COV = $(shell rustc --print sysroot)/lib/rustlib/$(HOST_TRIPLE)/bin/llvm-cov
.PHONY: fuzz-coverage
fuzz-coverage:
	cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $(CARGO_FUZZ_VERSION)" || cargo install cargo-fuzz --version $(CARGO_FUZZ_VERSION) --locked
	rustup component add llvm-tools
	cd fuzz && mkdir -p corpus/request && RUSTC_BOOTSTRAP=1 cargo fuzz coverage request corpus/request seeds/request
	$(LLVM_COV) report fuzz/target/$(HOST_TRIPLE)/coverage/$(HOST_TRIPLE)/release/request \
		-instr-profile=fuzz/coverage/request/coverage.profdata $(abspath $(COVERAGE_FILES))

# Mutation testing of the pure core's rule-dense files against the unit and property tests:
# how many injected bugs the tests catch. Slow (a rebuild per mutant); not part of `make test`.
# `--cargo-arg` (not args after `--`) so each mutant builds only those two test targets.
MUTANT_FILES ?= src/webhook/rules.rs src/webhook/plan.rs src/webhook/layout.rs src/webhook/inject.rs src/guard/final_pod.rs src/guard/warnings.rs src/guard/keys.rs src/webhook/proxy.rs src/guard/allowlist.rs src/guard/grants.rs src/guard/rbac.rs src/settings.rs src/guard/holders.rs src/guard/placement.rs src/guard/unchanged.rs src/guard/claim.rs src/admission/candidate.rs src/admission/opted_in.rs src/admission/claiming.rs src/guard/catalogue.rs src/admission/identity.rs src/syntax.rs
# The module-based properties run the unmutated module (built once, copied aside): each mutant
# is a change of the native core, caught where the core no longer agrees with it.
.PHONY: mutants
mutants: policy.wasm
	cargo mutants --version 2>/dev/null | grep -qx "cargo-mutants $(CARGO_MUTANTS_VERSION)" || cargo install cargo-mutants --version $(CARGO_MUTANTS_VERSION) --locked
	mkdir -p $(TARGET_DIR) && cp policy.wasm $(TARGET_DIR)/mutants-policy.wasm
	POLICY_WASM=$(abspath $(TARGET_DIR))/mutants-policy.wasm cargo mutants --package azure-workload-identity-policy \
		$(foreach f,$(MUTANT_FILES),--file $(f)) --cargo-arg=--lib --cargo-arg=--test=properties
