# The commands README quotes. Each target sets up what it needs first (idempotent, ~1-2 min the first time).
VENV ?= .venv
PY := $(VENV)/bin/python
MAMO := $(VENV)/bin/mamo-l2l
DATASET ?= ml-100k
SEED ?= 0

.PHONY: install test lint demo bench clean check-wheel browser

install:
	bash scripts/install.sh

# ruff (ruff.toml: line length, unused imports, import order); the import contract is tests/test_layers.py
lint: install
	$(VENV)/bin/ruff check .

# the browser for the web page test only (scripts/install_browser.sh; as root with apt, else that test skips)
browser:
	bash scripts/install_browser.sh

# set up (with the browser for the web page test), then run the whole test suite
test: install browser
	$(PY) -m pytest -q

# build the wheel and sdist (no setuptools warnings), install the wheel in a fresh venv, run it elsewhere
check-wheel: install
	BUILD_PY=$(PY) bash scripts/check_wheel.sh

# set up (no browser), then train + evaluate MAMO on real data (fetched into the cache if absent): ends in the results table
demo: install
	$(MAMO) train --dataset $(DATASET) --seed $(SEED) --out runs/mamo-$(DATASET)-seed$(SEED)

bench: install
	$(PY) benchmarks/bench_train.py --dataset $(DATASET) --seeds 0,1,2

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
