"""Quotas, refunds, idempotency and the message log through the handlers, in process, against
DynamoDB Local, moto server and the provider sandbox."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import boto3
import pytest

from local.sandbox import Fault, ProviderSandbox
from smsgw import runtime
from tests.support import call, event, free_port, header, invoke, with_header

A, B, C = "13800138000", "13900139000", "15000150000"


def polyv_body(*phones: str, code: str = "1234") -> dict[str, Any]:
    return {"phone_numbers": list(phones), "template_param_names": ["code"], "template_param_values": [code]}


def polyv_event(*phones: str, key: str | None = None, tenant: str | None = None, code: str = "1234") -> dict[str, Any]:
    evt = event("polyv-send.json", body=polyv_body(*phones, code=code))
    if key is not None:
        with_header(evt, "Idempotency-Key", key)
    if tenant is not None:
        evt["requestContext"]["identity"]["apiKeyId"] = tenant
    return evt


def messages_event(request_id: str, tenant: str) -> dict[str, Any]:
    evt = event("polyv-send.json")
    evt.update(
        httpMethod="GET",
        resource="/v1/messages/{requestId}",
        path=f"/v1/messages/{request_id}",
        pathParameters={"requestId": request_id},
        body=None,
    )
    evt["requestContext"]["identity"]["apiKeyId"] = tenant
    return evt


@pytest.fixture
def polyv(deploy: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The Polyv function with these quota limits (a limit not named keeps its default)."""

    def _with(limits: str) -> None:
        monkeypatch.setenv("QUOTA_LIMITS", limits)
        deploy("polyv")

    return _with


