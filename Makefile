# tollgate: `make run` starts the demo, `make test` runs every check. See README.md.

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)

VENV    := .venv
PYTHON  := $(VENV)/bin/python
WASM    := target/wasm32-wasip1/release/tollgate.wasm
CLI     := target/debug/tollgate
RLS     := target/release/tollgate-rls
# The Envoy dynamic module (crates/dynamic-module): the same policy as the wasm filter, as a
# native .so (in progress: no remote signing keys yet).
MODULE_SO := target/native/libtollgate.so
# The integration test files that also run against the native module (TOLLGATE_HOST=native:
# tools/stack.py puts the module in place of the wasm filter, same plugin configuration). Left
# out: what needs calls the module does not make yet (test_remote_keys: the signing-key
# fetch), what tests the wasm host itself or the shipped files (test_monitoring's VM reloads,
# test_deployments, test_demo, ...), and test_dynamic_module_abi (its own bootstrap; it runs
# in the main run).
NATIVE_TESTS := test_subscription_keys.py test_limits.py test_contract.py test_metrics.py \
                test_templates.py test_cors.py test_ip_filter.py test_bad_input.py \
                test_body_limit.py test_body_transform.py test_cache.py test_jwt.py \
                test_envoy_replies.py test_configuration.py test_https_and_retries.py \
                test_global_limits.py
# Debian packages the tests and the demo run for real: Redis (global limits), openssl (the
# throw-away certificates of `make run`, `make compose-config` and the tests), binaryen
# (wasm-opt, below), prometheus (promtool and a real Prometheus for k8s/monitoring/'s tests).
# Installed when missing, with sudo when not root.
SUDO    := $(if $(filter 0,$(shell id -u)),,sudo)
APT_GET := $(SUDO) apt-get
SOURCES := $(shell find src crates -name '*.rs' -o -name Cargo.toml) Cargo.toml

.PHONY: FORCE all setup build native-module run stop compose-config connector oci schema test fmt-check clippy unit integration bench clean

all: build

## setup: the wasm target, Redis, Prometheus, and a virtualenv with Envoy, FastAPI, uvicorn and the test tools.
setup: $(VENV)/.installed
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	@command -v redis-server >/dev/null && command -v openssl >/dev/null || \
	  ($(APT_GET) update -qq && $(APT_GET) install -y -qq redis-server openssl)
	@# wasm-opt only makes the module smaller: where apt cannot install it, the build warns.
	@command -v wasm-opt >/dev/null || $(APT_GET) install -y -qq binaryen || \
	  ($(APT_GET) update -qq && $(APT_GET) install -y -qq binaryen) || \
	  echo "warning: binaryen (wasm-opt) not installed: the module will not be optimised"
	@# prometheus' postinst starts its service (a daemon on :9090, under systemd or not):
	@# where no policy-rc.d forbids that already (Docker images ship one), one that does is put
	@# in place for this install only. The tests start their own Prometheus.
	@command -v promtool >/dev/null || { \
	  policy=/usr/sbin/policy-rc.d; added=; \
	  if [ ! -e $$policy ]; then \
	    printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee $$policy >/dev/null && \
	    $(SUDO) chmod 0755 $$policy && added=1; \
	  fi; \
	  install="$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus"; \
	  $$install || ($(APT_GET) update -qq && $$install); status=$$?; \
	  if [ -n "$$added" ]; then $(SUDO) rm -f $$policy; fi; \
	  exit $$status; }
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

$(VENV)/.installed: tests/requirements.txt backend/requirements.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r tests/requirements.txt -r backend/requirements.txt
	touch $@

## build: the filter (.wasm, release), the native CLI, tollgate-rls (release) and the native
## Envoy module.
build: setup $(WASM) $(CLI) $(RLS) $(MODULE_SO)

# The module is the linker's output (deps/, which cargo keeps) through wasm-opt's passes that
# shrink a module without rewriting function bodies (about 9 % smaller), and every pod pulls it and
# compiles it per worker. `-Oz`'s whole pipeline would take 16 KB more but made RS256 6 % slower
# under V8 (crates/core/examples/verify_speed.rs). Always from the linker's output, so a rerun
# gives the same bytes; and every time (0.3 s): cargo puts its own output back in place on each
# build, even with nothing to rebuild. Debian's binaryen (108) needs the module's features named.
WASM_LINKED := target/wasm32-wasip1/release/deps/tollgate.wasm
WASM_OPT    := wasm-opt --enable-bulk-memory --enable-sign-ext \
               --enable-nontrapping-float-to-int --enable-mutable-globals \
               --enable-multivalue --enable-reference-types \
               --duplicate-function-elimination --remove-unused-module-elements \
               --memory-packing --merge-similar-functions --reorder-functions --strip-producers
# (A plain `cargo build` leaves the linker's output there: the same filter, 58 KB larger.)
$(WASM): FORCE | setup
	cargo build --release --target wasm32-wasip1 -p tollgate
	@if command -v wasm-opt >/dev/null; then \
	  $(WASM_OPT) $(WASM_LINKED) -o $(WASM).tmp && chmod 0644 $(WASM).tmp && \
	  mv $(WASM).tmp $(WASM) && \
	  echo "$(WASM): $$(stat -c %s $(WASM)) bytes after wasm-opt"; \
	else echo "warning: no wasm-opt (make setup installs binaryen): $(WASM) not optimised"; fi

