"""What a real account gets from template.yaml beside its grants (test_template_policies.py): the
API's access log and stage throttling, API Gateway's own refusals in the gateway's error shape, an
output for everything a deployer looks up, and a reason beside every check the scanners skip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from local.template import load_document, references

TEMPLATE = Path(__file__).parents[2] / "template.yaml"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return load_document(TEMPLATE)


def _api(document: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = document["Resources"]["GatewayApi"]["Properties"]
    return properties


def test_the_api_logs_each_request_as_one_json_line_in_a_log_group_of_its_own(document: dict[str, Any]) -> None:
    setting = _api(document)["AccessLogSetting"]
    (group,) = references(setting["DestinationArn"])
    line = json.loads(setting["Format"])

    assert document["Resources"][group]["Type"] == "AWS::Logs::LogGroup"
    assert document["Resources"][group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert {
        "requestId": "$context.requestId",
        "apiKeyId": "$context.identity.apiKeyId",
        "status": "$context.status",
        "responseLatency": "$context.responseLatency",
    }.items() <= line.items()
    # No function logs there: the group is the API's alone.
    roles = [r for r in document["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert not any(group in references(role) for role in roles)


def test_the_stage_throttles_every_tenant_together(document: dict[str, Any]) -> None:
    (setting,) = _api(document)["MethodSettings"]

    assert setting == {
        "ResourcePath": "/*",
        "HttpMethod": "*",
        "ThrottlingRateLimit": {"Ref": "ApiStageThrottleRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ApiStageThrottleBurstLimit"},
    }
    parameters = document["Parameters"]
    assert parameters["ApiStageThrottleRateLimit"]["Default"] >= parameters["ApiThrottleRateLimit"]["Default"]
    assert parameters["ApiStageThrottleBurstLimit"]["Default"] >= parameters["ApiThrottleBurstLimit"]["Default"]


def test_api_gateways_own_refusals_belong_to_the_api_and_so_to_its_deployment(document: dict[str, Any]) -> None:
    responses = _api(document)["GatewayResponses"]

    assert set(responses) == {"INVALID_API_KEY", "MISSING_AUTHENTICATION_TOKEN", "THROTTLED", "QUOTA_EXCEEDED"}
    assert not [r for r in document["Resources"].values() if r["Type"] == "AWS::ApiGateway::GatewayResponse"]


@pytest.mark.parametrize(
    "kind",
    ["AWS::SQS::Queue", "AWS::SecretsManager::Secret", "AWS::DynamoDB::Table", "AWS::CloudWatch::Dashboard"],
)
def test_everything_a_deployer_looks_up_is_an_output(document: dict[str, Any], kind: str) -> None:
    wanted = {name for name, r in document["Resources"].items() if r["Type"] == kind}
    output = {name for o in document["Outputs"].values() for name in references(o["Value"])}

    assert wanted
    assert wanted <= output, f"no output names {sorted(wanted - output)}"


def test_every_check_a_scanner_skips_says_why(document: dict[str, Any]) -> None:
    skipped = 0
    for name, resource in document["Resources"].items():
        for skip in ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip") or []:
            assert skip["id"].startswith("CKV"), name
            assert len(skip.get("comment", "")) > 40, f"{name}: {skip['id']} is skipped without a reason"
            skipped += 1

    assert skipped > 0
