# `make demo` runs the main job, `make test` the whole suite; each creates .venv and installs what it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch (a plain `torch` requirement would pull a multi-GB CUDA build).
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,train]"
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/roberta-prelayernorm demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest

# Timings against transformers on the same weights (minutes; run on a quiet machine).
bench: $(STAMP)
	$(PY) -m pip install -q -e ".[bench]"
	cd benchmarks && HF_HUB_OFFLINE=1 ../$(PY) bench_peers.py
	cd benchmarks && HF_HUB_OFFLINE=1 ../$(PY) bench_peers.py --size large --no-roofline
	cd benchmarks && HF_HUB_OFFLINE=1 ../$(PY) bench_inference.py --int8
	cd benchmarks && HF_HUB_OFFLINE=1 ../$(PY) bench_training.py
	cd benchmarks && HF_HUB_OFFLINE=1 ../$(PY) bench_training.py --workload full
	cd benchmarks && HF_HUB_OFFLINE=1 ../$(PY) bench_load.py
	cd benchmarks && HF_HUB_OFFLINE=1 ../$(PY) bench_tokenizer.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
