# The README's two commands are `make demo` and `make test`; both set up first.
VENV ?= .venv
export OMP_NUM_THREADS ?= 1
export HF_HUB_OFFLINE := 1

# Test tiers are pytest markers (listed in pyproject.toml). The unit tier is every test without
# one. The serial tiers run vLLM servers: the tests share one per pytest process, the demo
# starts its own.
UNIT_TIER := not (server or distributed or e2e or browser or env or sim)
SERIAL_TIERS := server or e2e
TEST_WORKERS ?= 2
PYTEST := $(VENV)/bin/python -m pytest -q

.PHONY: setup demo test test-fast lint

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/vla demo --out runs/demo

lint: setup
	$(VENV)/bin/ruff check .

# everything: all but the serial tiers on $(TEST_WORKERS) workers, then the serial tiers in one
# process; fails if either run fails
test: lint
	@start=$$(date +%s); \
	$(PYTEST) -n $(TEST_WORKERS) --dist loadfile -m "not ($(SERIAL_TIERS))" --durations=10; parallel=$$?; \
	$(PYTEST) -m "$(SERIAL_TIERS)" --durations=10; serial=$$?; \
	echo "[test] pytest took $$(( $$(date +%s) - start )) s (on $(TEST_WORKERS) workers: exit $$parallel; serial tiers: exit $$serial)"; \
	[ $$parallel -eq 0 ] && [ $$serial -eq 0 ]

# the unit tier alone
test-fast: setup
	@start=$$(date +%s); \
	$(PYTEST) -n $(TEST_WORKERS) --dist loadfile -m "$(UNIT_TIER)" --durations=10; rc=$$?; \
	echo "[test-fast] pytest took $$(( $$(date +%s) - start )) s"; exit $$rc
