# calad: two commands do everything on a fresh machine.
#   make book   set up, execute every chapter with PRESET (default) through papermill, render the HTML book
#   make test   set up, run the unit tests and nbval on the committed notebooks
# Both are idempotent: finished set-up steps are skipped on a second run.

PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PRESET  ?= default
THEME   := book/theme
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export OMP_WAIT_POLICY ?= PASSIVE
PYTEST_ARGS ?=

.PHONY: setup python system node test book chapter clean help

help:
	@echo "make book [PRESET=default|smoke|thesis]   execute all chapters and render the HTML book into _build/"
	@echo "make test                                 unit tests + nbval on the committed notebooks"
	@echo "make chapter CH=05 [PRESET=...]           execute one chapter into _build/<preset>/notebooks/"

setup: python system node

# --- Python: virtual environment with calad_lib (editable), torch 2.14.1, test and book tools
python: $(VENV)/.calad-installed
$(VENV)/.calad-installed: pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $@

# --- Debian packages: the real Fashion-MNIST (offline) and Chromium for the browser test
system:
	@if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && command -v chromium >/dev/null 2>&1; then \
	  echo "system packages: present"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  $(SUDO) apt-get install -y -q dataset-fashion-mnist chromium >/dev/null \
	  || ($(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q dataset-fashion-mnist chromium >/dev/null) \
	  || echo "warning: apt-get could not install dataset-fashion-mnist/chromium; see README 'Data'"; \
	else \
	  echo "note: no apt-get here; put Fashion-MNIST under \$$CALAD_DATA/fashion-mnist (see README 'Data')"; \
	fi

# --- Node: the offline book renderer (myst-to-html, katex)
node: $(THEME)/node_modules/.installed
$(THEME)/node_modules/.installed: $(THEME)/package.json $(THEME)/package-lock.json
	cd $(THEME) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# nbval re-executes the committed notebooks; their figures go to the build folder, not figures/
test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS) tests
	CALAD_FIGURES=$(CURDIR)/_build/test-figures $(BIN)/python -m pytest -q $(PYTEST_ARGS) \
	  --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg notebooks

book: setup
	$(BIN)/calad book --preset $(PRESET)

chapter: setup
	$(BIN)/calad run $(CH) --preset $(PRESET)

clean:
	rm -rf _build .pytest_cache
