#!/usr/bin/env bash
# make check-deploy, SAM part: cfn-lint on template.yaml, then the offline SAM transform
# (aws-sam-translator) and cfn-lint on its output. Both tools come from PyPI into a venv cached
# under ~/.cache/hub-tools, like OpenBao's.
set -euo pipefail
cd "$(dirname "$0")/.."

CFN_LINT_VERSION=1.58.0
SAM_TRANSLATOR_VERSION=1.115.0
venv="$HOME/.cache/hub-tools/sam-tools-$CFN_LINT_VERSION-$SAM_TRANSLATOR_VERSION"
if [ ! -x "$venv/bin/cfn-lint" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "cfn-lint==$CFN_LINT_VERSION" "aws-sam-translator==$SAM_TRANSLATOR_VERSION"
fi
export AWS_DEFAULT_REGION=us-east-1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$venv/bin/cfn-lint" template.yaml
echo "cfn-lint template.yaml: clean"
"$venv/bin/python" scripts/sam-transform.py template.yaml >"$out/transformed.json"
"$venv/bin/cfn-lint" "$out/transformed.json"
functions=$("$venv/bin/python" -c 'import json,sys; r=json.load(open(sys.argv[1]))["Resources"]; print(sum(v["Type"]=="AWS::Lambda::Function" for v in r.values()))' "$out/transformed.json")
echo "SAM transform + cfn-lint: clean ($functions Lambda functions)"
