# Two commands on a fresh machine: `make run` (dashboard + embedded model server) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: run test lint serve train demo e2e clean help bench tfjs screenshots batch conformance

help:
	@echo "make run    set up .venv and start the dashboard (http://localhost:8502) with the embedded server"
	@echo "make test   set up .venv with test tools and run the whole test suite"
	@echo "           (PYTEST_ARGS=--reverse runs it in reverse order: no test may depend on another)"
	@echo "make serve  run only the embedded model server on :8501"
	@echo "make train  train and export one version from the command line"
	@echo "make demo   seed a few demo runs and versions"
	@echo "make lint   ruff"
	@echo "make screenshots  drive the demo story in Chromium and write docs/screenshots/*.png (README)"
	@echo "make tfjs   npm ci the pinned @tensorflow/tfjs and copy tf.min.js into dashboard/static/tfjs/"
	@echo "make batch ARGS=\"--input rows.csv --output predictions.parquet\"  score a file on Spark (local[*])"
	@echo "make bench  benchmarks vs baselines (KServe, plain Starlette, raw ASGI; the load tool vs wrk and h2load), writes bench/results.md"
	@echo "           (BEFORE=<git rev> also runs that revision's server beside this one, paired: ours ÷ before)"
	@echo "make conformance  TF Serving's own tests (tests/upstream) on its own models in ../shared/tfserving-testdata"

$(PY):
	$(PYTHON) -m venv $(VENV)

# One way in, the README's: `pip install -r requirements.txt` from the checkout installs the pins and the
# project itself (its last line, `-e .`), so `pipeline` and `dashboard` import from any folder and
# `streamlit run dashboard/app.py` works. Stamps make re-runs quick: pip runs only when a requirements
# file or pyproject.toml changed.
$(VENV)/.runtime-installed: requirements.txt pyproject.toml | $(PY)
	$(PIP) install -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt pyproject.toml | $(PY)
	$(PIP) install -q -r requirements.txt -r requirements-dev.txt
	touch $(VENV)/.runtime-installed $@

run: $(VENV)/.runtime-installed tfjs
	$(PY) -m streamlit run dashboard/app.py

serve: $(VENV)/.runtime-installed
	@mkdir -p .run && echo 'max_batch_size { value: 50000 }' > .run/batching_parameters.txt
	$(PY) -m pipeline.serving --rest_api_port=8501 --port=8500 --enable_batching --batching_parameters_file=$(CURDIR)/.run/batching_parameters.txt --model_name=linear_model --model_base_path=$(CURDIR)/models/linear_model

train: $(VENV)/.runtime-installed
	$(PY) -m pipeline.train

demo: $(VENV)/.runtime-installed
	$(PY) -m pipeline.demo

test: $(VENV)/.dev-installed $(VENV)/.batch-installed tfjs
	$(PY) -m ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(PY) -m ruff check .

# The README's screenshots come from this explicit command; `make test` writes its own to a temp folder.
screenshots: $(VENV)/.dev-installed
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(PY) -m pytest -q -p no:cacheprovider tests/e2e

# The browser route's TensorFlow.js, pinned in package-lock.json: `npm ci`, then tf.min.js into the
# dashboard's static folder (git ignores both). Without npm, or offline on the first run, it says what
# is missing and carries on, so `make run` still starts (the Deploy page explains the same).
TFJS_MIN := dashboard/static/tfjs/tf.min.js

tfjs: $(TFJS_MIN)

$(TFJS_MIN): package.json package-lock.json
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "make: npm not found; the TF.js route is off (Debian: apt-get install nodejs npm)"; \
	elif npm ci --ignore-scripts --no-audit --no-fund --loglevel=error; then \
	  mkdir -p $(@D) && cp node_modules/@tensorflow/tfjs/dist/tf.min.js $@; \
	else \
	  echo "make: npm ci failed; the TF.js route is off until it succeeds"; \
	fi

# Spark batch scoring: PySpark (about 450 MB) has its own requirements file, installed by `make test`
# and by `make batch ARGS="--input rows.csv --output predictions.parquet"` (needs Java 17+).
$(VENV)/.batch-installed: requirements-batch.txt | $(PY)
	$(PIP) install -q -r requirements-batch.txt
	touch $@

batch: $(VENV)/.runtime-installed $(VENV)/.batch-installed
	$(PY) -m pipeline.batch $(ARGS)

# Benchmarks (not part of `make test`): side-by-side ratios, written to bench/results.md.
# Installs KServe into its own venv under bench/.work/ on first use. `$(PY) -m bench --quick` is short.
bench: $(VENV)/.dev-installed
	$(PY) -m bench$(if $(BEFORE), --before $(BEFORE))

# TensorFlow Serving's tests, ported (tests/upstream/), on TF Serving's own test models and command
# lines. `make test` runs the same tests on the project's copies of those models.
TFSERVING_TESTDATA ?= $(abspath ../shared/tfserving-testdata)
conformance: $(VENV)/.dev-installed
	@if [ ! -d "$(TFSERVING_TESTDATA)" ]; then \
	  echo "make conformance: skipped: TF Serving's testdata is not at $(TFSERVING_TESTDATA)"; \
	  echo "  (its tensorflow_serving/servables/tensorflow/testdata/ folder; set TFSERVING_TESTDATA=...)"; \
	else \
	  TFSERVING_TESTDATA=$(TFSERVING_TESTDATA) $(PY) -m pytest -q -p no:cacheprovider tests/upstream; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .run
