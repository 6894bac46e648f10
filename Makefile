# Two commands build and check everything:  `make book`  and  `make test`.
# Both create the virtual environment in .venv on first use and reuse it after.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
VENDOR := _build/vendor
HTML   := _build/html

# Where no one watches a notebook run (tests, book builds) training draws one
# final figure instead of redrawing a live plot.
HEADLESS := LLM_BOOK_HEADLESS=1
# Every Python process started for notebooks refuses non-local connections
# and records any attempt in _build/netguard-*.log (tests/netguard/sitecustomize.py).
NETGUARD := PYTHONPATH=$(CURDIR)/tests/netguard NETGUARD_LOG=$(CURDIR)/_build/netguard
# Where the kernel allows it, run notebooks in a network namespace that has
# only the loopback interface, so nothing can leave the machine.
OFFLINE := tools/offline
# Every step is bounded, so that a hang fails fast instead of eating CI's
# time: after the limit `timeout` sends SIGABRT, on which Python prints the
# stack of every thread (faulthandler), and SIGKILL 30 s later.  Inside,
# each test has its own, tighter bound (pyproject.toml, conftest.py).
BOUND := PYTHONFAULTHANDLER=1 timeout --signal=ABRT --kill-after=30
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
# Per notebook: 240 s under nbval, 300 s in JupyterLab (see the tests).
NB_SECONDS := $(shell echo $$(( 240 * $(words $(NOTEBOOKS)) + 120 )))
LAB_SECONDS := $(shell echo $$(( 420 * $(words $(NOTEBOOKS)) + 120 )))
# The chapters that check one implementation against another in float32
# (they build those models in `device.exact()`): run again with the mixed
# policy forced, to show that the checks cannot pick it up.
EXACT_NOTEBOOKS := $(shell grep -l 'device.exact()' $(NOTEBOOKS))

.PHONY: help venv book test test-unit test-notebooks test-mixed test-mixed-exact test-book test-lab bench stress lab clean

help:
	@echo "make book   build the HTML book into $(HTML) (executes the notebooks, cached)"
	@echo "make test   unit tests, every notebook, the book build and the browser checks"
	@echo "make lab    start JupyterLab on 127.0.0.1 with a token"
	@echo "make bench  measure training speed and notebook times into book/performance.md"
	@echo "make stress run every notebook 10 times under load: the stall check"
	@echo "make test-mixed  every notebook with the mixed policy forced"
	@echo "make clean  remove build output (keeps .venv)"

$(STAMP): requirements.txt requirements-data.txt constraints.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-data.txt -c constraints.txt
	touch $@

venv: $(STAMP)

$(VENDOR)/.complete: tools/vendor_assets.py tools/widgets-require-config.js | $(STAMP)
	$(BIN)/python tools/vendor_assets.py $(VENDOR)

# Notebooks come from the execution cache; `make test` has just filled it
# (tests/nbval_to_book.py), so there the build executes nothing.
book: $(STAMP) $(VENDOR)/.complete
	rm -rf $(HTML)  # no stale pages; executed notebooks come from the cache
	mkdir -p _build && : > _build/netguard-book.log
	$(HEADLESS) $(NETGUARD)-book.log $(BOUND) $(NB_SECONDS) $(OFFLINE) \
	  $(BIN)/jupyter-book build . --builder html -W --keep-going
	@echo "Open $(HTML)/index.html"

test-unit: $(STAMP)
	$(BOUND) 1200 $(BIN)/python -m pytest tests/unit --cov=helpers --cov-report=term-missing --cov-fail-under=90

test-notebooks: $(STAMP)
	mkdir -p _build && : > _build/netguard-notebooks.log
	$(HEADLESS) $(NETGUARD)-notebooks.log $(BOUND) $(NB_SECONDS) $(OFFLINE) \
	  $(BIN)/python -m pytest --nbval-lax $(NOTEBOOKS)

# Every notebook with the mixed policy forced (bfloat16 runs on a CPU): the
# book's checks must hold whatever precision a GPU would train in.  Run once
# by hand (about 5½ minutes for 8 chapters); `make test` runs the chapters with exactness checks.
test-mixed: $(STAMP)
	LLM_BOOK_PRECISION=mixed_bfloat16 $(HEADLESS) $(BOUND) $(NB_SECONDS) \
	  $(BIN)/python -m pytest --nbval-lax $(NOTEBOOKS)

test-mixed-exact: $(STAMP)
	LLM_BOOK_PRECISION=mixed_bfloat16 $(HEADLESS) $(BOUND) $(NB_SECONDS) \
	  $(BIN)/python -m pytest --nbval-lax $(EXACT_NOTEBOOKS)

test-book: book
	$(BOUND) 900 $(BIN)/python -m pytest tests/book

# JupyterLab in headless Chromium, every chapter: run all cells, press each
# panel's button with its defaults and after changing one value.  The kernels
# run with the mixed policy forced (LAB_PRECISION): this one execution checks
# both the panels and that every assert holds in bfloat16, which a separate
# `make test-mixed` run used to do at the cost of running every chapter again.
# LAB_PRECISION= (empty) runs the sweep in each chapter's own precision.
LAB_PRECISION ?= mixed_bfloat16
test-lab: $(STAMP)
	mkdir -p _build && : > _build/netguard-lab.log
	LLM_BOOK_PRECISION=$(LAB_PRECISION) $(NETGUARD)-lab.log $(BOUND) $(LAB_SECONDS) \
	  $(BIN)/python -m pytest tests/lab

# Measurements for book/performance.md (not part of `make test`; about 30
# minutes on 2 cores).  BUDGET sets the training seconds of the char LM.
BUDGET ?= 300
bench: $(STAMP)
	mkdir -p _build && : > _build/netguard-bench.log
	$(NETGUARD)-bench.log $(BIN)/python bench/run.py --budget $(BUDGET)

# The stall check under load: every notebook RUNS times with nbclient, two
# busy loops beside it (about 30 minutes for RUNS=10); written to the same page.
RUNS ?= 10
stress: $(STAMP)
	mkdir -p _build && : > _build/netguard-bench.log
	$(NETGUARD)-bench.log $(BIN)/python bench/run.py --stress $(RUNS)

# Every chapter runs twice: in float32 under nbval (timed, then the book is
# built from those executions) and in JupyterLab with the mixed policy forced
# (bfloat16 on a CPU), not only the chapters with float32 equality checks: a
# custom layer that mixes dtypes fails there as it would on a GPU (chapter 2's
# VAE did).
# The wall time of a passing run is kept in _build/make-test.json for `make bench`.
test:
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory test-unit test-notebooks test-book test-lab; \
	mkdir -p _build; \
	printf '{"seconds": %d, "date": "%s", "notebooks": %d}\n' $$(( $$(date +%s) - start )) "$$(date -I)" \
	  $(words $(NOTEBOOKS)) > _build/make-test.json; \
	echo "make test passed in $$(( ($$(date +%s) - start) / 60 )) min"

lab: $(STAMP)
	$(BIN)/jupyter lab --ip=127.0.0.1 --no-browser --ServerApp.root_dir=$(CURDIR) \
	  --LabApp.extension_manager=readonly $(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf $(HTML) _build/jupyter_execute _build/.doctrees _build/screenshots
