# blindframe: every target installs what it needs the first time (a .venv, npm packages, Debian
# packages) and nothing on a repeat run. `make demo` and `make test` are the two commands.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FOUNDRY_BIN := $(CURDIR)/node_modules/@foundry-rs/forge-linux-amd64/bin:$(CURDIR)/node_modules/@foundry-rs/anvil-linux-amd64/bin:$(CURDIR)/node_modules/@foundry-rs/cast-linux-amd64/bin
export PATH := $(CURDIR)/$(VENV)/bin:$(FOUNDRY_BIN):$(PATH)
# Torch comes from this machine's disk as a CPU build; left alone pip picks a CUDA build of several GB.
TORCH := torch==2.13.0
SLITHER := $(VENV)/slither/bin/slither
# pytest's worker processes: the suite waits on chains, nodes and windows about half its time,
# so two workers on two cores finish it in well under the serial time (tests/conftest.py keeps
# each area's tests, and so its session fixtures, on one worker). PYTEST_WORKERS=0: serial.
PYTEST_WORKERS ?= 2
BENCH_MESHES := $(VENV)/bench-meshes/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN_PACKAGES := chromium ipfs-cid

.PHONY: help demo test lint format forge gas-snapshot slither pytest faults soak bench clean bootstrap

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

demo: bootstrap ## start the local stack, deploy, render the sample scene end to end
	$(VENV)/bin/blindframe demo

test: bootstrap lint forge slither pytest ## every suite: lint, Forge, Slither, pytest (real stack)

lint: bootstrap ## ruff (lint + format check), mypy --strict, the layering (import-linter)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: bootstrap ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

forge: bootstrap ## Forge unit, fuzz and invariant tests (CI profile: more runs, fixed seed)
	FOUNDRY_PROFILE=$${FOUNDRY_PROFILE:-ci} forge test

gas-snapshot: bootstrap ## rewrite the committed gas records (contracts/snapshots/, .gas-snapshot) on purpose
	FOUNDRY_SNAPSHOTS=contracts/snapshots forge test --match-path 'contracts/test/gas/*'
	forge snapshot --no-match-test '^(testFuzz|invariant)' --no-match-path 'contracts/test/invariant/*'
	@echo "contracts/snapshots/ rewritten: update the README gas tables to match (pytest tests/coordinator/test_gas_table.py checks them)"

slither: bootstrap $(SLITHER) ## static analysis of the contracts; see contracts/slither.config.json
	$(SLITHER) . --config-file contracts/slither.config.json

# --max-worker-restart=0: a worker that dies (a crash, the kernel's OOM killer) ends the run at
# once, failed. pytest-xdist 3.8 replaces a dead worker but, under loadgroup, then waits forever
# for work it never hands out (pytest-xdist #1323/#1327): CI saw a 90-minute hang, not a failure.
pytest: bootstrap ## the Python suites, against a real Anvil, IPFS and Concrete
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --max-worker-restart=0 $(PYTEST_ARGS)

faults: bootstrap ## fault scenarios of minutes each (tests/faults): RPC outages, full disks, restarts
	BLINDFRAME_FAULTS=1 $(PY) -m pytest tests/faults $(PYTEST_ARGS)

soak: bootstrap ## the load run (SOAK_ARGS="--jobs 50"): four nodes, many jobs at once, every wei and RSS checked
	PYTHONPATH=tests $(PY) -m soak $(SOAK_ARGS)

bench: bootstrap $(BENCH_MESHES) ## benchmarks (BENCH="fhe plans ipfs demo client quality report", --record): one table + chart
	$(PY) -m bench $(BENCH)

# The quality bench's sample meshes (ant, airplane) come in pyvista's wheel. They are unpacked
# beside the venv, not into it: pyvista itself needs VTK, which nothing here installs.
$(BENCH_MESHES): $(VENV)/.installed
	$(PY) -m pip install --quiet --no-deps --upgrade --target $(VENV)/bench-meshes 'pyvista==0.49.2'
	touch $@

clean: ## remove build outputs (keeps .venv and node_modules)
	rm -rf contracts/out contracts/cache .pytest_cache .mypy_cache .ruff_cache

bootstrap: $(VENV)/.installed node_modules/.installed .debian-packages

$(VENV)/.installed: pyproject.toml
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade 'pip>=24' 'setuptools>=69,<81' wheel
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Slither pins web3<8, the project web3 8: it lives in a venv of its own inside .venv.
$(SLITHER): $(VENV)/.installed
	[ -x $(VENV)/slither/bin/python ] || $(PY) -m venv $(VENV)/slither
	$(VENV)/slither/bin/python -m pip install --quiet 'slither-analyzer==0.11.6'

node_modules/.installed: package.json package-lock.json
	npm ci --no-fund --no-audit --loglevel=error
	touch $@

# Debian packages: chromium for the dashboard's browser tests, ipfs-cid to cross-check CIDs.
.debian-packages:
	missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	touch $@
