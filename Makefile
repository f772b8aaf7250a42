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
# again only when its code changes. What a chapter prints and draws also depends on the code of src/
# it calls, which that cache does not see: when src/ has changed since the last build, every chapter
# runs again (trained models stay in _build/.model_cache, keyed by the training code). A cell that
# raises or any Sphinx warning fails the build; --keep-going reports every warning first.
SRC_HASH = $(shell find src -name '*.py' | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-16)

book: $(STAMP)
	@if [ -d _build/.jupyter_cache ] && [ "$$(cat _build/.src-hash 2>/dev/null)" != "$(SRC_HASH)" ]; then \
	  echo "src/ changed since the last build: every chapter runs again"; \
	  rm -rf _build/.jupyter_cache _build/.doctrees _build/jupyter_execute; \
	fi
	$(VENV)/bin/jupyter-book build . --path-output . -W -n --keep-going
	echo "$(SRC_HASH)" > _build/.src-hash

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
