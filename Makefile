# NodeLab. `make demo` and `make test` work on a fresh machine with Python 3.11 and make:
# each creates .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv demo test lint unit integration cluster-bin cluster manifests-check bench e2e kind-up phase kind-down clean

help:
	@echo "make demo        run the scaling tour on this machine (quick mode; FULL=1 for the workshop's figures)"
	@echo "                 more tours: $(BIN)/nodelab tour --storm --quick (phase 5: one fault, three retry policies)"
	@echo "                 and $(BIN)/nodelab tour --balancing --quick (phase 6: one slow node, every balancing strategy)"
	@echo "make test        lint + unit + integration + cluster tests (kind e2e tests skip without docker/kind)"
	@echo "make cluster-bin build etcd + kube-apiserver/controller-manager/scheduler + kubectl (cached)"
	@echo "make bench       benchmarks: ratios against wrk, bare frameworks and the model (QUICK=1: < 3 min)"
	@echo "make kind-up     create a kind cluster, build and load the image, install CRD + operator"
	@echo "make phase N=2   apply manifests/phases/phase-N-*.yaml to the cluster (N: $(PHASE_IDS))"
	@echo "make e2e         run tests/e2e against the kind cluster"
	@echo "make kind-down   delete the kind cluster"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/nodelab tour $(if $(FULL),,--quick)
	@echo "more tours: nodelab tour --storm --quick (phase 5: one fault, three retry policies) and nodelab tour --balancing --quick (phase 6: one slow node, every balancing strategy)"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

# The real-API tier's control plane, built from the upstream Go modules into a cache outside the
# repository (~/.cache/nodelab/kube-<version>/bin, or $$NODELAB_CACHE); a no-op when it is there.
cluster-bin: $(STAMP)
	$(BIN)/python -m tests.support.cluster.binaries

cluster: cluster-bin
	$(BIN)/pytest -q -ra tests/cluster

# The tiers in one run: first the tests that use machine-wide state (marker `serial`), then
# the cluster tier (its control plane mostly waits on rollouts) beside the unit, integration and
# e2e tests on two xdist workers; the cluster tier's output follows theirs. Fails if any fails.
CLUSTER_LOG ?= $(VENV)/cluster-tier.log
test: lint cluster-bin
	$(BIN)/pytest -q -ra -m serial tests/integration
	@$(BIN)/pytest -q -ra tests/cluster > $(CLUSTER_LOG) 2>&1 & cluster=$$!; \
	trap 'kill -INT $$cluster 2>/dev/null; wait $$cluster' INT TERM; \
	$(BIN)/pytest -q -ra -n 2 -m "not serial" tests/unit tests/integration tests/e2e; rest=$$?; \
	wait $$cluster; tier=$$?; \
	echo "--- tests/cluster ($(CLUSTER_LOG))"; cat $(CLUSTER_LOG); \
	exit $$(( rest != 0 || tier != 0 ))

bench: $(STAMP)
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

# --- kind path (needs docker and kind; see docs/kind.md) ------------------------------------------
KIND_CLUSTER ?= nodelab
IMAGE        ?= nodelab:dev
N            ?= 1
NAMESPACE    ?= default
# Always the kind cluster's context: never apply the lab to whatever cluster is current.
KUBECTL      := kubectl --context kind-$(KIND_CLUSTER)
PHASE_FILE    = $(firstword $(wildcard manifests/phases/phase-$(N)-*.yaml))
# The valid N, from the files present: phase-5a-storm.yaml -> 5a.
PHASE_IDS     = $(sort $(foreach f,$(notdir $(wildcard manifests/phases/phase-*-*.yaml)),$(word 2,$(subst -, ,$(f)))))
# Phases 5 and 6 fill the priority-1 columns (Amplification, Recovery, Balancing): -o wide.
PHASE_WATCH   = kubectl -n $(NAMESPACE) get nodelabs$(if $(filter 5% 6%,$(N)), -o wide) -w

kind-up:
	docker build -t $(IMAGE) .
	kind get clusters | grep -qx '$(KIND_CLUSTER)' || \
		kind create cluster --name $(KIND_CLUSTER) --config manifests/kind-cluster.yaml
	kind load docker-image $(IMAGE) --name $(KIND_CLUSTER)
	$(KUBECTL) apply -k manifests/
	$(KUBECTL) wait --for condition=established --timeout=60s crd/nodelabs.lab.nodelab.dev
	@# Same tag after a rebuild: restart so the operator runs the image just loaded.
	$(KUBECTL) -n nodelab-system rollout restart deployment/nodelab-operator
	$(KUBECTL) -n nodelab-system rollout status deployment/nodelab-operator --timeout=180s

phase:
	@test -n "$(PHASE_FILE)" || { echo "no manifests/phases/phase-$(N)-*.yaml (N is one of: $(PHASE_IDS))"; exit 2; }
	$(KUBECTL) -n $(NAMESPACE) apply -f $(PHASE_FILE)
	@echo "watch it: $(PHASE_WATCH)"

e2e: $(STAMP)
	KIND_CLUSTER=$(KIND_CLUSTER) $(BIN)/pytest -q -ra -s -m e2e tests/e2e

kind-down:
	kind delete cluster --name $(KIND_CLUSTER)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info nodelab-out
