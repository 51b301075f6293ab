# crossbook: the one entry for people and CI. Every CI step is a target here.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
RUST := rust
CARGO ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)

STAMP := $(VENV)/.stamp
CORE_SRC := $(shell find rust -name '*.rs' -o -name 'Cargo.toml' | grep -v target) rust/Cargo.lock pyproject.toml

.PHONY: help setup build demo test test-fast lint fmt bench clean proto

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt
	@echo "==> creating $(VENV) and installing pinned dependencies"
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r requirements-dev.txt
	@touch $@

$(VENV)/.core: $(STAMP) $(CORE_SRC)
	@echo "==> building crossbook._core (Rust, release) into $(VENV)"
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop --release -q
	@touch $@

EXT_SRC := $(shell find ext -name '*.pyx' -o -name '*.pxd' -o -name '*.py' -o -name '*.pyi' -o -name 'pyproject.toml' 2>/dev/null | grep -v build/)

# The Cython fan-out loop (cimports picows); non-editable so mypy sees its installed stubs.
$(VENV)/.ext: $(STAMP) $(EXT_SRC)
	@echo "==> building crossbook-ext (Cython fan-out) into $(VENV)"
	$(VPY) -m pip install -q --no-build-isolation ./ext
	@touch $@

# anvil (local chain) and solcjs from the npm registry, pinned in tools/anvil/package-lock.json.
$(VENV)/.anvil: $(STAMP) tools/anvil/package.json tools/anvil/package-lock.json tools/anvil/ensure.sh
	@echo "==> installing anvil (npm @foundry-rs/anvil, pinned)"
	bash tools/anvil/ensure.sh
	@touch $@

# The signer service package (its own process; imports crossbook).
$(VENV)/.signer: $(STAMP) signer/pyproject.toml
	$(VPY) -m pip install -q --no-deps --no-build-isolation -e ./signer
	@touch $@

setup: $(VENV)/.core $(VENV)/.ext $(VENV)/.anvil $(VENV)/.signer  ## venv, pinned deps, Rust/Cython exts, anvil, signer

build: setup

demo: setup  ## live books from both venue simulators (Ctrl-C stops; DEMO_SECONDS=N stops by itself)
	$(VENV)/bin/crossbook demo $(if $(DEMO_SECONDS),--seconds $(DEMO_SECONDS),)

lint: setup  ## ruff, mypy --strict, cargo fmt/clippy, stubtest
	$(VENV)/bin/ruff check python tests benches signer
	$(VENV)/bin/mypy
	cd signer && ../$(VENV)/bin/mypy
	bash tools/check_proto.sh
	cd $(RUST) && $(CARGO) fmt --all -- --check
	cd $(RUST) && $(CARGO) clippy --all-targets --release -q -- -D warnings
	$(VPY) -m mypy.stubtest crossbook._core

test: setup lint  ## everything CI runs: linters, Rust tests, Python tests (real Redis, sims)
	cd $(RUST) && $(CARGO) test --release -q
	$(VPY) -m pytest -q -p no:cacheprovider tests

test-fast: setup  ## Python tests only
	$(VPY) -m pytest -q -x tests

fmt:  ## format Rust and Python
	cd $(RUST) && $(CARGO) fmt --all
	$(VENV)/bin/ruff format python tests benches

bench: setup  ## every benchmark: parse, sign, fan-out (each runs its peers in the same run)
	$(VPY) benches/bench_parse.py
	$(VPY) benches/bench_sign.py
	$(VPY) benches/bench_fanout.py
	$(VPY) benches/bench_breaker.py

proto: setup  ## regenerate python/crossbook/_proto from proto/signer.proto
	bash tools/gen_proto.sh

clean:  ## remove build outputs and the virtualenv
	rm -rf $(VENV) $(RUST)/target
