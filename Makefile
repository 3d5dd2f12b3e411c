# The two set-up commands of the README: `make demo` and `make test`. Each one creates or reuses
# .venv and installs exactly what it needs, pinned by constraints.txt.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= all,dev

.PHONY: install test lint demo bench bench-quick clean-venv

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24" wheel
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	@touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint --failure-threshold warning Dockerfile

test: lint
	$(BIN)/pytest -q -p no:cacheprovider
	$(MAKE) --no-print-directory bench-quick

# Benchmarks: each runs its baseline beside the candidate and writes JSON to bench/results/.
# The full run takes about 4 minutes on 2 cores and is not part of CI; the quick one is a smoke run.
bench: $(STAMP)
	$(BIN)/python -m bench $(if $(QUICK),--quick)

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

demo: $(STAMP)
	$(BIN)/namae demo

clean-venv:
	rm -rf $(VENV)
