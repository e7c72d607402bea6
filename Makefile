# The two commands a user needs are `make demo` and `make test`; both set everything up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo gameday test bench fuzz lint venv tools clean soak

$(STAMP): pyproject.toml setup.py authd/dns/_fastudp.c  # the C UDP loop is built here too
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

# One game day: the 2025 schedule in real time, clients behind every cache (~2 minutes).
gameday: $(STAMP) tools
	$(BIN)/enactor gameday

test: $(STAMP) tools
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check authd enactor resolver tests bench
	$(BIN)/mypy authd/model/records.py authd/model/journal.py authd/zonefiles/zonefile.py

# The crash loops at the issue's full counts (CI runs a small share of them), then ten minutes
# of DNS load, change churn and three enactors against one authd (bench/soak.py).
SOAK_MINUTES ?= 10
soak: $(STAMP) tools
	PG_CRASH_ROUNDS=50 PG_CRASH_RESTARTS=5 PG_CRASH_SERVER_ROUNDS=50 $(BIN)/python -m pytest -q tests/test_pg_crash.py tests/test_crash.py
	$(BIN)/python -m bench soak --minutes $(SOAK_MINUTES)

bench: $(STAMP) tools
	$(BIN)/python -m bench all

# Fuzz real authd and resolver processes over UDP and TCP, longer than the share `make test`
# runs (tests/test_fuzz.py); FUZZ_PACKETS per target and transport. Fails on any crash,
# unanswered well-formed query, traceback, or error class logged twice in one second.
FUZZ_PACKETS ?= 200000
fuzz: $(STAMP)
	$(BIN)/python -m bench fuzz --packets $(FUZZ_PACKETS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
