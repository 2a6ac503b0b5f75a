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
# results/rehearsal first; `tools/reproduce.py --rehearsal` alone resumes), RankSRGAN in BasicSR, then in MMagic.
rehearsal: install
	@echo "make rehearsal: deleting results/rehearsal (an earlier rehearsal) to start from scratch"
	rm -rf results/rehearsal
	$(PY) tools/reproduce.py --rehearsal
	$(PY) tools/reproduce.py --rehearsal --toolbox mmagic

lint: install
	$(VENV)/bin/ruff check ranksrgan_plugin tools tests basicsr benchmarks

clean-venv:
	rm -rf $(VENV)
