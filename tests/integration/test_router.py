"""The unified route in process, against DynamoDB Local, moto server and the provider sandbox:
templates, routing, failover only when a number was provably not sent, circuits, one quota per
handset across providers."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from local.sandbox import Fault, ProviderSandbox
from smsgw import runtime
from tests.support import (
    ROUTER_ADMIN,
    ROUTER_TENANT,
    call,
    dynamodb_client,
    event,
    free_port,
    invoke,
    secret_values,
    with_header,
)

LOGIN_CODE = {
    "params": ["code", "minutes"],
    "polyv": {"names": {"code": "code", "minutes": "min"}},
    "aliyun": {
        "sign_name": "Shop",
        "template_code": "SMS_100",
        "params": {"code": "code", "minutes": "minutes"},
        "international": {"sign_name": "Shop", "template_code": "SMS_200", "params": {"code": "c", "minutes": "m"}},
    },
    "ronglian": {"template_id": "1", "datas": ["code", "minutes"]},
    "routing": {"order": ["aliyun", "ronglian", "polyv"]},
}
PARAMS = {"code": "123456", "minutes": "5"}


def api_event(
    method: str, path: str, body: Any = None, *, key_id: str = ROUTER_TENANT, **headers: str
) -> dict[str, Any]:
    evt = event("polyv-send.json", body=body)
    evt.update(httpMethod=method, path=path, resource=path)
    if body is None:
        evt["body"] = None
    evt["requestContext"]["identity"]["apiKeyId"] = key_id
    for name, value in headers.items():
        with_header(evt, name, value)
    return evt


def routing_metrics(output: str, name: str) -> dict[str, float]:
    """The values of one routing metric in the EMF documents printed, summed per provider; each
    document's dimensions are the provider and the service alone."""
    found: dict[str, float] = {}
    for line in output.splitlines():
        document = json.loads(line) if line.startswith("{") else {}
        for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
            if name in {m["Name"] for m in directive["Metrics"]}:
                assert directive["Dimensions"] == [["provider", "service"]]
                value = document[name]
                total = sum(value) if isinstance(value, list) else value
                found[document["provider"]] = found.get(document["provider"], 0) + total
    return found


