# The two commands a user needs are `make demo` and `make test`; both set everything up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint venv tools clean soak

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# System tools the end-to-end tests and demo use (dig, kdig, nsd, knot, unbound, dnsperf).
tools:
	@bash scripts/ensure-tools.sh

demo: $(STAMP) tools
	$(BIN)/enactor demo

test: $(STAMP) tools
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check authd enactor resolver tests bench
	$(BIN)/mypy authd/records.py authd/journal.py authd/zonefile.py

# The crash loops at the issue's full counts (CI runs a small share of them).
soak: $(STAMP) tools
	PG_CRASH_ROUNDS=50 PG_CRASH_RESTARTS=5 PG_CRASH_SERVER_ROUNDS=50 $(BIN)/python -m pytest -q tests/test_pg_crash.py tests/test_crash.py

bench: $(STAMP) tools
	$(BIN)/python -m bench all

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
