# `make test` and `make demo` set everything up from nothing in a project-local virtualenv
# (.venv, git-ignored). Each install step leaves a stamp, so a second run skips what is done;
# editing a requirements file or setup.py redoes only the steps after it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check --quiet
REQ := requirements
CONSTRAINTS := -c $(REQ)/constraints.txt
PYTEST_ARGS ?=

.PHONY: install test demo rehearsal lint clean-venv

install: $(VENV)/.stamp-plugin

$(VENV)/.stamp-venv:
	$(PYTHON) -m venv $(VENV)
	touch $@

$(VENV)/.stamp-torch: $(VENV)/.stamp-venv $(REQ)/torch.txt
	@echo 'install: torch + torchvision (a few minutes the first time)'
	$(PIP) install -r $(REQ)/torch.txt
	touch $@

$(VENV)/.stamp-stack: $(VENV)/.stamp-torch $(REQ)/stack.txt $(REQ)/constraints.txt
	@echo 'install: mmengine, mmcv-lite, mmagic and their stack'
	$(PIP) install $(CONSTRAINTS) -r $(REQ)/stack.txt
	$(PIP) install $(CONSTRAINTS) --no-deps mmagic
	touch $@

# basicsr 1.4.2 ships source only; without --no-build-isolation its build pulls another torch.
$(VENV)/.stamp-basicsr: $(VENV)/.stamp-stack
	@echo 'install: basicsr 1.4.2'
	$(PIP) install $(CONSTRAINTS) --no-build-isolation basicsr
	touch $@

$(VENV)/.stamp-plugin: $(VENV)/.stamp-basicsr setup.py
	@echo 'install: ranksrgan_plugin (editable)'
	$(PIP) install $(CONSTRAINTS) --no-build-isolation --no-deps -e .
	touch $@

test: install
	$(PY) -m pytest tests $(PYTEST_ARGS)

demo: install
	$(PY) tools/demo.py

# The paper road's stages with the paper's option files on a small layout, CPU, minutes: from scratch (it deletes
# results/rehearsal first; `tools/reproduce.py --rehearsal` alone resumes), RankSRGAN in BasicSR, then in MMagic,
# then with --fast (bf16, channels_last, foreach Adam, the raw cache: the CUDA settings less compile).
rehearsal: install
	@echo "make rehearsal: deleting results/rehearsal (an earlier rehearsal) to start from scratch"
	rm -rf results/rehearsal
	$(PY) tools/reproduce.py --rehearsal
	$(PY) tools/reproduce.py --rehearsal --toolbox mmagic
	$(PY) tools/reproduce.py --rehearsal --fast

lint: install
	$(VENV)/bin/ruff check ranksrgan_plugin tools tests basicsr benchmarks

clean-venv:
	rm -rf $(VENV)

# benchmarks/gpu_checks.sh's CUDA box (x86-64, CPython 3.12, its own torch and numpy 2.x, no network) lacks these:
# basicsr 1.4.2 (source only on PyPI: built here as the pure-Python wheel it is, with the virtualenv's torch), lmdb
# (imported by basicsr), addict and yapf (+ platformdirs: yapf's) declared by basicsr. Never torch, torchvision or
# numpy: the check runs on the box's own. Carry .whl/ (git-ignored, under 1 MB) with the run.
GPU_WHEELS := lmdb==1.8.1 addict==2.4.0 yapf==0.43.0 platformdirs==4.14.9
GPU_WHEEL_TARGET := --python-version 3.12 --implementation cp --abi cp312 --abi none --platform manylinux_2_28_x86_64 \
	--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any

.PHONY: gpu-wheels gpu-checks-dry

gpu-wheels: install
	rm -rf .whl && mkdir -p .whl
	$(PIP) wheel --no-deps --no-build-isolation --wheel-dir .whl basicsr==1.4.2
	$(PIP) download --no-deps --only-binary=:all: $(GPU_WHEEL_TARGET) --dest .whl $(GPU_WHEELS)
	@ls -l .whl && du -sh .whl

# The GPU check on this machine's CPU with tiny sizes: the same script, sections and result files (CI runs it, so
# the script cannot rot unseen); results in $(GPU_DRY_OUT).
GPU_DRY_OUT ?= /tmp/gpu_checks_dry
gpu-checks-dry: install
	OUT=$(GPU_DRY_OUT) WORK=$(GPU_DRY_OUT)_work PYTHON=$(PY) bash benchmarks/gpu_checks.sh --dry
