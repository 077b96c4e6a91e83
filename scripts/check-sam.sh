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

# Every function folder is in the template, but those that cannot run on Lambda (the reason is
# in template.yaml's Description).
NOT_ON_LAMBDA="gate-check"
for f in $(make -s lambda-functions); do
  case " $NOT_ON_LAMBDA " in *" $f "*) continue ;; esac
  grep -qx "        Binary: $f" template.yaml || { echo "template.yaml has no function for functions/$f"; exit 1; }
done

"$venv/bin/cfn-lint" template.yaml
echo "cfn-lint template.yaml: clean"
"$venv/bin/python" scripts/sam-transform.py template.yaml >"$out/transformed.json"
"$venv/bin/cfn-lint" "$out/transformed.json"
"$venv/bin/python" - "$out/transformed.json" <<'PY'
import json, sys
template = json.load(open(sys.argv[1]))
resources = template["Resources"]
arch = template["Parameters"]["Architecture"]
assert arch["Default"] == "arm64" and sorted(arch["AllowedValues"]) == ["arm64", "x86_64"], arch
functions = {k: v["Properties"] for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"}
for name, p in functions.items():
    assert p["Runtime"] == "provided.al2023" and p["Handler"] == "bootstrap", name
    assert p["Architectures"] == [{"Ref": "Architecture"}], (name, p["Architectures"])
urls = [v["Properties"]["TargetFunctionArn"]["Ref"] for v in resources.values() if v["Type"] == "AWS::Lambda::Url"]
schedules = [v for v in resources.values() if v["Type"] == "AWS::Scheduler::Schedule"]
print(f"SAM transform + cfn-lint: clean ({len(functions)} functions, arm64, provided.al2023; "
      f"Function URLs: {', '.join(sorted(urls))}; {len(schedules)} schedules)")
PY
