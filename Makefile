VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test test-fast bench lint

$(VENV)/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV)

install: $(VENV)/.installed

run: install  ## the README's main job: real TTRL on the embedded model
	$(BIN)/harness run --strategy majority --optimizer grpo

test: install  ## the README's test command (CI runs this)
	$(BIN)/python -m pytest -q

test-fast: install  ## the edit-test loop: everything but the tests marked slow (real model and engines)
	$(BIN)/python -m pytest -q -m "not slow and not bench"

bench: install
	$(BIN)/harness bench

lint: install
	$(BIN)/ruff check .
