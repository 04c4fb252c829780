"""What the functions print: structured logs and EMF metrics, never a secret and never an
unmasked phone number, on every route and every error path."""

from __future__ import annotations

import json
import logging
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from local.sandbox import DEFAULT_ACCOUNTS, Fault, ProviderSandbox
from smsgw import runtime
from smsgw.observability import logger, mask_phone
from tests.support import EVENTS, FakeContext, call, event, free_port, secret_values, sqs_event, with_header

PHONES = ["13800138000", "13900139000", "15000150000", "91234567", "92345678"]
SECRETS = [
    DEFAULT_ACCOUNTS.polyv.app_secret,
    DEFAULT_ACCOUNTS.aliyun.access_key_secret,
    DEFAULT_ACCOUNTS.ronglian.auth_token,
    "an-old-rotated-secret-value",
]


def lines(text: str) -> Iterator[dict[str, Any]]:
    for line in text.splitlines():
        if line.startswith("{"):
            yield json.loads(line)


def emf(text: str) -> list[dict[str, Any]]:
    return [document for document in lines(text) if "_aws" in document]


def polyv_event(*phones: str, **headers: str) -> dict[str, Any]:
    evt = event(
        "polyv-send.json",
        body={"phone_numbers": list(phones), "template_param_names": ["code"], "template_param_values": ["1"]},
    )
    for name, value in headers.items():
        with_header(evt, name, value)
    return evt


class _CurrentStdout:
    """Writes wherever sys.stdout points now: the Powertools logger bound its stream at import."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture(autouse=True)
def logs_to_current_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logger.registered_handler, "stream", _CurrentStdout())


def messages_event(request_id: str, tenant: str) -> dict[str, Any]:
    evt = event("polyv-send.json")
    evt.update(httpMethod="GET", resource="/v1/messages/{requestId}", path=f"/v1/messages/{request_id}", body=None)
    evt["pathParameters"] = {"requestId": request_id}
    evt["requestContext"]["identity"]["apiKeyId"] = tenant
    return evt


@pytest.fixture
def debug_logs() -> Iterator[None]:
    """The gateway's own logs at DEBUG, the level most likely to say too much."""
    level = logger.log_level
    logger.setLevel(logging.DEBUG)
    yield
    logger.setLevel(level)


@pytest.fixture
def dlq(aws: str, monkeypatch: pytest.MonkeyPatch) -> str:
    url: str = boto3.client("sqs").create_queue(QueueName=f"dlq-{free_port()}")["QueueUrl"]
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", url)
    return url


