# The two commands a reader needs: `make book` and `make test`. Everything else is set up on demand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CHAPTERS := $(wildcard book/*.md)
NOTEBOOKS := $(CHAPTERS:.md=.ipynb)

.PHONY: install book test test-fast notebooks lab serve bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[book,dev]'
	touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --path-output . -W -n --keep-going

test: $(STAMP) notebooks
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not browser"

notebooks: $(STAMP)
	@for f in $(CHAPTERS); do \
		case $$f in book/intro.md|book/references.md) continue;; esac; \
		$(VENV)/bin/jupytext --quiet --to ipynb --update "$$f" 2>/dev/null || $(VENV)/bin/jupytext --quiet --to ipynb "$$f"; \
	done

lab: $(STAMP) notebooks
	cd book && ../$(VENV)/bin/jupyter lab

serve: book
	$(PY) -m http.server --directory _build/html 8000 --bind 127.0.0.1

bench: $(STAMP)
	$(PY) -m src.bench

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests

clean:
	rm -rf _build .pytest_cache .ruff_cache book/*.ipynb
