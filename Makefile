# adnstudy — two commands: `make demo` runs the study on the shipped case, `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CASE   ?= cases/ieee33.yaml
OUT    ?= results

.PHONY: demo test setup browser lint bench clean

$(BIN)/adnstudy: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/adnstudy

demo: setup
	$(BIN)/adnstudy validate $(CASE)
	$(BIN)/adnstudy run $(CASE) --out $(OUT)/$(basename $(notdir $(CASE)))

test: setup browser
	$(BIN)/python -m pytest -q

# The HTML report's test loads it in headless Chromium: Debian's package, installed where we run as root with
# apt-get (CI); elsewhere that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; }; }; } || \
	echo "chromium could not be installed here: the browser test of the HTML report will skip"

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
