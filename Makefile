# adnstudy — two commands: `make demo` runs the study on the shipped case, `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CASE   ?= cases/ieee33.yaml
OUT    ?= results

.PHONY: demo test setup lint bench clean

$(BIN)/adnstudy: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/adnstudy

demo: setup
	$(BIN)/adnstudy validate $(CASE)
	$(BIN)/adnstudy run $(CASE) --out $(OUT)/$(basename $(notdir $(CASE)))

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check adnstudy tests benchmarks

bench: setup
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/powerflow.py
	$(BIN)/python benchmarks/cluster.py
	$(BIN)/python benchmarks/plan.py
	$(BIN)/python benchmarks/plan.py --reliability
	$(BIN)/python benchmarks/dispatch.py
	$(BIN)/python benchmarks/coplan.py
	$(BIN)/python benchmarks/sweep.py
	$(BIN)/python benchmarks/scale.py --buses 33 100 200 500 --what powerflow-year plan-norel plan

clean:
	rm -rf $(OUT) .pytest_cache build *.egg-info