FORCE:

$(CLI): $(SOURCES) Cargo.lock
	cargo build -p tollgate-cli

$(RLS): $(SOURCES) Cargo.lock
	cargo build --release -p tollgate-rls

## native-module: tollgate as an Envoy dynamic module, target/native/libtollgate.so (in
## progress: the policy without remote signing keys; docs/development.md).
native-module: $(MODULE_SO)

# Built in the `native` profile (Cargo.toml: release with panics that unwind, so each hook can
# catch one). Cargo names it libtollgate_module.so (a lib named `tollgate` would collide with
# the wasm package's); Envoy looks for lib<name>.so, so it is copied to libtollgate.so, through
# a new file and a rename: an Envoy running the old one keeps its mapping intact.
$(MODULE_SO): $(SOURCES) Cargo.lock
	cargo build --profile native -p tollgate-dynamic-module
	cp target/native/libtollgate_module.so $(MODULE_SO).tmp && mv -f $(MODULE_SO).tmp $(MODULE_SO)

Cargo.lock:
	cargo generate-lockfile

## run: the demo (Envoy + FastAPI on 127.0.0.1, HTTPS with a throw-away certificate in .run/tls/,
## fresh keys), in the background.
run: build
	$(PYTHON) tools/demo.py start

stop:
	@$(PYTHON) tools/demo.py stop

## compose-config: .run/envoy-compose.yaml with fresh demo keys and a throw-away certificate
## (.run/compose-tls/), for `docker compose up`.
compose-config: build
	$(PYTHON) tools/demo.py compose-config

## connector: the demo's Power Platform custom connector in .run/connector/ (apiDefinition.swagger.json,
## apiProperties.json, settings.json for `paconn create`) and its public API as OpenAPI 3.1
## (openapi.json), from envoy/envoy.yaml's plugin configuration and the backend's OpenAPI.
CONNECTOR_HOST ?= tollgate.example.com
CONNECTOR_DIR  := .run/connector
connector: setup $(CLI)
	$(PYTHON) tools/demo.py connector-inputs $(CONNECTOR_DIR)
	$(CLI) connector --config $(CONNECTOR_DIR)/tollgate.json \
	  --openapi $(CONNECTOR_DIR)/fastapi-openapi.json --host $(CONNECTOR_HOST) --out $(CONNECTOR_DIR)
	$(CLI) connector --config $(CONNECTOR_DIR)/tollgate.json \
	  --openapi $(CONNECTOR_DIR)/fastapi-openapi.json --host $(CONNECTOR_HOST) --out $(CONNECTOR_DIR) \
	  --format openapi

## oci: the filter's OCI images (Istio's, and the init image for a plain sidecar) and tollgate-rls'.
OCI_REPO ?= tollgate-wasm
OCI_TAG  ?= dev
oci: build
	@if docker info >/dev/null 2>&1; then \
	  docker build -f oci/wasm.Dockerfile -t $(OCI_REPO):$(OCI_TAG) . && \
	  docker build -f oci/wasm-init.Dockerfile -t $(OCI_REPO)-init:$(OCI_TAG) . && \
	  docker build -f oci/rls.Dockerfile -t tollgate-rls:$(OCI_TAG) . && \
	  echo "push both, then set WasmPlugin.spec.sha256 to the digest docker push prints"; \
	else echo "no Docker engine here: nothing built (oci/*.Dockerfile need one)"; fi

## schema: docs/tollgate.schema.json, the configuration's JSON Schema as `tollgate schema` derives it
## from the Rust types (`make unit` fails while the committed file differs).
schema: $(CLI)
	$(CLI) schema > docs/tollgate.schema.json.tmp
	mv docs/tollgate.schema.json.tmp docs/tollgate.schema.json

## test: everything CI checks.
test: fmt-check clippy unit integration

fmt-check:
	cargo fmt --all -- --check

clippy: setup
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target wasm32-wasip1 -p tollgate -- -D warnings

unit: setup
	cargo test --workspace
	@# The module is built with 32-bit limbs (.cargo/config.toml); the signature tests run with
	@# them too, natively, in their own target directory so the main build stays cached.
	RUSTFLAGS='--cfg cpubits="32"' CARGO_TARGET_DIR=target/cpubits32 \
	  cargo test -p tollgate-core --lib jwt::

# Every test against the wasm filter, then the files of NATIVE_TESTS against the native module.
integration: build
	$(PYTHON) -m pytest -q tests/integration
	TOLLGATE_HOST=native $(PYTHON) -m pytest -q $(addprefix tests/integration/,$(NATIVE_TESTS))

clean:
	cargo clean
	rm -rf $(VENV) .run

## bench: tollgate against Envoy passthrough and native filters, one run (not a test).
bench: build
	@command -v wrk >/dev/null || ($(APT_GET) update -qq && $(APT_GET) install -y -qq wrk)
	cargo build --release -p tollgate-rls --example load
	$(PYTHON) tools/bench.py
