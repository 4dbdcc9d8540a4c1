# mmlab: two commands on a fresh machine (Python >= 3.11, make, gcc):
#   make report   set up .venv, install, run every notebook at safe defaults, print the HTML index
#   make test     install the test extras, lint (ruff), run the test suite
#   make check-site   the reader's promises (titles, width, no code, nothing private, <= 3 MB) in
#                 Chromium over the newest report, or SITE=reports/<run>
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TESTSTAMP := $(VENV)/.installed-test

.PHONY: all setup report test lint lab bench reliability clean check-site

all: report

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TESTSTAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(STAMP)

# Runs and reports of a checkout stay in it, whichever folder a notebook kernel starts in.
report lab: export MMLAB_RUNS_DIR ?= $(CURDIR)/data/runs
report lab: export MMLAB_REPORTS_DIR ?= $(CURDIR)/reports
# JupyterLab refuses root without --allow-root; real experiments need root for full sizes.
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
LAB_PORT ?= 8888
LAB_DIR ?= notebooks

report: $(STAMP)
	$(BIN)/mmlab run $(ARGS)

test: $(TESTSTAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

check-site: $(TESTSTAMP)
	$(BIN)/python -m mmlab.study.site_check $(SITE)

lint: $(TESTSTAMP)
	$(BIN)/ruff check .

# loopback only, with the server's token (printed in the URL); stop with Ctrl-C
lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=$(LAB_DIR) --ServerApp.ip=127.0.0.1 --ServerApp.port=$(LAB_PORT) \
		--ServerApp.open_browser=False $(LAB_ROOT) $(ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

reliability: $(TESTSTAMP)
	$(BIN)/python -m pytest -m reliability $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) reports benchmarks/build
