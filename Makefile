# The two commands: `make test` and `make train-fau` / `make train-retrieval` (see README.md).
# Every target bootstraps its own virtualenv in .venv with the tested pins in constraints.txt;
# a stamp file per extra makes the second call skip the install.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt
DEPS   := pyproject.toml constraints.txt

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

PYTEST_ARGS ?=
# one pytest worker per core (tests/conftest.py pins each worker to one torch thread)
PYTEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)

# train-fau / train-retrieval: without MODEL, the main job on the embedded default;
# with MODEL (and optionally CONFIG, DATA, FOLD, OUT), one model with any config on any prepared data.
MODEL  ?=
CONFIG ?=
DATA   ?=
FOLD   ?= part3
OUT    ?=
FAU_DEFAULT := runs/fau-default
RET_DEFAULT := runs/retrieval-default

.PHONY: help install-fau install-retrieval install-dev browser test bench clean-venv train-fau train-retrieval

help:
	@echo "make test               install fau+retrieval+dev into $(VENV) (once) and run the test suite"
	@echo "make browser            install headless Chromium + chromedriver for the demo-page tests (apt, once)"
	@echo "make install-fau        install the fau task only (pip install -e '.[fau]')"
	@echo "make install-retrieval  install the retrieval task only (pip install -e '.[retrieval]')"
	@echo "make train-fau          SynFACS -> prepare -> train every FAU model (tiny) -> eval -> table"
	@echo "make train-fau MODEL=mgrrnet [CONFIG=mgrrnet_bp4d DATA=prepared/bp4d FOLD=part1 OUT=runs/x]"
	@echo "make train-retrieval     SynScenes -> parse -> train every retrieval model (tiny) -> evaluate -> table"
	@echo "make train-retrieval MODEL=3shnet [CONFIG=shnet_f30k DATA=data/f30k OUT=runs/x]"
	@echo "make bench              run the benchmark scripts in tools/ (prints ratios)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.stamp-fau: $(DEPS) | $(BIN)/python
	$(PIP) -e '.[fau]'
	@touch $@

$(VENV)/.stamp-retrieval: $(DEPS) | $(BIN)/python
	$(PIP) -e '.[retrieval]'
	@touch $@

$(VENV)/.stamp-dev: $(DEPS) | $(BIN)/python
	$(PIP) -e '.[fau,retrieval,dev]'
	@touch $(VENV)/.stamp-fau $(VENV)/.stamp-retrieval $@

install-fau: $(VENV)/.stamp-fau
install-retrieval: $(VENV)/.stamp-retrieval
install-dev: $(VENV)/.stamp-dev

# the browser tests of the demo pages drive Debian's chromium through its chromedriver; installed
# only when chromedriver is missing (CI runs as root; elsewhere sudo asks). Without apt-get the
# browser tests fail naming what to install.
browser:
	@command -v chromedriver >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	    $$sudo apt-get update && $$sudo apt-get install -y chromium chromium-driver; \
	  else echo "make browser: no apt-get here; install Chromium and chromedriver yourself (the browser tests need them)"; fi; }

test: $(VENV)/.stamp-dev browser
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

train-fau: $(VENV)/.stamp-fau
ifeq ($(MODEL),)
	$(BIN)/fau run-default --out $(FAU_DEFAULT)
else
	$(if $(DATA),,$(BIN)/fau run-default --out $(FAU_DEFAULT) --data-only)
	$(BIN)/fau train --model $(MODEL) $(if $(CONFIG),--config $(CONFIG)) --fold $(FOLD) \
	  --data $(or $(DATA),$(FAU_DEFAULT)/synfacs/prepared) --out $(or $(OUT),runs/$(MODEL)-$(FOLD))
	$(BIN)/fau eval --checkpoint $(or $(OUT),runs/$(MODEL)-$(FOLD))/best.safetensors --fold $(FOLD) \
	  --data $(or $(DATA),$(FAU_DEFAULT)/synfacs/prepared) --json $(or $(OUT),runs/$(MODEL)-$(FOLD))/eval.json
endif

train-retrieval: $(VENV)/.stamp-retrieval
ifeq ($(MODEL),)
	$(BIN)/retrieval run-default --out $(RET_DEFAULT)
else
	$(if $(DATA),,$(BIN)/retrieval run-default --out $(RET_DEFAULT) --data-only)
	$(BIN)/retrieval train --model $(MODEL) $(if $(CONFIG),--config $(CONFIG)) \
	  --data $(or $(DATA),$(RET_DEFAULT)/synscenes) --out $(or $(OUT),runs/$(MODEL))
	$(BIN)/retrieval evaluate --checkpoint $(or $(OUT),runs/$(MODEL))/best.safetensors \
	  --data $(or $(DATA),$(RET_DEFAULT)/synscenes) --json $(or $(OUT),runs/$(MODEL))/eval.json
endif

bench: $(VENV)/.stamp-dev
	@set -e; for script in tools/bench_*.py; do echo "== $$script"; $(BIN)/python $$script; done

clean-venv:
	rm -rf $(VENV)
