# The two commands of the README's Quick start live here; each makes its own virtualenv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell $(PYTHON) -c "import hashlib,sys;print(hashlib.sha1(open('pyproject.toml','rb').read()).hexdigest()[:12])")

.PHONY: test lint pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	rm -f $(VENV)/.installed-*
	touch $@

## test: lint, type-check, then the whole test suite
test: lint pytest

lint: $(STAMP)
	$(BIN)/ruff check hybrid_executor tests benchmarks
	$(BIN)/ruff format --check hybrid_executor tests benchmarks
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## bench: print the local Kubernetes API's and the pod executor's figures (about 20 minutes)
bench: $(STAMP)
	$(BIN)/python benchmarks/kube_api_creates.py
	$(BIN)/python benchmarks/executor_kubernetes.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
