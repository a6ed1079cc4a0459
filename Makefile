# Two commands on a fresh machine: `make run` (dashboard + embedded model server) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: run test lint serve train demo e2e clean help bench

help:
	@echo "make run    set up .venv and start the dashboard (http://localhost:8502) with the embedded server"
	@echo "make test   set up .venv with test tools and run the whole test suite"
	@echo "make serve  run only the embedded model server on :8501"
	@echo "make train  train and export one version from the command line"
	@echo "make demo   seed a few demo runs and versions"
	@echo "make lint   ruff"
	@echo "make bench  benchmarks vs baselines (KServe, plain Starlette, raw ASGI), writes bench/results.md"

$(PY):
	$(PYTHON) -m venv $(VENV)

# Stamps make re-runs quick: pip runs only when a requirements file changed.
$(VENV)/.runtime-installed: requirements.txt | $(PY)
	$(PIP) install -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(PY)
	$(PIP) install -q -r requirements.txt -r requirements-dev.txt
	touch $(VENV)/.runtime-installed $@

run: $(VENV)/.runtime-installed
	$(PY) -m streamlit run dashboard/app.py

serve: $(VENV)/.runtime-installed
	$(PY) -m pipeline.serving --model_name=linear_model --model_base_path=models/linear_model

train: $(VENV)/.runtime-installed
	$(PY) -m pipeline.train

demo: $(VENV)/.runtime-installed
	$(PY) -m pipeline.demo

test: $(VENV)/.dev-installed
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: $(VENV)/.dev-installed
	$(PY) -m ruff check .

# Benchmarks (not part of `make test`): side-by-side ratios, written to bench/results.md.
# Installs KServe into its own venv under bench/.work/ on first use. `$(PY) -m bench --quick` is short.
bench: $(VENV)/.dev-installed
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .run
