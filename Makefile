# Two commands set everything up: `make run` (one node) and `make test` (the suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= conf/config.yaml

.PHONY: venv build run test bench clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(STAMP)

build: venv
	mkdir -p bin
	for script in cnetd cnet-agent cnet-tap; do ln -sf ../$(BIN)/$$script bin/$$script; done

run: build
	$(BIN)/cnetd -config $(CONFIG)

test: venv
	$(BIN)/python -m pytest -q tests

bench: venv
	$(BIN)/python bench/ledger_bench.py
	$(BIN)/python bench/submit_latency.py

clean:
	rm -rf $(VENV) bin build *.egg-info
