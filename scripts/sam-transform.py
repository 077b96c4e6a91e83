"""Offline SAM transform: template.yaml -> plain CloudFormation on stdout, as `sam deploy` would
have CloudFormation expand it, without an AWS account. cfn-lint on the result catches what
cfn-lint on the SAM template misses (the expanded functions' runtimes, architectures, timeouts,
the Function URLs and schedules). CodeUri becomes an s3:// URI, as `sam package` would make it.

Usage: AWS_DEFAULT_REGION=us-east-1 python sam-transform.py template.yaml > transformed.json
"""

import json
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    """The template names no managed policies, so nothing is ever looked up in IAM."""

    def load(self):
        return {}


def main(path):
    with open(path, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    template["Globals"]["Function"]["CodeUri"] = "s3://observability-hub-artifacts/bootstrap.zip"
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function" and "CodeUri" in resource.get(
            "Properties", {}
        ):
            resource["Properties"]["CodeUri"] = "s3://observability-hub-artifacts/bootstrap.zip"
    output = transform(template, {}, NoManagedPolicies())
    json.dump(output, sys.stdout, indent=2, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
