# `make demo` runs the main job, `make test` the whole suite; each creates .venv and installs what it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build of torch that lies on disk (a plain `torch` requirement would pull a multi-GB CUDA build).
TORCH ?= torch==2.13.0

.PHONY: demo test test-fast system-tools interop bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[test,train]"
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/roberta-prelayernorm demo

test: $(STAMP) system-tools
	HF_HUB_OFFLINE=1 $(PY) -m pytest

# Some tests need Debian packages: the server's page runs in chromium (with its chromedriver), `export --int8`
# runs on an emulated AVX2-only CPU (qemu-user), and the server starts itself again on tcmalloc or jemalloc
# (libraries, not commands). They are installed here when missing, as root or with password-less sudo where
# apt-get exists; otherwise those tests skip and say why, and nothing fails.
SYSTEM_TOOLS := chromium:chromium chromedriver:chromium-driver qemu-x86_64:qemu-user \
  libtcmalloc_minimal.so.4:libtcmalloc-minimal4 libjemalloc.so.2:libjemalloc2
system-tools:
	@missing=""; for pair in $(SYSTEM_TOOLS); do { command -v $${pair%%:*} || \
	  /sbin/ldconfig -p 2>/dev/null | grep -qF "$${pair%%:*} "; } >/dev/null 2>&1 || \
	  missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=no; fi; \
	  if [ "$$SUDO" != no ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing for the page, emulated-CPU and allocator tests"; \
	    { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; } \
	      >/dev/null 2>&1 || echo "could not install$$missing: their tests will skip"; \
	  else echo "no apt-get as root for$$missing: their tests will skip"; fi; \
	fi

# The quick loop while working (under 2 minutes): everything but the `slow` tests.
test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not slow"

# Interop with the latest transformers 5.x (the tests' oracle is 4.57.6): save here, load there, and back.
INTEROP_VENV ?= .venv-transformers5
TRANSFORMERS5 ?= 5.24.0
INTEROP_DIR := $(VENV)/interop

$(INTEROP_VENV)/.installed:
	python3 -m venv $(INTEROP_VENV)
	$(INTEROP_VENV)/bin/python -m pip install -q $(TORCH) transformers==$(TRANSFORMERS5)
	touch $@

interop: $(STAMP) $(INTEROP_VENV)/.installed
	rm -rf $(INTEROP_DIR)
	HF_HUB_OFFLINE=1 $(PY) .ci/interop.py save-ours $(INTEROP_DIR)
	HF_HUB_OFFLINE=1 $(INTEROP_VENV)/bin/python .ci/interop.py check-and-save $(INTEROP_DIR)
	HF_HUB_OFFLINE=1 $(PY) .ci/interop.py check-theirs $(INTEROP_DIR)

# Timings against transformers on the same weights (minutes; run on a quiet machine). Each script writes its figures
# to benchmarks/results/; the README's tables are then rewritten from the newest runs on the CPU they name.
bench: $(STAMP)
	$(PY) -m pip install -q -e ".[bench]"
	cd benchmarks && HF_HUB_OFFLINE=1 ../$(PY) bench_peers.py
	cd benchmarks && HF_HUB_OFFLINE=1 ../$(PY) bench_peers.py --size large --no-roofline
	cd benchmarks && HF_HUB_OFFLINE=1 ../$(PY) bench_inference.py --int8
	cd benchmarks && HF_HUB_OFFLINE=1 ../$(PY) bench_training.py
	cd benchmarks && HF_HUB_OFFLINE=1 ../$(PY) bench_pretraining.py
	cd benchmarks && HF_HUB_OFFLINE=1 ../$(PY) bench_training.py --workload full
	cd benchmarks && HF_HUB_OFFLINE=1 ../$(PY) bench_load.py
	cd benchmarks && HF_HUB_OFFLINE=1 ../$(PY) bench_checks.py
	cd benchmarks && HF_HUB_OFFLINE=1 ../$(PY) bench_tokenizer.py
	$(PY) tools/readme_tables.py --latest

clean:
	rm -rf $(VENV) $(INTEROP_VENV) .pytest_cache .hypothesis
