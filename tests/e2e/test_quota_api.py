"""Quotas, idempotency and the message log over HTTP, against the running local stack with four
workers per function, so that concurrent requests really race in DynamoDB Local."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from local.sandbox import ProviderSandbox
from local.stack import LocalStack
from tests.e2e.conftest import TENANT_KEYS


@pytest.fixture
def sandbox(quota_stack: LocalStack) -> Iterator[ProviderSandbox]:
    assert quota_stack.sandbox is not None
    quota_stack.sandbox.reset()
    yield quota_stack.sandbox
    quota_stack.sandbox.reset()


def post(
    stack: LocalStack, path: str, body: Any, *, tenant: str = "tenant-a", key: str | None = None
) -> requests.Response:
    headers = {"content-type": "application/json", "x-api-key": TENANT_KEYS[tenant]}
    if key is not None:
        headers["Idempotency-Key"] = key
    return requests.post(f"{stack.api_url}{path}", data=json.dumps(body), headers=headers, timeout=60)


def at_once(count: int, send: Callable[[int], requests.Response]) -> list[requests.Response]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(send, range(count)))


def polyv(*phones: str, code: str = "1234") -> dict[str, Any]:
    return {"phone_numbers": list(phones), "template_param_names": ["code"], "template_param_values": [code]}


def ronglian(phone: str) -> dict[str, Any]:
    return {"phone_numbers": [phone], "template_id": "1", "datas": ["1234", "5"]}


def aliyun(phone: str) -> dict[str, Any]:
    return {"phone_numbers": [phone], "country_code": "HK", "sign_name": "Gateway", "template_code": "SMS_1"}


def test_100_concurrent_requests_for_one_number_send_exactly_its_daily_limit(
    quota_stack: LocalStack, sandbox: ProviderSandbox
) -> None:
    answers = at_once(100, lambda _: post(quota_stack, "/v1/polyv/messages", polyv("13100131000")))

    statuses = Counter(a.status_code for a in answers)
    assert statuses == {200: 10, 429: 90}
    assert sandbox.accepted_phones().count("13100131000") == 10
    refused = [a.json()["results"][0] for a in answers if a.status_code == 429]
    assert {(r["status"], r["quota"]["scope"], r["quota"]["period"]) for r in refused} == {
        ("quota_exceeded", "phone", "day")
    }
    assert all(int(a.headers["Retry-After"]) >= 1 for a in answers if a.status_code == 429)


def test_100_concurrent_requests_share_the_account_quota_and_tenants_are_apart(
    quota_stack: LocalStack, sandbox: ProviderSandbox
) -> None:
    answers = at_once(100, lambda i: post(quota_stack, "/v1/ronglian/messages", ronglian(f"132{i:08d}")))

    assert Counter(a.status_code for a in answers) == {200: 10, 429: 90}
    assert len(sandbox.accepted_phones()) == 10
    assert {a.json()["results"][0]["quota"]["scope"] for a in answers if a.status_code == 429} == {"account"}
    other_tenant = post(quota_stack, "/v1/ronglian/messages", ronglian("13300133000"), tenant="tenant-b")
    assert other_tenant.status_code == 200, "another API key has its own account quota"


def test_100_concurrent_requests_share_the_source_ip_quota(quota_stack: LocalStack, sandbox: ProviderSandbox) -> None:
    answers = at_once(100, lambda i: post(quota_stack, "/v1/aliyun/messages", aliyun(f"9123{i:04d}")))

    assert Counter(a.status_code for a in answers) == {200: 10, 429: 90}
    assert len(sandbox.accepted_phones()) == 10
    assert {a.json()["results"][0]["quota"]["scope"] for a in answers if a.status_code == 429} == {"ip"}


def test_5_concurrent_requests_with_one_idempotency_key_make_one_provider_call(
    quota_stack: LocalStack, sandbox: ProviderSandbox
) -> None:
    answers = at_once(5, lambda _: post(quota_stack, "/v1/polyv/messages", polyv("13400134000"), key="concurrent-1"))

    assert len(sandbox.calls) == 1
    assert sandbox.accepted_phones() == ["13400134000"]
    assert {a.status_code for a in answers} <= {200, 409}
    assert 200 in {a.status_code for a in answers}
    for answer in answers:
        if answer.status_code == 409:
            assert answer.json()["error"]["code"] == "idempotency_in_progress"
            assert answer.headers["Retry-After"] == "1"

    replay = post(quota_stack, "/v1/polyv/messages", polyv("13400134000"), key="concurrent-1")
    first = next(a for a in answers if a.status_code == 200 and "Idempotent-Replayed" not in a.headers)
    assert replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert len(sandbox.calls) == 1


def test_the_same_key_with_another_payload_is_422(quota_stack: LocalStack, sandbox: ProviderSandbox) -> None:
    assert post(quota_stack, "/v1/polyv/messages", polyv("13500135000"), key="order-9").status_code == 200
    other = post(quota_stack, "/v1/polyv/messages", polyv("13500135000", code="9999"), key="order-9")
    assert (other.status_code, other.json()["error"]["code"]) == (422, "idempotency_key_reused")
    assert len(sandbox.calls) == 1


def test_a_tenant_reads_its_own_message_record_only(quota_stack: LocalStack, sandbox: ProviderSandbox) -> None:
    sent = post(quota_stack, "/v1/polyv/messages", polyv("13600136000", "13700137000"))
    request_id = sent.json()["request_id"]

    def get(tenant: str) -> requests.Response:
        headers = {"x-api-key": TENANT_KEYS[tenant]}
        return requests.get(f"{quota_stack.api_url}/v1/messages/{request_id}", headers=headers, timeout=30)

    own, other = get("tenant-a"), get("tenant-b")
    assert own.status_code == 200
    # The send's results, each with what is known of its delivery since
    read = own.json()["results"]
    assert [{k: v for k, v in r.items() if k != "delivery"} for r in read] == sent.json()["results"]
    assert [r["delivery"]["status"] for r in read] == ["accepted", "accepted"]
    assert (other.status_code, other.json()["error"]["code"]) == (404, "message_not_found")
    anonymous = requests.get(f"{quota_stack.api_url}/v1/messages/{request_id}", timeout=30)
    assert anonymous.status_code == 403
