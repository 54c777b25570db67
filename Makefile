# The two commands of the README's Quick start live here; each makes its own virtualenv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell $(PYTHON) -c "import hashlib,sys;print(hashlib.sha1(open('pyproject.toml','rb').read()).hexdigest()[:12])")

.PHONY: demo test lint pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	rm -f $(VENV)/.installed-*
	touch $@

## demo: start a local Airflow 3 stack with HybridExecutor, run examples/dags/hybrid_demo.py, stop it
##       (any DAG: make demo DEMO_ARGS="--dags-folder DIR --dag-id ID --conf '{}' --keep-running")
demo: $(STAMP)
	$(BIN)/python -m hybrid_executor.demo $(DEMO_ARGS)

## test: lint, type-check, then the whole test suite
test: lint pytest

lint: $(STAMP)
	$(BIN)/ruff check hybrid_executor tests benchmarks examples
	$(BIN)/ruff format --check hybrid_executor tests benchmarks examples
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## bench: print the local Kubernetes API's and the pod executor's figures, the end-to-end comparison with the
##        stock executors (writes docs/end_to_end*.png), then the fault soak's (about 40 minutes, the end-to-end
##        run's hour, then the soak's hour on 2 cores; `python benchmarks/soak.py --scale 0.1` is a short one)
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/kube_api_creates.py
	$(BIN)/python benchmarks/executor_kubernetes.py
	$(BIN)/python benchmarks/pod_deletes.py
	$(BIN)/python benchmarks/adoption.py
	$(BIN)/python benchmarks/memory.py
	$(BIN)/python benchmarks/metrics_cost.py
	$(BIN)/python benchmarks/quota_use.py
	$(BIN)/python benchmarks/end_to_end.py
	$(BIN)/python benchmarks/soak.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
