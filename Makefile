# The two set-up commands of the README: `make demo` and `make test`. Each one creates or reuses
# .venv and installs exactly what it needs, pinned by constraints.txt.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= all,dev

.PHONY: install test lint test-servers demo bench bench-quick clean-venv

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

# The servers the tests start for themselves (PostgreSQL, and Ceph's S3 gateway over a one-OSD
# cluster): Debian packages, installed when missing and apt-get may run (as root or with sudo).
# Without them those tests skip with the reason (they fail under CI=true).
TEST_SERVER_BINARIES := /usr/lib/postgresql/*/bin/initdb /usr/bin/radosgw /usr/bin/ceph-mon /usr/bin/ceph-osd
test-servers:
	@if ! ls $(TEST_SERVER_BINARIES) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
	  if [ "$$SUDO" = none ] || ! command -v apt-get >/dev/null; then \
	    echo "test servers missing and not installable here: PostgreSQL/S3 tests will skip"; \
	  else \
	    echo "installing the test servers from Debian packages (postgresql radosgw ceph-mon ceph-osd)"; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	      --no-install-recommends postgresql radosgw ceph-mon ceph-osd >/dev/null; \
	  fi; \
	fi

test: lint test-servers
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
