# The commands README quotes. Each target sets up what it needs first (idempotent, ~1-2 min the first time).
VENV ?= .venv
PY := $(VENV)/bin/python
MAMO := $(VENV)/bin/mamo-l2l
DATASET ?= ml-100k
SEED ?= 0

.PHONY: install test lint demo bench clean

install:
	bash scripts/install.sh

# ruff (ruff.toml: line length, unused imports, import order); the import contract is tests/test_layers.py
lint: install
	$(VENV)/bin/ruff check .

# set up, then run the whole test suite
test: install
	$(PY) -m pytest -q

# set up, then train + evaluate MAMO on real data (fetched into the cache if absent): ends in the results table
demo: install
	$(MAMO) train --dataset $(DATASET) --seed $(SEED) --out runs/mamo-$(DATASET)-seed$(SEED)

bench: install
	$(PY) benchmarks/bench_train.py --dataset $(DATASET) --seeds 0,1,2

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
