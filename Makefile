# The README's two commands are `make demo` and `make test`; both set up first.
VENV ?= .venv
export OMP_NUM_THREADS ?= 1
export HF_HUB_OFFLINE := 1

.PHONY: setup demo test lint

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/vla demo --out runs/demo

lint: setup
	$(VENV)/bin/ruff check .

test: lint
	@start=$$(date +%s); \
	$(VENV)/bin/python -m pytest -q --durations=10; rc=$$?; \
	echo "[test] pytest took $$(( $$(date +%s) - start )) s"; exit $$rc