def test_no_secret_and_no_unmasked_number_on_any_path(
    debug_logs: None,
    deploy: Any,
    dlq: str,
    sandbox: ProviderSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    paths: list[tuple[str, dict[str, Any]]] = []
    for provider, event_file in [
        ("polyv", "polyv-send.json"),
        ("aliyun", "aliyun-send.json"),
        ("aliyun", "aliyun-batch-send.json"),
        ("ronglian", "ronglian-send.json"),
    ]:
        deploy(provider)
        paths.append((provider, event(event_file)))  # success
        bad = event(event_file, raw_body=json.dumps({"phone_numbers": ["1380013800x"], "x": 1}))
        paths.append((provider, bad))  # invalid input
        for path in paths[-2:]:
            call(*path)
        queue_file = (EVENTS / f"{provider}-queue.json").name
        call(provider, json.loads((EVENTS / queue_file).read_text()))

    monkeypatch.setenv("QUOTA_LIMITS", "phone_per_minute=1")
    deploy("polyv")
    call("polyv", polyv_event(*PHONES[:3]))
    call("polyv", polyv_event(*PHONES[:3]))  # quota exceeded
    call("polyv", polyv_event(PHONES[3 - 3 + 1], **{"Idempotency-Key": "k-1"}))
    call("polyv", polyv_event(PHONES[0], **{"Idempotency-Key": "k-1"}))  # key reused
    sandbox.add_fault(Fault(kind="code", operation="polyv.send", code=-2))
    call("polyv", polyv_event("13700137000"))  # rejected
    sandbox.clear_faults()
    sandbox.go_down()
    call("polyv", polyv_event("13600136000"))  # provider down
    sandbox.come_up()
    sandbox.add_fault(Fault(kind="timeout", operation="polyv.send", delay=2, times=1))
    call("polyv", polyv_event("13500135000"))  # ambiguous
    call("polyv", sqs_event(("m-poison", {"phone_numbers": PHONES, "x": 1}), ("m-json", "{" + PHONES[1])))
    sandbox.add_fault(Fault(kind="http_status", operation="polyv.send", status=503, times=1))
    call(
        "polyv",
        sqs_event(
            ("m-retry", {"phone_numbers": ["13400134000"], "template_param_names": [], "template_param_values": []})
        ),
    )
    big = polyv_event(PHONES[0])
    big["body"] = json.dumps({"phone_numbers": [PHONES[0]] * 30000})
    assert call("polyv", big)["statusCode"] == 413

    deploy("polyv", {**secret_values("polyv", sandbox.url), "app_secret": "an-old-rotated-secret-value"})
    call("polyv", polyv_event("13300133000"))  # refused credentials
    deploy("aliyun", '{"access_key_id": "x", "access_key_secret": 5}')
    call("aliyun", event("aliyun-send.json"))  # malformed secret
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    runtime.reset()
    call("aliyun", event("aliyun-send.json"))  # Secrets Manager down

    out, err = capsys.readouterr()
    # Everything: the functions' logs and metrics, and what libraries log through `logging`,
    # even at DEBUG.
    printed = out + err + caplog.text
    assert any(d.get("message") == "send finished" for d in lines(out)), "the logs were captured"
    for secret in SECRETS:
        assert secret not in printed
    for phone in [*PHONES, "13700137000", "13600136000", "13500135000", "13400134000", "13300133000"]:
        assert phone not in printed, f"{mask_phone(phone)} printed unmasked"


def test_emf_metrics_for_success_rejection_and_quota_exhaustion(
    deploy: Any, sandbox: ProviderSandbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QUOTA_LIMITS", "phone_per_minute=1,phone_per_hour=0,phone_per_day=0")
    deploy("polyv")
    sandbox.add_fault(Fault(kind="code", operation="polyv.send", phone="13900139000", code=-2))

    capsys.readouterr()
    call("polyv", polyv_event("13800138000", "13900139000"))
    first = emf(capsys.readouterr().out)
    call("polyv", polyv_event("13800138000"))
    second = emf(capsys.readouterr().out)

    def values(documents: list[dict[str, Any]]) -> dict[str, Any]:
        [document] = [d for d in documents if "numbers_accepted" in d]
        [directive] = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "SmsGateway"
        assert sorted(directive["Dimensions"][0]) == ["operation", "provider", "service"]
        assert (document["provider"], document["operation"]) == ("polyv", "sms/send")
        units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
        assert units["provider_latency"] == "Milliseconds" if "provider_latency" in units else True
        return document

    sent, refused = values(first), values(second)
    assert (sent["numbers_accepted"], sent["numbers_rejected"], sent["numbers_quota_exceeded"]) == ([1.0], [1.0], [0.0])
    assert sent["provider_latency"][0] > 0
    assert (refused["numbers_accepted"], refused["numbers_quota_exceeded"]) == ([0.0], [1.0])
    assert "provider_latency" not in refused, "no provider call, no latency"


def test_logs_are_structured_with_the_request_keys(
    deploy: Any, sandbox: ProviderSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy("ronglian")
    evt = event("ronglian-send.json")
    capsys.readouterr()
    module = __import__("ronglian.app", fromlist=["handler"])
    module.handler(evt, FakeContext())
    [finished] = [d for d in lines(capsys.readouterr().out) if d.get("message") == "send finished"]
    assert finished["correlation_id"] == evt["requestContext"]["requestId"]
    assert finished["request_id"] == evt["requestContext"]["requestId"]
    assert (finished["provider"], finished["operation"], finished["tenant"]) == (
        "ronglian",
        "TemplateSMS",
        "localkey01",
    )
    assert (finished["accepted"], finished["rejected"], finished["quota_exceeded"]) == (1, 0, 0)
    assert finished["level"] == "INFO"


def test_queue_logs_carry_each_records_message_id_as_correlation_id(
    deploy: Any, dlq: str, sandbox: ProviderSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy("polyv")
    body = {"phone_numbers": ["13800138000"], "template_param_names": ["c"], "template_param_values": ["1"]}
    capsys.readouterr()
    call("polyv", sqs_event(("msg-1", {**body, "idempotencyKey": "order-1"}), ("msg-2", "{broken")))
    documents = list(lines(capsys.readouterr().out))
    finished = [d for d in documents if d.get("message") == "send finished"]
    poison = [d for d in documents if d.get("message") == "poison message"]
    assert [(d["correlation_id"], d["request_id"]) for d in finished] == [("msg-1", "order-1")]
    assert [d["correlation_id"] for d in poison] == ["msg-2"]


def test_each_send_of_a_mixed_queue_batch_has_its_own_metrics(
    deploy: Any, dlq: str, sandbox: ProviderSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy("aliyun")
    inter = {"phone_numbers": ["91234567"], "country_code": "HK", "sign_name": "S", "template_code": "SMS_1"}
    batch = {
        "template_code": "SMS_2",
        "sign_name": "S",
        "messages": [{"phone_number": p, "template_param": {"c": "1"}} for p in ("13800138000", "13900139000")],
    }
    records = [(f"i-{n}", inter) for n in range(3)] + [(f"b-{n}", batch) for n in range(3)]
    capsys.readouterr()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Dimension 'operation' has already been added" would fail it
        call("aliyun", sqs_event(*records, queue="AliyunQueue"))

    out = capsys.readouterr().out
    sends = [d for d in emf(out) if "numbers_accepted" in d]
    # Each send counted under its own operation: 1 number per SendInterSms, 2 per SendBatchSms
    assert (
        sorted((d["operation"], d["numbers_accepted"][0]) for d in sends)
        == [("SendBatchSms", 2.0)] * 3 + [("SendInterSms", 1.0)] * 3
    )
    by_operation = Counter(d["operation"] for d in sends)
    assert by_operation == {"SendInterSms": 3, "SendBatchSms": 3}
    assert all(d["provider"] == "aliyun" for d in sends)
    # Every record's lines carry its own message id, and no line carries the REST API's
    processed = [d for d in lines(out) if d.get("message") == "message processed"]
    assert sorted(d["correlation_id"] for d in processed) == sorted(r for r, _ in records)
