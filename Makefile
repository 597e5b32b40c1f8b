# Two commands set up a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint format stop clean load faults fuzz security bench-imitation feedback \
	annotator-noise bench-trl dpo-throughput text-loop

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

## run: install, migrate, seed the demo, start web + worker + beat; prints the URL and logins.
## Uses DATABASE_URL / CELERY_BROKER_URL when set, else embedded PostgreSQL and Redis in .data/.
run: $(VENV)/.installed
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py runplatform

## test: the whole test suite (real PostgreSQL, a real Celery worker, headless Chromium).
test: $(VENV)/.installed-dev
	$(BIN)/pytest

## load: 100 annotators doing next → judge against gunicorn + PostgreSQL, beside the no-op
## ceiling of the same stack; prints a table, writes benchmarks/results/labeling_load.json.
load: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/labeling_load.py

## faults: a worker SIGKILLed mid-round, PostgreSQL stopped under gunicorn, the broker down,
## then the load run with its own PostgreSQL restarted 5 s in (labeling_load_restart.json).
faults: $(VENV)/.installed-dev
	$(BIN)/pytest tests/training/test_worker_killed.py tests/platform/test_database_outage.py \
		tests/training/test_broker_outage.py -v
	$(BIN)/python benchmarks/labeling_load.py --scenarios separate,combined \
		--restart-postgres-after 5

## security: the security review's probes against gunicorn and PostgreSQL (a fresh database);
## prints each with its result, writes benchmarks/results/security_probes.json.
security: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/security_probes.py

## fuzz: schemathesis against the OpenAPI schema with many more examples than the suite.
fuzz: $(VENV)/.installed-dev
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-200} $(BIN)/pytest tests/labeling/test_api_fuzz.py -v

## lint: ruff, and the import contracts in pyproject.toml (layers, training.ml, no cycles).
## bench-imitation: imitation (the feedback benchmark's peer) into .venv-imitation; it pins a
## gymnasium the platform cannot share.
bench-imitation: .venv-imitation/.installed

.venv-imitation/.installed: benchmarks/requirements-imitation.txt
	test -x .venv-imitation/bin/python || $(PYTHON) -m venv .venv-imitation
	.venv-imitation/bin/pip install --quiet --upgrade pip
	.venv-imitation/bin/pip install --quiet -r benchmarks/requirements-imitation.txt
	touch $@

## feedback: true return against labels on Pendulum, beside imitation (hours on 2 cores).
feedback: $(VENV)/.installed-dev .venv-imitation/.installed
	$(BIN)/python benchmarks/feedback_efficiency.py

## bench-trl: TRL (the DPO benchmark's peer) into .venv-trl, with the platform's torch and
## transformers; kept out of requirements.txt (it brings accelerate, datasets, pyarrow).
bench-trl: .venv-trl/.installed

.venv-trl/.installed: benchmarks/requirements-trl.txt
	test -x .venv-trl/bin/python || $(PYTHON) -m venv .venv-trl
	.venv-trl/bin/pip install --quiet --upgrade pip
	.venv-trl/bin/pip install --quiet -r benchmarks/requirements-trl.txt
	touch $@

## dpo-throughput: this platform's DPO beside TRL's DPOTrainer on CPU (about 45 minutes on
## 2 idle cores).
dpo-throughput: $(VENV)/.installed-dev .venv-trl/.installed
	$(BIN)/python benchmarks/dpo_throughput.py

## text-loop: DPO and reward model + PPO rounds of the demo LM, win rate against KL to the
## initial policy (about 2 minutes on 2 cores).
text-loop: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/text_loop.py

## annotator-noise: two careless annotators of six, with and without reliability weighting
## (Pendulum and the text demo; about 10-15 minutes on 2 cores).
annotator-noise: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/annotator_noise.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## stop: stop the embedded PostgreSQL and Redis that `make run` left running in .data/.
stop:
	$(BIN)/python -m rlhf_platform.embedded stop .data

clean: stop
	rm -rf .data
