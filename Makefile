# Two entry points for a fresh machine: `make space` (the virtual-wardrobe Space) and `make test` (the suite).
# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
PYTEST_ARGS ?= -n 2

.PHONY: setup space test test-fast lint browser

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/pip install --quiet -e ".[dev,space]"
	touch $@

setup: $(VENV)/.installed

# Debian's chromium drives the Space's browser tests (Playwright with executable_path).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

# GRADIO_SERVER_NAME / GRADIO_SERVER_PORT choose the address (default 127.0.0.1:7860).
space: setup
	$(BIN)/python spaces/app.py

test: setup browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
