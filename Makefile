# calad: two commands do everything on a fresh machine.
#   make book   set up, execute every chapter with PRESET (default) through papermill, render the HTML book
#   make test   set up, run the unit tests, nbval on the committed notebooks and the numeric regression
# Both are idempotent: finished set-up steps are skipped on a second run.

PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PRESET  ?= default
THEME   := book/theme
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: setup python system node test test-portable test-peers book chapter lab clean help

help:
	@echo "make book [PRESET=default|smoke|thesis]   execute all chapters and render the HTML book into _build/"
	@echo "make test                                 unit tests, nbval on the committed notebooks, numeric regression"
	@echo "make test-portable                        the notebook checks under other CPU kernels and thread counts"
	@echo "make test-peers                           calad against betacal, netcal, anomatools and scikit-learn"
	@echo "make chapter CH=05 [PRESET=...]           execute one chapter into _build/<preset>/notebooks/"
	@echo "make lab                                  JupyterLab: a chapter's .md opens as a notebook paired with its .ipynb"

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

# nbval re-executes the committed notebooks (their figures go to the build folder, not figures/) and
# compares the text of the checked cells; the chapters' recorded numbers land in RECORDS and are then
# compared with the committed ones within their tolerances (tests/test_numbers.py).
NBVAL   := -m pytest -q -p no:cacheprovider --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg notebooks
NUMBERS := -m pytest -q -p no:cacheprovider tests/test_numbers.py -k fresh
RECORDS := $(CURDIR)/_build/test-records

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS) tests
	@rm -rf $(RECORDS); status=0; \
	CALAD_RECORDS=$(RECORDS) CALAD_FIGURES=$(CURDIR)/_build/test-figures $(BIN)/python $(NBVAL) $(PYTEST_ARGS) || status=1; \
	CALAD_FRESH_RECORDS=$(RECORDS) $(BIN)/python $(NUMBERS) || status=1; \
	exit $$status

# The same notebook checks computing as other machines do: PyTorch's CPU kernels chosen for another
# instruction set, and one thread instead of all, each from an empty model cache and results folder (as
# on a fresh machine, so every network is trained again). Then the spread of every recorded number.
PORTABLE := $(CURDIR)/_build/portable
# name:VAR=value[,VAR=value]; blas-skylakex computes NumPy/SciPy's linear algebra with the OpenBLAS kernels of an
# AVX-512 Xeon and NumPy's loops without AVX-512, as another x86 machine would
VARIANTS := kernel-default:ATEN_CPU_CAPABILITY=default kernel-avx2:ATEN_CPU_CAPABILITY=avx2 threads-1:CALAD_THREADS=1 \
            blas-skylakex:OPENBLAS_CORETYPE=SkylakeX,NPY_DISABLE_CPU_FEATURES=X86_V4


test-portable: setup
	@status=0; for v in $(VARIANTS); do \
	  name=$${v%%:*}; setting=$$(echo $${v#*:} | tr , ' '); echo "== $$name ($$setting)"; rm -rf $(PORTABLE)/$$name; \
	  rm -rf $(PORTABLE)/stores/$$name; \
	  env $$setting CALAD_RECORDS=$(PORTABLE)/$$name CALAD_FIGURES=$(PORTABLE)/figures \
	    CALAD_CACHE=$(PORTABLE)/stores/$$name/cache CALAD_RESULTS=$(PORTABLE)/stores/$$name/results \
	    $(BIN)/python $(NBVAL) || status=1; \
	  env CALAD_FRESH_RECORDS=$(PORTABLE)/$$name $(BIN)/python $(NUMBERS) || status=1; \
	done; \
	$(BIN)/calad records spread $(addprefix $(PORTABLE)/,$(foreach v,$(VARIANTS),$(firstword $(subst :, ,$(v))))) \
	  --out $(PORTABLE)/portability.json || status=1; \
	exit $$status

book: setup
	$(BIN)/calad book --preset $(PRESET)

chapter: setup
	$(BIN)/calad run $(CH) --preset $(PRESET)

# Parity with the peer libraries (the extra `peers`, part of the dev set-up, so `make test` runs it too)
test-peers: setup
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[peers]"
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_peers.py

# JupyterLab on this checkout: open notebooks/NN_*.md, edit, then `calad refresh NN` and `make test`
lab: setup
	$(BIN)/jupyter lab --notebook-dir=$(CURDIR) $(if $(filter 0,$(shell id -u)),--allow-root,)

clean:
	rm -rf _build .pytest_cache
