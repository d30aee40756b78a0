# Two targets a newcomer needs: `make run` (set up + the main job) and `make test` (set up + lint + tests).
# Setting up is idempotent: the virtualenv is rebuilt only when pyproject.toml changes.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= disable

.PHONY: setup run test

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# The primary study's quick preset (FlowRL's midpoint x1 against rk4 x1 on cartpole-balance, 5 seeds each, two jobs
# in parallel), then its report: multirun/ode_solvers/quick/report.md with figures and the statistics CSVs.
run: setup
	$(BIN)/python -m ideas.ode_solvers.run -m +sweep=quick hydra/launcher=local
	$(BIN)/python -m ideas.ode_solvers.report multirun/ode_solvers/quick

test: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n auto  # one pytest-xdist worker per core