def put_template(name: str, spec: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return invoke("router", api_event("PUT", f"/v1/templates/{name}", spec, key_id=ROUTER_ADMIN))


def send(phones: list[str], **extra: Any) -> tuple[int, dict[str, Any]]:
    headers = {"Idempotency-Key": extra.pop("key")} if "key" in extra else {}
    body = {"template": "login_code", "phone_numbers": phones, "params": PARAMS, **extra}
    return invoke("router", api_event("POST", "/v1/messages", body, **headers))


class TestTemplates:
    def test_saved_versioned_read_and_deleted(self, router: ProviderSandbox) -> None:
        assert put_template("login_code", LOGIN_CODE) == (200, {"name": "login_code", "version": 1, **LOGIN_CODE})
        status, second = put_template("login_code", {**LOGIN_CODE, "routing": {"order": ["ronglian"]}})
        assert (status, second["version"]) == (200, 2)

        status, got = invoke("router", api_event("GET", "/v1/templates/login_code", key_id=ROUTER_ADMIN))
        assert (status, got["version"], got["routing"]) == (200, 2, {"order": ["ronglian"]})
        assert call("router", api_event("DELETE", "/v1/templates/login_code", key_id=ROUTER_ADMIN))["statusCode"] == 204
        assert invoke("router", api_event("GET", "/v1/templates/login_code", key_id=ROUTER_ADMIN))[0] == 404
        # A message that started with version 1 keeps it
        assert send(["13800138000"], template_version=1)[0] == 200

    @pytest.mark.parametrize(
        ("change", "why"),
        [
            ({"ronglian": {"template_id": "1", "datas": ["code"]}}, "ronglian must map every parameter"),
            ({"polyv": {"names": {"code": "code", "minutes": "m", "extra": "x"}}}, "polyv must map every parameter"),
            ({"routing": {"order": ["aliyun"], "weights": {"aliyun": 1}}}, "either order or weights"),
            ({"polyv": None, "aliyun": None, "ronglian": None}, "at least one provider"),
        ],
    )
    def test_validated_when_saved(self, router: ProviderSandbox, change: dict[str, Any], why: str) -> None:
        spec = {k: v for k, v in {**LOGIN_CODE, **change}.items() if v is not None}
        status, body = put_template("login_code", spec)
        assert (status, body["error"]["code"]) == (400, "invalid_request")
        assert why in json.dumps(body)

    def test_only_an_admin_key_manages_templates(self, router: ProviderSandbox) -> None:
        status, body = invoke("router", api_event("PUT", "/v1/templates/login_code", LOGIN_CODE, key_id=ROUTER_TENANT))
        assert (status, body["error"]["code"]) == (403, "admin_key_required")

    def test_params_must_match_the_template(self, router: ProviderSandbox) -> None:
        put_template("login_code", LOGIN_CODE)
        status, body = invoke(
            "router",
            api_event(
                "POST",
                "/v1/messages",
                {"template": "login_code", "phone_numbers": ["13800138000"], "params": {"code": "1"}},
            ),
        )
        assert (status, body["error"]["code"]) == (400, "invalid_request")
        assert router.calls == []
        assert send(["13800138000"], template="nope")[1]["error"]["code"] == "template_not_found"


class TestFailover:
    @pytest.mark.parametrize(
        "fault",
        [
            Fault(kind="code", operation="aliyun.SendBatchSms", code="Throttling.User"),  # flow control
            Fault(kind="code", operation="aliyun.SendBatchSms", code="isv.BUSINESS_LIMIT_CONTROL"),
            Fault(kind="code", operation="aliyun.SendBatchSms", code="isv.AMOUNT_NOT_ENOUGH"),  # balance
            Fault(kind="http_status", operation="aliyun.SendBatchSms", status=503),
        ],
        ids=["throttling", "flow-control", "balance", "5xx"],
    )
    def test_1000_numbers_refused_by_the_first_are_sent_once_by_the_second(
        self,
        router: ProviderSandbox,
        fault: Fault,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # twenty calls of 100 numbers on a busy machine: a late answer would be ambiguous, not a failover
        monkeypatch.setenv("PROVIDER_READ_TIMEOUT", "10")
        runtime.reset()
        put_template("login_code", LOGIN_CODE)
        router.add_fault(fault)
        phones = [f"138{i:08d}" for i in range(1000)]
        capsys.readouterr()

        status, body = send(phones)

        assert status == 200
        assert {r["provider"] for r in body["results"]} == {"ronglian"}
        assert {r["status"] for r in body["results"]} == {"accepted"}
        assert all([a["provider"] for a in r["attempts"]] == ["aliyun", "ronglian"] for r in body["results"])
        accepted = Counter(router.accepted_phones())
        assert len(accepted) == 1000
        assert set(accepted.values()) == {1}, "each exactly once"
        assert routing_metrics(capsys.readouterr().out, "failovers") == {"aliyun": 1000}

    def test_wrong_credentials_at_the_first_fail_over(
        self, router: ProviderSandbox, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        wrong = {**secret_values("aliyun", router.url), "access_key_secret": "not-the-secret"}
        arn = boto3.client("secretsmanager").create_secret(
            Name=f"a-{uuid.uuid4().hex[:8]}", SecretString=json.dumps(wrong)
        )
        monkeypatch.setenv("ALIYUN_SECRET_ID", arn["ARN"])
        runtime.reset()
        put_template("login_code", LOGIN_CODE)

        status, body = send(["13800138000"])

        [result] = body["results"]
        assert (status, result["provider"], result["status"]) == (200, "ronglian", "accepted")
        first = result["attempts"][0]
        assert (first["provider"], first["provider_code"]) == ("aliyun", "SignatureDoesNotMatch")

    def test_connection_refused_at_the_first_fails_over(
        self, router: ProviderSandbox, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        closed = {**secret_values("aliyun", f"http://127.0.0.1:{free_port()}")}
        arn = boto3.client("secretsmanager").create_secret(
            Name=f"a-{uuid.uuid4().hex[:8]}", SecretString=json.dumps(closed)
        )
        monkeypatch.setenv("ALIYUN_SECRET_ID", arn["ARN"])
        runtime.reset()
        put_template("login_code", LOGIN_CODE)

        status, body = send([f"139{i:08d}" for i in range(50)])

        assert status == 200
        assert {r["provider"] for r in body["results"]} == {"ronglian"}
        assert {r["attempts"][0]["status"] for r in body["results"]} == {"retryable"}

    def test_a_timeout_after_acceptance_never_fails_over(
        self, router: ProviderSandbox, capsys: pytest.CaptureFixture[str]
    ) -> None:
        put_template("login_code", LOGIN_CODE)
        router.add_fault(Fault(kind="slow", operation="aliyun.SendBatchSms", delay=2.0))
        capsys.readouterr()

        status, body = send([f"137{i:08d}" for i in range(20)])

        assert status == 502
        assert {r["status"] for r in body["results"]} == {"ambiguous"}
        assert all(len(r["attempts"]) == 1 for r in body["results"])
        assert router.calls_for("ronglian.TemplateSMS") == []
        assert routing_metrics(capsys.readouterr().out, "failovers") == {}

    def test_a_number_every_provider_would_refuse_is_final(self, router: ProviderSandbox) -> None:
        put_template("login_code", LOGIN_CODE)
        router.add_fault(Fault(kind="code", operation="aliyun.SendBatchSms", code="isv.MOBILE_NUMBER_ILLEGAL"))

        status, body = send(["13800138000"])

        [result] = body["results"]
        assert status == 200
        assert (result["status"], result["provider"], len(result["attempts"])) == ("rejected", "aliyun", 1)
        assert router.calls_for("ronglian.TemplateSMS") == []

    def test_an_explicit_order_and_international_numbers(self, router: ProviderSandbox) -> None:
        put_template("login_code", LOGIN_CODE)

        status, body = send(["13800138000", "+85291234567"], providers=["polyv", "aliyun"])

        assert status == 200
        assert [(r["provider"], r["attempts"][0]["operation"]) for r in body["results"]] == [
            ("polyv", "sms/send"),
            ("aliyun", "SendInterSms"),
        ]
        [inter] = router.calls_for("aliyun.SendInterSms")
        assert (inter.params["CountryCode"], inter.params["TemplateCode"]) == ("HK", "SMS_200")


class TestCircuit:
    def test_an_open_circuit_skips_the_provider_until_the_probe(
        self, router: ProviderSandbox, capsys: pytest.CaptureFixture[str]
    ) -> None:
        import time

        put_template("login_code", LOGIN_CODE)
        router.add_fault(Fault(kind="http_status", operation="aliyun.SendBatchSms", status=503, times=3))
        for i in range(3):  # the threshold: three failed calls in a row
            assert send([f"1360000000{i}"])[1]["results"][0]["provider"] == "ronglian"
        assert routing_metrics(capsys.readouterr().out, "failovers") == {"aliyun": 3}

        calls_before = len(router.calls_for("aliyun.SendBatchSms"))
        assert send(["13600000009"])[1]["results"][0]["attempts"][0]["provider"] == "ronglian"
        assert len(router.calls_for("aliyun.SendBatchSms")) == calls_before, "open: no call"
        output = capsys.readouterr().out
        assert (routing_metrics(output, "circuit_open"), routing_metrics(output, "failovers")) == ({"aliyun": 1}, {})

        time.sleep(2.2)  # the cool-down; the fault is gone, the probe succeeds and closes the circuit
        assert send(["13600000010"])[1]["results"][0]["provider"] == "aliyun"
        assert send(["13600000011"])[1]["results"][0]["provider"] == "aliyun"


class TestOneQuotaPerHandset:
    def test_one_sms_per_minute_whatever_the_providers(
        self, router: ProviderSandbox, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("QUOTA_LIMITS", "phone_per_minute=1")
        runtime.reset()
        put_template("login_code", LOGIN_CODE)

        assert send(["13800138000"], providers=["aliyun"])[0] == 200
        status, body = send(["+8613800138000"], providers=["ronglian"])

        assert (status, body["results"][0]["status"]) == (429, "quota_exceeded")
        assert len(router.accepted_phones()) == 1

    def test_a_number_that_fails_over_keeps_one_unit(
        self, router: ProviderSandbox, monkeypatch: pytest.MonkeyPatch, dynamodb_url: str, tables: Any
    ) -> None:
        monkeypatch.setenv("QUOTA_LIMITS", "phone_per_minute=1")
        runtime.reset()
        put_template("login_code", LOGIN_CODE)
        router.add_fault(Fault(kind="code", operation="aliyun.SendBatchSms", code="isv.AMOUNT_NOT_ENOUGH"))

        assert send(["13800138000"])[1]["results"][0]["provider"] == "ronglian"

        items = dynamodb_client(dynamodb_url).scan(TableName=tables.quota)["Items"]
        assert sorted((i["pk"]["S"].split("#")[1:3], i.get("d", i.get("used"))["N"]) for i in items) == [
            (["account", "any"], "1"),
            (["block", "86-1380013"], "1"),
            (["ip", "any"], "1"),
            (["phone", "any"], "1"),
        ]

    def test_concurrent_requests_and_a_key_send_nothing_twice(self, router: ProviderSandbox) -> None:
        put_template("login_code", LOGIN_CODE)
        router.add_fault(Fault(kind="code", operation="aliyun.SendBatchSms", code="isv.AMOUNT_NOT_ENOUGH"))

        with ThreadPoolExecutor(max_workers=5) as pool:
            answers = list(pool.map(lambda _: send(["13500135000"], key="once"), range(5)))

        assert {status for status, _ in answers} <= {200, 409}
        assert router.accepted_phones() == ["13500135000"]


def test_a_warm_send_reads_no_template(router: ProviderSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    put_template("login_code", LOGIN_CODE)
    send(["13800138000"])
    reads: list[str] = []

    def template_read(params: dict[str, Any], **_: Any) -> None:
        keys = json.dumps(params.get("Key") or params.get("ExpressionAttributeValues") or {})
        if "#template#" in keys:
            reads.append(keys)

    runtime.dynamodb_client().meta.events.register("before-call.dynamodb", template_read)

    send(["13900139000"])

    assert reads == []
