"""template.yaml as CloudFormation deploys it: the loops expanded (local.language_extensions), then
the SAM transform, run by the SAM CLI's own translator (in .venv-tools, which `make validate`
installs). Every route, queue and permission reaches a function through the alias AutoPublishAlias
publishes, never its unpublished $LATEST; a new layer publishes a new version of every function;
SnapStart follows its parameter."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from local.template import load_document

ROOT = Path(__file__).parents[2]
TOOLS_PYTHON = ROOT / ".venv-tools" / "bin" / "python"
ALIAS = "live"
# Run by the tools' interpreter: the template read on stdin transformed once per layer archive.
TRANSFORM = """
import json, sys
from samtranslator.translator.transform import transform

class NoManagedPolicies:
    def load(self):
        return {}

expanded = json.load(sys.stdin)
out = {}
for layer in ("s3://artifacts/layer-1.zip", "s3://artifacts/layer-2.zip"):
    document = json.loads(json.dumps(expanded))
    document["Transform"] = "AWS::Serverless-2016-10-31"
    for resource in document["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://artifacts/function.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = layer
    out[layer] = transform(document, {}, NoManagedPolicies())["Resources"]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def transformed() -> list[dict[str, Any]]:
    """The resources, transformed with two different layer archives."""
    assert TOOLS_PYTHON.is_file(), f"{TOOLS_PYTHON} is missing: `make validate` installs it"
    child = subprocess.run(  # noqa: S603 - the tools' interpreter, a fixed script
        [str(TOOLS_PYTHON), "-c", TRANSFORM],
        input=json.dumps(load_document(ROOT / "template.yaml")),
        env={**os.environ, "AWS_DEFAULT_REGION": "ap-southeast-1"},
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(child.stdout.splitlines()[-1]).values())


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in resources.items() if r["Type"] == kind}


def test_every_function_has_its_alias_on_a_version_deleted_when_the_alias_moves_on(
    transformed: list[dict[str, Any]],
) -> None:
    resources = transformed[0]
    functions = _of_type(resources, "AWS::Lambda::Function")
    aliases = _of_type(resources, "AWS::Lambda::Alias")
    versions = _of_type(resources, "AWS::Lambda::Version")

    assert functions
    assert {f"{name}Alias{ALIAS}" for name in functions} == set(aliases)
    for alias in aliases.values():
        (version,) = [v for v in versions if alias["Properties"]["FunctionVersion"] == {"Fn::GetAtt": [v, "Version"]}]
        assert versions[version]["DeletionPolicy"] == "Delete"


def test_api_routes_and_queue_mappings_invoke_the_alias_never_latest(transformed: list[dict[str, Any]]) -> None:
    resources = transformed[0]
    aliases = set(_of_type(resources, "AWS::Lambda::Alias"))
    permissions = _of_type(resources, "AWS::Lambda::Permission")
    mappings = _of_type(resources, "AWS::Lambda::EventSourceMapping")
    body = json.dumps(resources["GatewayApi"]["Properties"]["Body"])

    assert permissions
    assert mappings
    assert {p["Properties"]["FunctionName"]["Ref"] for p in permissions.values()} <= aliases
    assert {m["Properties"]["FunctionName"]["Ref"] for m in mappings.values()} <= aliases
    # Each integration's uri: arn:...:lambda:path/2015-03-31/functions/${<target>}/invocations
    invoked = {part.split("}")[0] for part in body.split("functions/${")[1:]}
    assert invoked
    assert invoked <= aliases


def test_a_new_layer_publishes_a_new_version_of_every_function(transformed: list[dict[str, Any]]) -> None:
    first, second = (set(_of_type(resources, "AWS::Lambda::Version")) for resources in transformed)

    assert first
    assert not first & second


def test_snapstart_applies_to_published_versions_when_the_parameter_says_so(
    transformed: list[dict[str, Any]],
) -> None:
    for function in _of_type(transformed[0], "AWS::Lambda::Function").values():
        assert function["Properties"]["SnapStart"] == {
            "Fn::If": ["SnapStartEnabled", {"ApplyOn": "PublishedVersions"}, {"Ref": "AWS::NoValue"}]
        }
