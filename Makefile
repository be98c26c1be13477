# fleetform: two commands on a fresh machine.
#   make demo   set up .venv, synthesize the example organization (accounts/) into cdktf.out/,
#               then a short blue/green upgrade in the offline sandbox
#   make test   set up .venv with the test extra, run ruff and the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo upgrade-demo test install install-test lint clean bench bench-apply provider-lane

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# stamps re-run the install whenever pyproject.toml changes
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

# bytecode for fleetform itself (the editable install has none, and PYTHONDONTWRITEBYTECODE, common
# in containers and set on our build machines, stops Python from writing it): ~0.1 s per command
install: $(VENV)/.installed
	@$(BIN)/python -m compileall -q fleetform
install-test: $(VENV)/.installed-test
	@$(BIN)/python -m compileall -q fleetform

demo: install
	$(BIN)/fleetform validate
	$(BIN)/fleetform synth
	@$(MAKE) --no-print-directory upgrade-demo

# a short blue/green upgrade of prod/main in the offline sandbox (docs/upgrade.md), after a rehearsal of a
# blocked one (stg/main: the sandbox seeds an EKS insight in ERROR there); always tears the sandbox down
SANDBOX_PORT ?= 5055
upgrade-demo: install
	$(BIN)/fleetform sandbox up --port $(SANDBOX_PORT)
	@set -e; trap '$(BIN)/fleetform sandbox down' EXIT; \
	export AWS_ENDPOINT_URL=http://127.0.0.1:$(SANDBOX_PORT); \
	set -x; \
	$(BIN)/cluster-upgrade plan main --account prod --to 1.36; \
	if $(BIN)/cluster-upgrade plan main --account stg --to 1.35; then \
		echo "stg/main: the sandbox's blocking insight did not block the plan" >&2; exit 1; fi; \
	$(BIN)/cluster-upgrade verify main --account prod; \
	$(BIN)/cluster-upgrade shift main --account prod --steps 50,100 --bake 2 --yes; \
	$(BIN)/cluster-upgrade status main --account prod

lint: install-test
	$(BIN)/ruff check .

test: install-test lint
	$(BIN)/python -m pytest -q

# the real-provider lane's apply part (tests/test_real_provider.py): 13 stacks applied into moto with the
# hashicorp/aws 5.100.0 mirror, re-planned, and the change matrix; 7-9 minutes. `make test` runs its validate
# part; .ci/run runs this after `make test` (docs/decisions/0008-provider-lane-in-ci.md).
provider-lane: install-test
	FLEETFORM_APPLY_LANE=1 $(BIN)/python -m pytest -q -m real_provider tests/test_real_provider.py

# synth next to the prebuilt bindings (1x), then `fleetform affected` next to one synth at 1x and 10x
bench: install-test
	$(BIN)/python bench/synth.py
	$(BIN)/python bench/affected.py --scale 1,10

# prod-network applied with the real provider (hashicorp/aws 5.100.0 mirror) into moto: ~2 minutes a run
# (bootstrap first); prints why and exits 0 where the mirror or Terraform is missing
bench-apply: install-test
	$(BIN)/python bench/network_apply.py

clean:
	rm -rf cdktf.out .pytest_cache .ruff_cache
