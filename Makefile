# Two commands on a fresh clone: `make run` (demo: train, export, serve) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0

.PHONY: install test lint unit run train-demo accuracy train-speed clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU build first, so the range in pyproject.toml never pulls a CUDA build; GPU users
	# install their CUDA build of torch themselves before `make install` (see README).
	$(PY) -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

lint: install
	$(VENV)/bin/ruff check model training service bench tests
	$(VENV)/bin/mypy

unit: install
	$(VENV)/bin/pytest

test: lint unit

accuracy: install
	$(PY) -m bench.accuracy --grid bench/accuracy_grid.json

train-speed: install
	$(PY) -m bench.train_speed --dataset Beauty --core 1 --repeats 3

clean:
	rm -rf runs artifacts .pytest_cache .mypy_cache .ruff_cache

DEMO_DATA := data/demo.csv

$(DEMO_DATA): | install
	$(PY) -m training synth --out $(DEMO_DATA)

train-demo: $(DEMO_DATA)
	$(PY) -m training train --data $(DEMO_DATA) --model mvcrec --epochs 20 \
		--set model.dim=32 train.patience=3 --run-dir runs/demo --export artifacts --name demo

# Serves the newest demo artifact; with REDIS_URL unset it uses an in-process store.
run: train-demo
	ARTIFACT_DIR=artifacts MODEL_NAME=demo $(PY) -m service