class TestQuotas:
    def test_a_number_over_its_limit_is_skipped_while_the_others_go_out(
        self, polyv: Any, sandbox: ProviderSandbox
    ) -> None:
        polyv("phone_per_minute=1")
        assert invoke("polyv", polyv_event(A))[0] == 200

        status, body = invoke("polyv", polyv_event(A, B))

        assert status == 200
        assert [r["status"] for r in body["results"]] == ["quota_exceeded", "accepted"]
        assert body["results"][0]["quota"] == {
            "scope": "phone",
            "period": "minute",
            "retry_after": pytest.approx(30, abs=31),
        }
        assert body["results"][0]["retry_safe"] is True
        assert body["summary"]["quota_exceeded"] == 1
        assert sandbox.accepted_phones() == [A, B]

    def test_no_number_sendable_is_429_with_retry_after_and_no_provider_call(
        self, polyv: Any, sandbox: ProviderSandbox
    ) -> None:
        polyv("phone_per_day=1")
        invoke("polyv", polyv_event(A))
        calls = len(sandbox.calls)

        answer = call("polyv", polyv_event(A))

        assert answer["statusCode"] == 429
        assert int(header(answer, "Retry-After") or 0) >= 1
        body = json.loads(answer["body"])
        assert body["error"]["code"] == "quota_exceeded"
        assert body["results"][0]["status"] == "quota_exceeded"
        assert len(sandbox.calls) == calls

    def test_the_response_tells_the_remaining_allowance(self, polyv: Any) -> None:
        polyv("phone_per_minute=0,phone_per_hour=0,phone_per_day=10,account_per_day=100,ip_per_day=50")
        _, body = invoke("polyv", polyv_event(A, B))
        assert [r["quota"]["remaining"] for r in body["results"]] == [9, 9]
        assert body["quota_remaining"] == {"account": 98, "ip": 48}

    def test_rejected_numbers_get_their_units_back(self, polyv: Any, sandbox: ProviderSandbox) -> None:
        polyv("phone_per_day=1,account_per_day=1")
        sandbox.add_fault(Fault(kind="code", operation="polyv.send", phone=A, code=-2, times=1))

        first = invoke("polyv", polyv_event(A))[1]
        second = invoke("polyv", polyv_event(A))[1]

        assert first["results"][0]["status"] == "rejected"
        assert first["results"][0]["quota"]["remaining"] == 1, "the unit is back"
        assert second["results"][0]["status"] == "accepted"

    def test_ambiguous_numbers_keep_their_units(self, polyv: Any, sandbox: ProviderSandbox) -> None:
        polyv("phone_per_day=1")
        sandbox.add_fault(Fault(kind="timeout", operation="polyv.send", delay=2, times=1))

        first_status, first = invoke("polyv", polyv_event(A))
        second_status, _ = invoke("polyv", polyv_event(A))

        assert (first_status, first["results"][0]["status"]) == (502, "ambiguous")
        assert second_status == 429, "it may have been sent: the unit stays used"
        assert len(sandbox.calls) == 1

    def test_dynamodb_down_is_503_and_nothing_is_sent(
        self, polyv: Any, sandbox: ProviderSandbox, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        polyv("phone_per_day=10")
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{free_port()}")

        status, body = invoke("polyv", polyv_event(A))

        assert (status, body["error"]["code"]) == (503, "dependency_unavailable")
        assert sandbox.calls == []


class TestIdempotency:
    def test_a_replay_returns_the_first_answer_without_calling_the_provider(
        self, polyv: Any, sandbox: ProviderSandbox
    ) -> None:
        polyv("phone_per_minute=0,phone_per_hour=0,phone_per_day=10")
        first = call("polyv", polyv_event(A, B, key="order-1"))
        replay = call("polyv", polyv_event(A, B, key="order-1"))

        assert replay["statusCode"] == first["statusCode"] == 200
        assert json.loads(replay["body"]) == json.loads(first["body"])
        assert header(replay, "Idempotent-Replayed") == "true"
        assert header(first, "Idempotent-Replayed") is None
        assert len(sandbox.calls) == 1
        assert json.loads(replay["body"])["results"][0]["quota"]["remaining"] == 9, "no quota used by the replay"

    def test_the_same_key_with_another_body_is_refused(self, polyv: Any, sandbox: ProviderSandbox) -> None:
        polyv("")
        invoke("polyv", polyv_event(A, key="order-2", code="1111"))

        status, body = invoke("polyv", polyv_event(A, key="order-2", code="2222"))

        assert (status, body["error"]["code"]) == (422, "idempotency_key_reused")
        assert len(sandbox.calls) == 1

    def test_keys_are_scoped_by_tenant(self, polyv: Any, sandbox: ProviderSandbox) -> None:
        polyv("")
        invoke("polyv", polyv_event(A, key="k", tenant="tenant-a"))
        status, _ = invoke("polyv", polyv_event(A, key="k", tenant="tenant-b"))
        assert status == 200
        assert len(sandbox.calls) == 2

    def test_a_send_that_provably_failed_is_not_stored(self, polyv: Any, sandbox: ProviderSandbox) -> None:
        polyv("")
        sandbox.go_down()
        assert invoke("polyv", polyv_event(A, key="order-3"))[0] == 502
        sandbox.come_up()

        status, body = invoke("polyv", polyv_event(A, key="order-3"))

        assert (status, body["results"][0]["status"]) == (200, "accepted")

    def test_an_ambiguous_send_is_stored_and_never_repeated(self, polyv: Any, sandbox: ProviderSandbox) -> None:
        polyv("")
        sandbox.add_fault(Fault(kind="timeout", operation="polyv.send", delay=2, times=1))
        assert invoke("polyv", polyv_event(A, key="order-4"))[0] == 502

        answer = call("polyv", polyv_event(A, key="order-4"))

        assert answer["statusCode"] == 502
        assert header(answer, "Idempotent-Replayed") == "true"
        assert len(sandbox.calls) == 1

    def test_a_malformed_key_is_400(self, polyv: Any, sandbox: ProviderSandbox) -> None:
        polyv("")
        status, body = invoke("polyv", polyv_event(A, key="with space"))
        assert (status, body["error"]["code"]) == (400, "invalid_request")
        assert sandbox.calls == []


def test_the_gateway_id_is_passed_as_ronglian_req_id_and_aliyun_out_id(deploy: Any, sandbox: ProviderSandbox) -> None:
    deploy("ronglian")
    evt = event("ronglian-send.json")
    invoke("ronglian", evt)
    [ronglian_call] = sandbox.calls_for("ronglian.TemplateSMS")
    assert ronglian_call.body["reqId"] == evt["requestContext"]["requestId"].replace("-", "")

    deploy("aliyun")
    evt = event("aliyun-send.json")
    invoke("aliyun", evt)
    [aliyun_call] = sandbox.calls_for("aliyun.SendInterSms")
    assert aliyun_call.params["OutId"] == evt["requestContext"]["requestId"]


class TestMessageLog:
    def test_a_tenant_reads_its_own_record_and_no_one_elses(self, polyv: Any, sandbox: ProviderSandbox) -> None:
        polyv("")
        sandbox.add_fault(Fault(kind="code", operation="polyv.send", phone=B, code=-2))
        evt = polyv_event(A, B, tenant="tenant-a")
        request_id = evt["requestContext"]["requestId"]
        _, sent = invoke("polyv", evt)

        own_status, record = invoke("messages", messages_event(request_id, "tenant-a"))
        other_status, other = invoke("messages", messages_event(request_id, "tenant-b"))
        none_status, _ = invoke("messages", messages_event("no-such-request", "tenant-a"))

        assert own_status == 200
        # The answer, and each accepted number's delivery: Polyv reports none, and says so
        assert [{k: v for k, v in r.items() if k != "delivery"} for r in record["results"]] == sent["results"]
        assert [r.get("delivery") for r in record["results"]] == [
            {"status": "accepted", "receipt": "unavailable"},
            None,
        ]
        assert [r["status"] for r in record["results"]] == ["accepted", "rejected"]
        assert record["results"][0]["message_id"]
        assert record["received_at"] <= record["finished_at"]
        assert (other_status, other["error"]["code"]) == (404, "message_not_found")
        assert none_status == 404

    def test_a_refused_request_is_recorded_too(self, polyv: Any) -> None:
        polyv("phone_per_day=1")
        invoke("polyv", polyv_event(A))
        evt = polyv_event(A)
        assert invoke("polyv", evt)[0] == 429

        status, record = invoke("messages", messages_event(evt["requestContext"]["requestId"], "localkey01"))

        assert (status, record["results"][0]["status"]) == (200, "quota_exceeded")

    def test_records_carry_their_retention_as_ttl(self, polyv: Any, dynamodb_url: str, tables: Any) -> None:
        from tests.support import dynamodb_client

        polyv("")
        invoke("polyv", polyv_event(A))
        [item] = dynamodb_client(dynamodb_url).scan(TableName=tables.messages)["Items"]
        days = (int(item["expires_at"]["N"]) - __import__("time").time()) / 86400
        assert 29.9 < days <= 30


@pytest.mark.parametrize("count", [1, 10, 100, 250])
@pytest.mark.parametrize("key", [None, "calls"], ids=["no-key", "idempotency-key"])
def test_dynamodb_calls_per_request(
    polyv: Any, sandbox: ProviderSandbox, monkeypatch: pytest.MonkeyPatch, count: int, key: str | None
) -> None:
    """The figures docs/quotas.md states: with default limits, one update for a single number's item
    (its minute, hour and day) or one transaction per 100 numbers and one read-back of what is
    left, plus the account and IP counters and the pumping guard's counter of each number block (one
    update, or transactions of 100 blocks), one message log record; with an Idempotency-Key, the
    key's record claimed before and completed after, in one transaction with the message log's."""
    polyv("")
    calls: Counter[str] = Counter()
    session = boto3.session.Session()
    session.events.register("before-call.dynamodb", lambda model, **_: calls.update([model.name]))
    agents: set[str] = set()
    session.events.register(
        "before-send.dynamodb", lambda request, **_: agents.add(request.headers["User-Agent"].decode())
    )
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    phones = [f"13{i:05d}0000" for i in range(count)]  # each in a number block of its own

    status, body = invoke("polyv", polyv_event(*phones, key=key))

    assert (status, body["summary"]["accepted"]) == (200, count)
    blocks = -(-count // 100)  # the guard's transactions, or its one update for a single block
    if key is None and count == 1:
        expected = Counter({"UpdateItem": 4, "PutItem": 1})
    elif key is None:
        expected = Counter({"UpdateItem": 2, "TransactWriteItems": 2 * blocks, "BatchGetItem": blocks, "PutItem": 1})
    else:
        # The key's claim rides in the first numbers' transaction (one number fewer fits in it); the
        # log record's put joins the key's completion in one more transaction
        later = [min(100, count - i) for i in range(99, count, 100)]  # the numbers after the first 99
        many = sum(1 for size in later if size > 1)  # a number alone is one update
        guard = Counter({"UpdateItem": 1}) if count == 1 else Counter({"TransactWriteItems": blocks})
        expected = guard + Counter(
            {"UpdateItem": 2 + len(later) - many, "TransactWriteItems": 2 + many, "BatchGetItem": 1 + many}
        )
    # And every number's result says what is left of its tightest window (the minute: 1 of 1 used)
    assert {r["quota"]["remaining"] for r in body["results"]} == {0}
    assert calls == expected
    # The ledger's updates go through a client that never sends them twice by itself
    assert runtime.runtime().service.ledger.client.meta.config.retries == {"total_max_attempts": 1, "mode": "standard"}
    # Every call carries the gateway's fixed User-Agent, not one botocore rebuilds per request
    assert {agent.split()[0] for agent in agents} == {"sms-gateway"}
