"""Abuse protection in process, against DynamoDB Local, moto server and the provider sandbox: the
pumping guard, opt-outs, country rules, the spend budget and conversion feedback."""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from local.sandbox import ProviderSandbox
from smsgw import runtime
from smsgw.admin import AdminKeys
from tests.support import call, create_table, dynamodb_client, event, invoke

TENANT, ADMIN = "shop", "admin-of-shop"


@pytest.fixture
def config_table(dynamodb_url: str) -> str:
    table = create_table(dynamodb_url, "config", sort_key="sk")
    AdminKeys(table, client=dynamodb_client(dynamodb_url)).grant(ADMIN, TENANT)
    return table


@pytest.fixture
def ronglian(deploy: Any, config_table: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The Ronglian function with its tenants' rules (the deployment's default countries: mainland
    only) and every limit but the guard off; the router function for the admin routes."""
    monkeypatch.setenv("CONFIG_TABLE_NAME", config_table)
    monkeypatch.setenv("DEFAULT_ALLOWED_COUNTRIES", "CN")
    monkeypatch.setenv(
        "QUOTA_LIMITS", "phone_per_minute=0,phone_per_hour=0,phone_per_day=0,account_per_day=0,ip_per_day=0"
    )
    for name in ("POLYV", "ALIYUN", "RONGLIAN"):
        monkeypatch.setenv(f"{name}_SECRET_ID", "unused-here")

    def send(*phones: str) -> tuple[int, dict[str, Any]]:
        evt = event("ronglian-send.json", body={"phone_numbers": list(phones), "template_id": "1", "datas": ["1"]})
        evt["requestContext"]["identity"]["apiKeyId"] = TENANT
        return invoke("ronglian", evt)

    deploy("ronglian")
    return send


def admin(method: str, path: str, body: Any = None) -> dict[str, Any]:
    evt = event("polyv-send.json", body=body)
    evt.update(httpMethod=method, path=path, resource=path)
    if body is None:
        evt["body"] = None
    evt["requestContext"]["identity"]["apiKeyId"] = ADMIN
    return call("router", evt)


def walk(count: int) -> list[str]:
    """A script walking a number range: one block (1380013xxxx)."""
    return [f"1380013{i:04d}" for i in range(count)]


def ordinary(count: int) -> list[str]:
    """People logging in: every number in a block of its own."""
    return [f"13{i:05d}{i % 10000:04d}" for i in range(count)]


class TestPumpingGuard:
    def test_a_script_walking_a_block_is_stopped_while_ordinary_users_get_their_codes(
        self, ronglian: Any, sandbox: ProviderSandbox, capsys: pytest.CaptureFixture[str]
    ) -> None:
        walked = Counter(ronglian(phone)[1]["results"][0]["status"] for phone in walk(500))
        users = Counter(ronglian(phone)[1]["results"][0]["status"] for phone in ordinary(500))

        assert walked == {"accepted": 20, "blocked_by_guard": 480}, "the default: 20 an hour to one block"
        assert users == {"accepted": 500}
        assert len(sandbox.accepted_phones()) == 520
        closed = [line for line in capsys.readouterr().out.splitlines() if '"guard_closed"' in line]
        assert closed, "the guard's metric fired"

    def test_a_blocked_number_answers_429_with_the_cool_down(
        self, ronglian: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        status, body = admin_rules({"guard": {"block_per_hour": 2, "cooldown_seconds": 600}})
        assert status == 200, body
        runtime.reset()
        for phone in walk(2):
            assert ronglian(phone)[0] == 200

        status, body = ronglian(walk(3)[2])

        assert (status, body["error"]["code"]) == (429, "blocked_by_guard")
        assert 500 < body["results"][0]["quota"]["retry_after"] <= 601


def admin_rules(rules: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    answer = admin("PUT", "/v1/rules", rules)
    return answer["statusCode"], json.loads(answer["body"])


class TestOptOuts:
    def test_an_opted_out_number_gets_no_provider_call_and_no_quota(
        self, ronglian: Any, sandbox: ProviderSandbox
    ) -> None:
        assert admin("PUT", "/v1/opt-outs/8613800138000", None)["statusCode"] == 200
        assert json.loads(admin("GET", "/v1/opt-outs/+8613800138000")["body"])["opted_out"] is True

        status, body = ronglian("13800138000", "13900139000")

        assert status == 200
        assert [r["status"] for r in body["results"]] == ["opted_out", "accepted"]
        assert sandbox.accepted_phones() == ["13900139000"]
        assert admin("DELETE", "/v1/opt-outs/13800138000")["statusCode"] == 204
        assert ronglian("13800138000")[1]["results"][0]["status"] == "accepted"

    def test_only_the_admin_key_manages_them(self, ronglian: Any) -> None:
        evt = event("polyv-send.json")
        evt.update(httpMethod="PUT", path="/v1/opt-outs/13800138000", resource="/v1/opt-outs/{phone}", body=None)
        evt["requestContext"]["identity"]["apiKeyId"] = TENANT
        assert call("router", evt)["statusCode"] == 403


class TestCountries:
    def test_only_the_tenants_countries_are_sent_to(self, ronglian: Any, deploy: Any, sandbox: ProviderSandbox) -> None:
        deploy("aliyun")
        inter = {"phone_numbers": ["91234567"], "country_code": "HK", "sign_name": "S", "template_code": "SMS_1"}

        def send() -> dict[str, Any]:
            evt = event("aliyun-send.json", body=inter)
            evt["requestContext"]["identity"]["apiKeyId"] = TENANT
            return invoke("aliyun", evt)[1]

        assert send()["results"][0]["status"] == "country_not_allowed"
        assert sandbox.calls == []
        admin_rules({"allowed_countries": ["CN", "HK"]})
        runtime.reset()
        assert send()["results"][0]["status"] == "accepted"


class TestBudget:
    def test_200_concurrent_requests_never_spend_past_the_budget(self, ronglian: Any, sandbox: ProviderSandbox) -> None:
        admin_rules({"budget": {"daily_limit": 100, "prices": {"ronglian": 7}}})
        runtime.reset()

        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda phone: ronglian(phone), ordinary(200)))

        statuses = Counter(body["results"][0]["status"] for _, body in answers)
        assert statuses == {"accepted": 14, "budget_exceeded": 186}, "100 // 7: never one message past it"
        assert {status for status, body in answers if body["results"][0]["status"] == "budget_exceeded"} == {429}
        assert len(sandbox.accepted_phones()) == 14


class TestFeedback:
    def test_feedback_moves_the_conversion_metric_once(
        self, ronglian: Any, sandbox: ProviderSandbox, capsys: pytest.CaptureFixture[str]
    ) -> None:
        _, sent = ronglian("13800138000")
        capsys.readouterr()

        def feedback(converted: bool = True) -> dict[str, Any]:
            evt = event("polyv-send.json", body={"phone_number": "+8613800138000", "converted": converted})
            path = f"/v1/messages/{sent['request_id']}/feedback"
            evt.update(path=path, resource="/v1/messages/{requestId}/feedback")
            evt["requestContext"]["identity"]["apiKeyId"] = TENANT
            return invoke("messages", evt)[1]

        # Not converted, then used late: counted once; a conversion is never taken back
        assert [feedback(c)["recorded"] for c in (False, False, True, True, False)] == [True, False, True, False, False]
        documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"converted"' in line]
        metrics = [d for d in documents if "_aws" in d]
        assert len(metrics) == 1
        assert (metrics[0]["country"], metrics[0]["block"], metrics[0]["converted"]) == ("CN", "86-1380013", [1.0])


def test_a_receipt_saying_the_user_refused_opts_the_number_out(
    ronglian: Any, sandbox: ProviderSandbox, config_table: str, tables: Any
) -> None:
    from smsgw.deliveries import DeliveryStore
    from smsgw.receipts import Receipt
    from smsgw.receiving import ReceiptConsumer
    from smsgw.rules import RuleStore

    admin_rules({"opt_out_on_receipts": True})
    _, sent = ronglian("13800138000", "13900139000")
    client = runtime.dynamodb_client()
    consumer = ReceiptConsumer(
        DeliveryStore(tables.messages, client=client, retention_seconds=86_400),
        None,
        RuleStore(config_table, client=client, default_countries=frozenset({"CN"})),
    )
    message_id = sent["results"][0]["message_id"]

    def receipt(phone: str, reason: str) -> Receipt:
        return Receipt("ronglian", message_id, phone, False, reason, "2026-12-01T10:00:05+08:00")

    assert consumer.apply([receipt("+8613800138000", "USER_REJECT"), receipt("+8613900139000", "UNDELIV")]) == 0

    _, again = ronglian("13800138000", "13900139000")
    assert [r["status"] for r in again["results"]] == ["opted_out", "accepted"]
