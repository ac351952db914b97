# Two commands do all the set-up: `make demo` and `make test`.
# Both create .venv on first use and install prunelab (editable) with its pinned torch.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
OUT     ?= reports/demo

.PHONY: demo test test-slow lint reproduce bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip >/dev/null 2>&1 || true
	# torch first and pinned: an unpinned torch would pull several GB of CUDA packages
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,ray,transformers]'   # extras too, so CI exercises them
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/prunelab demo --out $(OUT)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks experiments
	$(BIN)/ruff format --check src tests benchmarks experiments

test: $(STAMP) lint
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

reproduce: $(STAMP)  # each sweep resumes where it stopped
	for cfg in $$(ls experiments/*.toml | grep -v tiny.toml); do $(BIN)/prunelab sweep $$cfg --out runs/$$(basename $$cfg .toml) || exit 1; $(BIN)/prunelab report runs/$$(basename $$cfg .toml); done

# Timing only (never part of `make test`). The peers are benchmark contestants, not
# dependencies of prunelab: installed here, without their dependency pins (--no-deps).
# Full run ~45 min on a quiet 2-core CPU; tables land in reports/bench/*.md (BENCHMARKS.md).
# BENCH_ARGS=--large-slq64 adds SLQ 64 x 4 at 1.6M weights (~12 min more).
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/pip install -q --no-deps pyhessian curvlinops-for-pytorch hessian-eigenthings einops einconv opt-einsum linear-operator
	$(BIN)/python benchmarks/peers/run.py --out reports/bench $(BENCH_ARGS)
	$(BIN)/python benchmarks/curvature_hvp.py --repeats 5 --threads 1 --json reports/bench/hvp_floor.json
	$(BIN)/python benchmarks/limits_speed.py --reps 3 --threads 1 --json reports/bench/limits.json

clean:
	rm -rf $(VENV) reports runs .pytest_cache .ruff_cache
