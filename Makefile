# One command to set up and run, one to set up and test. Needs only Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

# Nothing reaches beyond loopback: Prefect telemetry off, Prefect's home inside ignored state.
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: run test lint quality clean-output

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/boilerstrip warm-up  # compiles the numba kernels once (~35 s), so no run or test pays for it
	touch $(STAMP)

run: $(STAMP)  ## clean the sample articles in data/raw into data/clean
	$(BIN)/boilerstrip run data/raw --output data/clean

test: $(STAMP)  ## lint and run the test suite
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

quality: $(STAMP)  ## cleaning quality on the labelled dev set: EVAL_DIR=folder-with-dev.jsonl.gz make quality
	$(BIN)/python bench/quality.py

# clean-output removes the sample run's output, its ledger and counts with it; .state (Prefect's home, which may
# hold a local server's database) stays.
clean-output:  ## remove the sample run's output
	rm -rf data/clean
