# Each target sets up its own virtualenv (.venv) and reinstalls only when
# pyproject.toml changed (the stamp file records the last install).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.atoll-installed
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` (0: no workers, every test in this process). The Docker
# tests share one worker whatever the number (tests/conftest.py); the 40 slowest tests are listed.
TEST_WORKERS ?= 3

.PHONY: test demo bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	test -x $(VENV)/bin/uv || $(VENV)/bin/python -m pip install -q uv || \
		($(VENV)/bin/python -m ensurepip -q && $(VENV)/bin/python -m pip install -q uv)
	$(VENV)/bin/uv pip install -q --python $(VENV)/bin/python -e '.[dev]'
	touch $(STAMP)

# The layers of DESIGN.md §2 first (import-linter contracts in pyproject.toml), then the tests.
test: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache --no-logo
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadgroup --durations=40 $(PYTEST_ARGS)

demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/demo

bench: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bench/run

clean:
	rm -rf $(VENV) .pytest_cache
