# The two commands of the README's Quick start live here; each makes its own virtualenv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The newest supported Airflow, installed from the set that passed the suite (constraints/matrix.sh).
CONSTRAINTS ?= constraints/airflow-3.3.txt
# The older minors `make test-compat` runs (each in its own .venv-afXY); `make constraints` regenerates all.
COMPAT_MINORS := 3.1 3.2
AIRFLOW_MINORS := $(COMPAT_MINORS) 3.3
STAMP := $(VENV)/.installed-$(shell $(PYTHON) -c "import hashlib,sys;print(hashlib.sha1(open('pyproject.toml','rb').read()+open('$(CONSTRAINTS)','rb').read()).hexdigest()[:12])")

.PHONY: demo test lint pytest test-compat constraints bench clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test,dev]'
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

## test-compat: on each older Airflow minor, in its own virtualenv from its constraints file, the
##              integration tests of both routes and the demo on the example DAG
test-compat:
	@for minor in $(COMPAT_MINORS); do constraints/matrix.sh test $$minor || exit 1; done

## constraints: regenerate constraints/airflow-*.txt, each the pip freeze of a fresh virtualenv from
##              its .in that passed the compatibility tests (then run `make test` on the newest)
constraints:
	@for minor in $(AIRFLOW_MINORS); do constraints/matrix.sh regenerate $$minor || exit 1; done

## bench: print the local Kubernetes API's and the pod executor's figures, the end-to-end comparison with the
##        stock executors (writes docs/end_to_end*.png), then the fault soak's (about 40 minutes, the end-to-end
##        run's hour, then the soak's hour on 2 cores; `python benchmarks/soak.py --scale 0.1` is a short one)
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[bench]'
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
	rm -rf $(VENV) .venv-af* .venv-regen-af* .pytest_cache .mypy_cache .ruff_cache
