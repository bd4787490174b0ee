# Two entry points for a fresh machine with Python 3.11, make and git:
#   make demo   set up .venv, then prepare the synthetic set, train, evaluate, report
#   make test   set up .venv with the test extras, then run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= runs/demo
DEMO_DATA ?= datasets/synthetic

.PHONY: venv test demo claims claims-extra claims-depth bench reproduce clean

# An existing .venv is never re-created or re-pointed (order-only: its age does not matter);
# a setup.py newer than the last install re-installs into it.
$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: setup.py | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[cpu,test]"
	touch $@

venv: $(VENV)/.installed

# pytest exits 5 when it collected nothing; that must fail, and it does (non-zero).
test: venv
	$(PY) -m pytest -q tests

demo: venv
	bash scripts/demo.sh $(PY) $(DEMO_DATA) $(DEMO_DIR)

# the paper's claims with the depth-free stand-in: lambda 0 and 0.1 on 6 seeds (experiments/claims/run.sh)
CLAIMS_REGIMES ?= depth=docs/claims/depth_pretrained/claims.json
claims: venv
	CLAIMS_REGIMES="$(CLAIMS_REGIMES)" bash experiments/claims/run.sh $(PY)

# the same plus the reference arms on 3 seeds: lambda 0 at 1/2 labeled (headroom), oracle pseudo-labels, and
# the share arms (--keep-share 0.25 = experiments/claims/stats.py RULE_SHARE, not the paper's) with their oracle
claims-extra: venv
	CLAIMS_REGIMES="$(CLAIMS_REGIMES)" \
	CLAIMS_EXTRA_ARMS="headroom:--lambda-semi+0+--labeled-frac+0.5;oracle:--pseudo-labels+oracle;share:--keep-share+0.25;share_oracle:--keep-share+0.25+--pseudo-labels+oracle" \
	bash experiments/claims/run.sh $(PY)

# the second regime again: a backbone pretrained on depth (3 seeds), report in runs/claims_depth
claims-depth: venv
	CLAIMS_PRETRAIN_TASK=depth CLAIMS_OUT=runs/claims_depth CLAIMS_DOCS= CLAIMS_SEEDS=3 CLAIMS_REGIMES= \
	bash experiments/claims/run.sh $(PY)

# every benchmark, one after the other, on an idle machine (~15-20 min on 2 idle cores, estimated): runs/bench/summary.json
bench: venv
	$(PY) bench/all.py --out runs/bench

reproduce: venv
	bash scripts/reproduce_paper.sh

clean:
	rm -rf $(VENV) build *.egg-info
