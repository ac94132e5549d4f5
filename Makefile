# compressible: `make test` and `make book` each set everything up on a fresh machine
# (virtual environment, pinned installs) and then do their job.

SHELL      := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON     ?= $(shell command -v python3.11 || command -v python3)
VENV       ?= .venv
PY         := $(VENV)/bin/python
SCALE      ?= ci
NAME       ?=
TIMEOUT    ?= 3600

# Offline mirrors: used when a ../shared folder with them sits beside the project (see README).
SHARED     ?= $(abspath ../shared)
ifneq ($(wildcard $(SHARED)/hf/hub),)
export HF_HUB_OFFLINE      := 1
export HF_DATASETS_OFFLINE := 1
export HF_HUB_CACHE        := $(SHARED)/hf/hub
export COMPRESSIBLE_GLUE   := $(SHARED)/data/glue
export COMPRESSIBLE_E2E    := $(SHARED)/data/e2e_nlg
export COMPRESSIBLE_SMOLLM := $(SHARED)/models/SmolLM2-135M-Instruct
endif
export COMPRESSIBLE_RESULTS ?= $(CURDIR)/results
# The committed ledger of the book's runs (ledger/README.md): chapters read their runs from it first.
# LEDGER=off recomputes everything from scratch (into $(COMPRESSIBLE_RESULTS)).
LEDGER     ?= $(CURDIR)/ledger
export TOKENIZERS_PARALLELISM := false
export PYTHONUNBUFFERED := 1

# pip repeats one harmless warning per package for index folders it cannot read; drop those lines.
PIPFILTER  := { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: help setup test book chapter verify-ledger ledger-status browser-check benchmarks lock clean

help:
	@echo "make test                       unit tests + every chapter at smoke scale"
	@echo "make book [SCALE=ci|smoke|paper] execute every chapter and build _build/html"
	@echo "make chapter NAME=<chapter> [SCALE=...]  execute one chapter into _build/chapters/"
	@echo "make book LEDGER=off            the same, recomputing every run instead of reading the ledger"
	@echo "make verify-ledger              re-execute ledger runs in part and compare them with their records"
	@echo "make ledger-status              the ledger's size and every chapter's planned runs held / missing"
	@echo "make browser-check              open every built page in headless chromium"
	@echo "make benchmarks                 speed/memory benchmarks (benchmarks/output/)"
	@echo "make gpu-check [GPU_CHECK_BUDGET=540]  on a CUDA GPU, offline: device tests, a timed Fig. 6 run, grow the ledger"

$(VENV)/.installed: pyproject.toml requirements/lock.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2>&1 | $(PIPFILTER)
	$(PY) -m pip install --quiet -c requirements/lock.txt "torch==2.13.0" 2>&1 | $(PIPFILTER)
	$(PY) -m pip install --quiet -c requirements/lock.txt -e ".[book,test,generation,cluster]" 2>&1 | $(PIPFILTER)
	@touch $@

setup: $(VENV)/.installed

test: setup
	$(PY) -m pytest -q -n auto --maxprocesses=4 --dist loadfile --no-loadscope-reorder

book: setup
	COMPRESSIBLE_LEDGER=$(LEDGER) $(PY) -m compressible.reproduction.bookbuild build --scale $(SCALE) --timeout $(TIMEOUT)

chapter: setup
	@test -n "$(NAME)" || { echo "usage: make chapter NAME=<chapter in book/> [SCALE=smoke|ci|paper]"; exit 2; }
	COMPRESSIBLE_LEDGER=$(LEDGER) $(PY) -m compressible.reproduction.bookbuild execute book/$(NAME).py --scale $(SCALE) --timeout $(TIMEOUT)

verify-ledger: setup
	COMPRESSIBLE_LEDGER=$(LEDGER) $(PY) -m compressible.ledger verify $(VERIFY_ARGS)

ledger-status: setup
	COMPRESSIBLE_LEDGER=$(LEDGER) $(PY) -m compressible.ledger status

browser-check:
	$(PY) .ci/browser_check.py

benchmarks: setup
	$(PY) benchmarks/matrix_completion.py
	$(PY) benchmarks/deep_lora.py
	$(PY) benchmarks/autocast.py
	$(PY) benchmarks/length_groups.py

lock: setup
	{ echo "# Exact versions used by make/CI (pip install -c requirements/lock.txt). Regenerate with: make lock"; \
	  $(PY) -m pip freeze --exclude-editable | sed 's/^torch==\([0-9.]*\)+cpu$$/torch==\1/'; } > requirements/lock.txt

# Needs a CUDA GPU (exits 2 with one line saying so otherwise) and no network: see .ci/gpu_check.py.
# No setup: on a GPU machine it uses the python3 there (its torch), with the wheels carried in .whl/.
GPU_PY ?= $(if $(wildcard $(PY)),$(PY),python3)
.PHONY: gpu-check
gpu-check:
	@$(GPU_PY) .ci/gpu_check.py $(if $(GPU_CHECK_BUDGET),--budget $(GPU_CHECK_BUDGET))

clean:
	rm -rf _build
