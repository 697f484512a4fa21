# runner-sizer developer entry points. `make demo` and `make test` do all set-up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: help venv binaries lint test unit e2e e2e-kind demo bench chart-docs cluster-up cluster-down clean

help:
	@echo "make demo          run the demo on a local control plane"
	@echo "make test          lint, type-check and run every test (unit + end-to-end)"
	@echo "make e2e           end-to-end tests only (KUBECONFIG=... to use an existing cluster)"
	@echo "make cluster-up    start the local control plane (prints KUBECONFIG)"
	@echo "make cluster-down  stop it"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)

binaries:
	@bash tools/controlplane/build.sh >/dev/null

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/hadolint services/webhook/Dockerfile services/recorder/Dockerfile

unit: venv
	$(BIN)/pytest tests/unit

test: lint binaries
	$(BIN)/pytest

e2e: venv
ifdef KUBECONFIG
	$(BIN)/pytest tests/e2e --kubeconfig="$(KUBECONFIG)"
else
	@bash tools/controlplane/build.sh >/dev/null
	$(BIN)/pytest tests/e2e
endif

demo: venv binaries
	$(BIN)/python -m runner_sizer.devcluster.demo

cluster-up: venv binaries
	@$(BIN)/runner-sizer-cluster up

cluster-down: venv
	@$(BIN)/runner-sizer-cluster down

clean:
	rm -rf $(VENV) .cache/cluster .pytest_cache .mypy_cache .ruff_cache

bench: venv binaries
	$(BIN)/python -m bench.webhook $(BENCH_SECONDS)
	$(BIN)/python -m bench.recorder

chart-docs: binaries
	$$(bash tools/controlplane/build.sh | sed -n 5p)/helm-docs -c charts/runner-sizer -u --skip-version-footer -g charts/runner-sizer

e2e-kind: venv
	bash tools/kind/e2e.sh
