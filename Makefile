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

# The site, into _build/html. Chapters run with cached execution (_build/.jupyter_cache): one runs
# again only when its code changes. A cell that raises or any Sphinx warning fails the build;
# --keep-going reports every warning first.
book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --path-output . -W -n --keep-going

# Unit tests, every chapter executed by nbmake (tests/test_chapters.py), the built site in Chromium
# (tests/test_site.py, which runs `make book` first when _build/html is missing).
test: $(STAMP) notebooks
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not browser"

# book/*.ipynb from the chapters' Markdown (the source), keeping outputs already in the .ipynb.
# Pages without code cells (the preface, the references) are not notebooks. book/jupytext.toml
# pairs each .ipynb with its .md, so JupyterLab saves edits to both.
notebooks: $(STAMP)
	@set -e; for f in $(CHAPTERS); do \
		grep -q '^```{code-cell}' "$$f" || continue; \
		$(VENV)/bin/jupytext --quiet --to ipynb --update "$$f"; \
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
	rm -rf _build .pytest_cache .ruff_cache book/*.ipynb book/.*.ipynb
