# kibamail.email_platform: one entry point for setup, the lab and the tests.
# Every target is safe to re-run; `make test` is what CI runs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(CURDIR)/$(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
export ANSIBLE_LINT_SKIP_SCHEMA_UPDATE := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help setup venv host images collection test lint yamllint ansible-lint sanity units \
	integration molecule build ee ee-local lab lab-down verify bench clean

help:
	@echo "make lab        bring the whole platform up in local containers and show it working"
	@echo "make test       run every quality gate (what CI runs)"
	@echo "make lab-down   remove everything the lab created"
	@echo "make bench      run the benchmarks and write docs/benchmarks.md"

## setup ---------------------------------------------------------------------
setup: host venv images collection

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check --upgrade pip==24.2
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

host:
	scripts/setup-host.sh

images: host
	scripts/build-images.sh

# The checkout resolves as kibamail.email_platform through this link.
collection:
	mkdir -p .collections/ansible_collections/kibamail
	ln -sfn ../../.. .collections/ansible_collections/kibamail/email_platform

## tests ---------------------------------------------------------------------
test: setup
	scripts/test.sh

lint: yamllint ansible-lint
yamllint: venv
	scripts/test.sh yamllint
ansible-lint: venv collection
	scripts/test.sh ansible-lint
sanity: venv
	scripts/test.sh sanity
units: venv collection
	scripts/test.sh units
integration: setup
	scripts/test.sh integration
molecule: setup
	scripts/test.sh molecule
build: venv collection
	scripts/test.sh build

# The execution environment image (execution-environment.yml): `ee` needs
# registry.access.redhat.com and Ansible Galaxy; `ee-local` builds it on this
# machine (local base image, dependencies from the venv) and runs the plan in it.
ee: venv collection
	scripts/build-ee.sh build
ee-local: setup
	scripts/build-ee.sh local

## the lab -------------------------------------------------------------------
lab: setup
	scripts/lab.sh up

lab-down:
	scripts/lab.sh down

verify: setup
	scripts/lab.sh verify

bench: setup
	scripts/bench.sh

clean: lab-down
	rm -rf .build .cache tests/output *.tar.gz
