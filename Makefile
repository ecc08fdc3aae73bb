# The Makefile is the interface: `make demo` to try it, `make test` to prove it.
# Everything the project needs is installed from here (uv, both environments).

SHELL := /bin/bash
.DEFAULT_GOAL := help

export PATH := $(HOME)/.local/bin:$(PATH)
# No telemetry or crash reports leave the machine.
export RASA_TELEMETRY_ENABLED := false
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PY311 := $(shell scripts/find-python.sh 3.11)
PY310 := $(shell scripts/find-python.sh 3.10)

APP := .venv
BOT := .venv-bot
CRM := $(APP)/bin/crm-ml
RASA := SQLALCHEMY_SILENCE_UBER_WARNING=1 TF_CPP_MIN_LOG_LEVEL=2 $(BOT)/bin/python -m bot
RASA_MODEL := models/rasa/crm.tar.gz
RASA_INPUTS := config.yml $(wildcard domain/*.yml) $(shell find data -name '*.yml' -not -path 'data/generated/*' 2>/dev/null)
OOS_NLU := data/generated/out_of_scope.yml
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: help install encoder uv demo run test test-fast lint db load train train-models report bench lock clean browser haproxy
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
SENTIMENT := models/sentiment/LATEST
# The pretrained sentence encoder (all-MiniLM-L6-v2), fetched at install time and
# checked by sha256 (scripts/fetch_encoder.py), served by onnxruntime as int8.
ENCODER_DIR := models/encoder/all-MiniLM-L6-v2
ENCODER := $(ENCODER_DIR)/encoder.int8.onnx

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(UV):
	@echo "installing uv (Python package installer) into ~/.local/bin"
	python3 -m pip install --user --quiet uv

uv: $(UV)

$(APP)/.installed: requirements/app.txt pyproject.toml | $(UV)
	@echo "app env ($(APP), Python 3.11+): crm_ml, actions, tests"
	$(UV) venv --allow-existing -q -p $(PY311) $(APP)
	$(UV) pip install -q -p $(APP) -r requirements/app.txt
	$(UV) pip install -q -p $(APP) --no-deps -e .
	@touch $@

$(BOT)/.installed: requirements/bot.txt pyproject.toml | $(UV)
	@echo "bot env ($(BOT), Python 3.10): rasa 3.6.21, python-telegram-bot"
	$(UV) venv --allow-existing -q -p $(PY310) $(BOT)
	$(UV) pip install -q -p $(BOT) -r requirements/bot.txt
	$(UV) pip install -q -p $(BOT) --no-deps -e .
	@touch $@

$(ENCODER): scripts/fetch_encoder.py crm_ml/encoder.py crm_ml/encoder_export.py | $(APP)/.installed
	$(APP)/bin/python scripts/fetch_encoder.py --dest $(ENCODER_DIR)
	$(APP)/bin/python -m crm_ml.encoder_export --folder $(ENCODER_DIR)

encoder: $(ENCODER)  ## Fetch the sentence encoder's weights (sha256-checked) and build its runtime

install: $(APP)/.installed $(BOT)/.installed $(ENCODER)  ## Create both Python environments

db: install  ## Create or migrate the CRM schema
	$(CRM) db upgrade

load: db  ## Load the public datasets into the CRM (idempotent)
	$(CRM) load

MODELS_DONE := var/models.trained
$(MODELS_DONE): $(wildcard crm_ml/*.py crm_ml/features/*.py) | $(APP)/.installed
	$(MAKE) load
	$(CRM) train all
	@touch $@

train-models: $(MODELS_DONE)  ## Train every crm_ml model and write scores to the CRM

# CLINC150's out-of-scope examples are generated from the datasets, never committed.
$(OOS_NLU): scripts/make_oos_nlu.py | $(APP)/.installed
	$(APP)/bin/python scripts/make_oos_nlu.py

# The NLU pipeline's sentiment component is copied from crm_ml's model.
$(SENTIMENT): crm_ml/sentiment.py crm_ml/sentiment_infer.py $(wildcard data/nlu/*.yml) data/sentiment/in_domain.csv $(ENCODER) | $(APP)/.installed
	$(MAKE) db
	$(CRM) train sentiment

$(RASA_MODEL): $(RASA_INPUTS) $(OOS_NLU) $(SENTIMENT) $(ENCODER) $(wildcard bot/*.py) $(BOT)/.installed
	@mkdir -p models/rasa
	$(RASA) train --domain domain --fixed-model-name crm --out models/rasa --quiet

train: install $(RASA_MODEL)  ## Train the Rasa model (models/rasa/crm.tar.gz)

run: ## Start Rasa, the action server (and console) in the foreground; Ctrl-C stops all
	scripts/run.sh

demo: train load train-models  ## Set up what is missing, then start everything
	scripts/run.sh

browser:  ## Debian's Chromium for the browser tests
	@command -v chromium >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium)

haproxy:  ## Debian's HAProxy, the load balancer in front of Rasa replicas (CRM_RASA_REPLICAS)
	@command -v haproxy >/dev/null || PATH="$$PATH:/usr/sbin" command -v haproxy >/dev/null \
	  || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q haproxy)

test: install load train-models train browser haproxy lint  ## Lint, then every test (app env, then the bot env's own tests)
	$(APP)/bin/python -m pytest $(PYTEST_ARGS)
	$(BOT)/bin/python -m pytest tests/bot_env -q $(PYTEST_ARGS)

test-fast: install  ## Tests without the slow and end-to-end ones
	$(APP)/bin/python -m pytest -m "not slow and not e2e" $(PYTEST_ARGS)
	$(BOT)/bin/python -m pytest tests/bot_env -q $(PYTEST_ARGS)

lint: install  ## Ruff over the code
	$(APP)/bin/ruff check crm_ml actions bot console bench scripts tests

report: train-models train  ## Held-out metrics of every model (reports/), understanding, NLU 5-fold CV
	$(CRM) report
	$(CRM) report --format json
	$(BOT)/bin/python scripts/understanding_report.py --model $(RASA_MODEL)
	$(RASA) test nlu --cross-validation --folds 5 --successes --nlu data --config config.yml \
		--out reports/nlu_cv
	@$(APP)/bin/python scripts/nlu_cv_summary.py reports/nlu_cv \
		$$($(BOT)/bin/python -c "import yaml; c = yaml.safe_load(open('config.yml')); \
		print(next(p['threshold'] for p in c['pipeline'] if p['name'] == 'FallbackClassifier'))")

bench: install load train haproxy  ## Ours vs stock Rasa, crm_ml figures, scaling (bench/results.json)
	$(APP)/bin/python -m bench $(BENCH_ARGS)

lock: | $(UV)  ## Re-pin requirements/*.txt from requirements/*.in
	$(UV) pip compile -q -p 3.11 requirements/app.in -o requirements/app.txt
	$(UV) pip compile -q -p 3.10 requirements/bot.in -o requirements/bot.txt

clean:  ## Remove environments, database and trained models
	rm -rf $(APP) $(BOT) var models/rasa models/*/ .pytest_cache
