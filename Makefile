# `make demo`, `make test`, `make bench`: each sets itself up on a fresh machine.
# The virtual environment lives in .venv; PyTorch's CPU build is installed before anything
# that depends on it, so pip never reaches for the CUDA packages.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint format clean peers
# Debian's PLINK builds: the reference the gwas conformance tests and benchmarks compare with;
# Debian's chromium and its driver: the browser the report's tests (selenium) run in.
PEERS := /usr/bin/plink1.9 /usr/bin/plink2 /usr/bin/chromium /usr/bin/chromedriver
PEER_PACKAGES := plink1.9 plink2 chromium chromium-driver
APT_GET := $(shell [ "$$(id -u)" = 0 ] || echo sudo) apt-get

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(PEERS):
	$(APT_GET) install -y -q $(PEER_PACKAGES) || \
		($(APT_GET) update -q && $(APT_GET) install -y -q $(PEER_PACKAGES))

peers: $(PEERS)

demo: $(STAMP)
	$(BIN)/genoformer demo --out runs/demo --overwrite

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

test: lint $(PEERS)
	$(BIN)/pytest -q

bench: $(STAMP) $(PEERS)
	for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
