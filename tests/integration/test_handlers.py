"""Each provider function in process, fed the `events/` files, against moto server (Secrets
Manager) and the provider sandbox over loopback HTTP."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from local.sandbox import Fault, ProviderSandbox
from smsgw import runtime
from tests.support import event, free_port, invoke, secret_values

ROUTES = [
    ("polyv", "polyv-send.json", "polyv.send"),
    ("aliyun", "aliyun-send.json", "aliyun.SendInterSms"),
    ("aliyun", "aliyun-batch-send.json", "aliyun.SendBatchSms"),
    ("ronglian", "ronglian-send.json", "ronglian.TemplateSMS"),
]


@pytest.mark.parametrize(("provider", "event_file", "operation"), ROUTES)
def test_event_file_sends(
    deploy: Any, sandbox: ProviderSandbox, provider: str, event_file: str, operation: str
) -> None:
    deploy(provider)
    evt = event(event_file)

    status, body = invoke(provider, evt)

    assert status == 200, body
    assert body["request_id"] == evt["requestContext"]["requestId"]
    assert body["provider"] == provider
    assert {r["status"] for r in body["results"]} == {"accepted"}
    sent = json.loads(evt["body"])
    expected = sent.get("phone_numbers") or [m["phone_number"] for m in sent["messages"]]
    # Answered in E.164 (the events give mainland numbers as 11 digits, Hong Kong's as 8)
    assert [r["phone_number"] for r in body["results"]] == [f"+852{p}" if len(p) == 8 else f"+86{p}" for p in expected]
    assert sorted(sandbox.accepted_phones()) == sorted(expected)
    assert sandbox.calls_for(operation)


@pytest.mark.parametrize(("provider", "event_file", "operation"), ROUTES)
def test_invalid_input_is_400_and_nothing_is_sent(
    deploy: Any, sandbox: ProviderSandbox, provider: str, event_file: str, operation: str
) -> None:
    deploy(provider)
    body = json.loads(event(event_file)["body"])
    if "phone_numbers" in body:
        body["phone_numbers"] = ["not-a-number"]
    else:
        body["messages"][0]["phone_number"] = "not-a-number"

    status, answer = invoke(provider, event(event_file, body=body))

    assert status == 400
    assert answer["error"]["code"] == "invalid_request"
    assert any("phone_number" in d["field"] for d in answer["error"]["details"])
    assert "not-a-number" not in json.dumps(answer)
    assert sandbox.calls == []


def test_malformed_json_is_400(deploy: Any, sandbox: ProviderSandbox) -> None:
    deploy("polyv")
    status, answer = invoke("polyv", event("polyv-send.json", raw_body="{not json"))
    assert (status, answer["error"]["code"]) == (400, "invalid_request")
    assert sandbox.calls == []


def test_some_numbers_rejected_is_still_200(deploy: Any, sandbox: ProviderSandbox) -> None:
    deploy("polyv")
    sandbox.add_fault(Fault(kind="code", operation="polyv.send", phone="13900139000", code=-2))
    body = {
        "phone_numbers": ["13800138000", "13900139000"],
        "template_param_names": ["code"],
        "template_param_values": ["1"],
    }

    status, answer = invoke("polyv", event("polyv-send.json", body=body))

    assert status == 200
    assert [r["status"] for r in answer["results"]] == ["accepted", "rejected"]
    assert answer["summary"]["accepted"] == 1
    assert answer["summary"]["rejected"] == 1


def test_provider_down_is_502_with_every_number(deploy: Any, sandbox: ProviderSandbox) -> None:
    deploy("ronglian")
    sandbox.go_down()

    status, answer = invoke("ronglian", event("ronglian-send.json"))

    assert status == 502
    assert answer["error"]["code"] == "provider_failed"
    assert {r["status"] for r in answer["results"]} == {"retryable"}


def test_secrets_manager_down_is_503(deploy: Any, sandbox: ProviderSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    deploy("polyv")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")

    status, answer = invoke("polyv", event("polyv-send.json"))

    assert (status, answer["error"]["code"]) == (503, "dependency_unavailable")
    assert sandbox.calls == []


def test_missing_secret_is_a_500_naming_it(
    deploy: Any, sandbox: ProviderSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy("aliyun")
    monkeypatch.setenv("PROVIDER_SECRET_ID", "no-such-secret")
    runtime.reset()

    status, answer = invoke("aliyun", event("aliyun-send.json"))

    assert (status, answer["error"]["code"]) == (500, "credentials_invalid")
    assert "no-such-secret" in answer["error"]["message"]
    assert sandbox.calls == []


@pytest.mark.parametrize(
    "payload",
    ['{"access_key_id": "AKID-visible", "access_key_secret": 987654321987}', "not json at all: s3cr3t-value"],
    ids=["wrong-field-type", "not-json"],
)
def test_malformed_secret_is_a_500_that_never_shows_its_contents(
    deploy: Any, sandbox: ProviderSandbox, payload: str
) -> None:
    arn = deploy("aliyun", payload)

    status, answer = invoke("aliyun", event("aliyun-send.json"))

    assert (status, answer["error"]["code"]) == (500, "credentials_invalid")
    assert arn in answer["error"]["message"]
    for fragment in ("AKID-visible", "987654321987", "s3cr3t-value"):
        assert fragment not in json.dumps(answer)
    assert sandbox.calls == []


def test_rotated_credentials_are_fetched_again_and_the_send_retried_once(deploy: Any, sandbox: ProviderSandbox) -> None:
    right = secret_values("polyv", sandbox.url)
    arn = deploy("polyv", {**right, "app_secret": "the-old-secret"})
    # The function reads and caches the old secret, then the operator rotates it.
    status, _ = invoke("polyv", event("polyv-send.json"))
    assert status == 502
    boto3.client("secretsmanager").put_secret_value(SecretId=arn, SecretString=json.dumps(right))
    sandbox.reset()

    status, answer = invoke("polyv", event("polyv-send.json"))

    assert status == 200
    assert {r["status"] for r in answer["results"]} == {"accepted"}
    assert len(sandbox.calls_for("polyv.send")) == 2, "one refused call, one retry"
    assert len(sandbox.accepted_phones()) == len(answer["results"])


def test_unchanged_credentials_are_not_retried(deploy: Any, sandbox: ProviderSandbox) -> None:
    deploy("polyv", {**secret_values("polyv", sandbox.url), "app_secret": "wrong"})

    status, answer = invoke("polyv", event("polyv-send.json"))

    assert status == 502
    assert len(sandbox.calls_for("polyv.send")) == 1
    assert "wrong" not in json.dumps(answer)


def test_openapi_document_is_served(deploy: Any) -> None:
    deploy("aliyun")
    evt = event("aliyun-send.json")
    evt.update(httpMethod="GET", path="/v1/aliyun/docs", resource="/v1/aliyun/docs", body=None)
    evt["queryStringParameters"] = {"format": "json"}
    evt["multiValueQueryStringParameters"] = {"format": ["json"]}

    status, document = invoke("aliyun", evt)

    assert status == 200
    assert set(document["paths"]) >= {"/v1/aliyun/messages", "/v1/aliyun/batch-messages"}
    assert "400" in document["paths"]["/v1/aliyun/messages"]["post"]["responses"]
