# adnstudy — two commands: `make demo` runs the study on the shipped case, `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CASE   ?= cases/ieee33.yaml
OUT    ?= results

.PHONY: demo test setup browser lint bench clean reproduce reproduce-t1 reproduce-t2 reproduce-t3 reproduce-t4

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
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

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
	$(BIN)/python benchmarks/dispatch.py
	rm -rf $(OUT)/bench33 && $(BIN)/python -m adnstudy cluster cases/ieee33.yaml --out $(OUT)/bench33 \
		&& $(BIN)/python -m adnstudy plan cases/ieee33.yaml --out $(OUT)/bench33 \
		&& $(BIN)/python benchmarks/dispatch.py --stage $(OUT)/bench33
	$(BIN)/python benchmarks/coplan.py
	$(BIN)/python benchmarks/sweep.py
	$(BIN)/python benchmarks/scale.py --buses 33 100 200 500 --what powerflow-year plan-norel plan

clean:
	rm -rf $(OUT) .pytest_cache build *.egg-info

# make reproduce: the study's tables T1-T4 (docs/reproduce.md). Each sweep runs through the CLI a user runs;
# a table folder is rebuilt from its sweeps' Parquet files only when they or the table builder changed.
REPRO   := reproduction
RUNS    := $(REPRO)/runs
SWEEPS  := cases/sweeps/reproduce
BUILDER := adnstudy/reproduce.py
T1_RUNS := $(RUNS)/t1/sweep.parquet
T2_RUNS := $(foreach f,ieee33 ieee69,$(RUNS)/t2_$(f)/sweep.parquet $(RUNS)/t2_$(f)_norel/sweep.parquet)
T3_RUNS := $(RUNS)/t3_ieee33/sweep.parquet $(RUNS)/t3_ieee69/sweep.parquet
T4_RUNS := $(RUNS)/t4_ieee33/sweep.parquet $(RUNS)/t4_ieee69/sweep.parquet

# A sweep exits 1 when a variant failed or is not final: make stops there and builds no table from it. Its
# sweep.parquet (written as variants finish) is removed then, so the next make runs it again (--resume: only
# what is missing or out of date).
$(RUNS)/%/sweep.parquet: $(SWEEPS)/%.yaml cases/ieee33.yaml cases/ieee69.yaml configs/defaults.yaml $(BIN)/adnstudy
	$(BIN)/adnstudy sweep $< --out $(RUNS)/$* --workers 2 --resume || { s=$$?; rm -f $@; exit $$s; }

$(REPRO)/T1/T1.md: $(T1_RUNS) $(BUILDER)
	$(BIN)/python -m adnstudy.reproduce T1 --runs $(RUNS) --out $(REPRO)
$(REPRO)/T2/T2.md: $(T2_RUNS) $(BUILDER)
	$(BIN)/python -m adnstudy.reproduce T2 --runs $(RUNS) --out $(REPRO)
$(REPRO)/T3/T3.md: $(T3_RUNS) $(BUILDER)
	$(BIN)/python -m adnstudy.reproduce T3 --runs $(RUNS) --out $(REPRO)
$(REPRO)/T4/T4.md: $(T4_RUNS) $(BUILDER)
	$(BIN)/python -m adnstudy.reproduce T4 --runs $(RUNS) --out $(REPRO)
$(REPRO)/README.md: $(foreach t,1 2 3 4,$(REPRO)/T$(t)/T$(t).md) $(BUILDER)
	$(BIN)/python -m adnstudy.reproduce readme --runs $(RUNS) --out $(REPRO)

reproduce-t1: setup $(REPRO)/T1/T1.md
reproduce-t2: setup $(REPRO)/T2/T2.md
reproduce-t3: setup $(REPRO)/T3/T3.md
reproduce-t4: setup $(REPRO)/T4/T4.md
reproduce: setup $(REPRO)/README.md
