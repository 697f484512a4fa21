# runner-sizer developer entry points. `make demo` and `make test` do all set-up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: help venv binaries lint test unit e2e e2e-kind demo bench fuzz chart-docs cluster-up cluster-down clean

help:
	@echo "make demo          run the demo on a local control plane"
	@echo "make test          lint, type-check and run every test (unit + end-to-end)"
	@echo "make e2e           end-to-end tests only (KUBECONFIG=... to use an existing cluster)"
	@echo "make cluster-up    start the local control plane (prints KUBECONFIG)"
	@echo "make cluster-down  stop it"
	@echo "make fuzz          the never-block property test, unseeded, for FUZZ_SECONDS (600)"

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
	$(BIN)/hadolint services/webhook/Dockerfile services/recorder/Dockerfile services/recommender/Dockerfile

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

# Unseeded rounds of the property test until FUZZ_SECONDS have passed; stops at the
# first failure, which hypothesis prints shrunk (add it to REGRESSIONS in the test).
fuzz: venv binaries
	@end=$$(( $$(date +%s) + $${FUZZ_SECONDS:-600} )); \
	while [ "$$(date +%s)" -lt "$$end" ]; do \
	  FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-1000} $(BIN)/pytest -q -p no:cacheprovider \
	    tests/e2e/test_admission_invariant.py -k admits --hypothesis-show-statistics || exit 1; \
	done

bench: venv binaries
	$(BIN)/python -m bench.webhook $(BENCH_SECONDS)
	$(BIN)/python -m bench.pod_create $(BENCH_SECONDS)
	$(BIN)/python -m bench.recorder
	$(BIN)/python -m bench.ooms
	$(BIN)/python -m bench.history $(BENCH_SECONDS)
	$(BIN)/python -m bench.recommender $(BENCH_SECONDS)
	$(BIN)/python -m bench.backtest

chart-docs: binaries
	$$(bash tools/controlplane/build.sh | sed -n 5p)/helm-docs -c charts/runner-sizer -u --skip-version-footer -g charts/runner-sizer

e2e-kind: venv
	bash tools/kind/e2e.sh
