"""The abuse rules on a local stack, through the provider routes as deployed: a number opted out by
the tenant's admin key reaches no provider, a country the tenant does not send to is refused at
once, and the pumping guard stops a walk through a number block."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.sandbox import ProviderSandbox
from local.stack import LocalStack
from tests.e2e.conftest import ABUSE_ADMIN_KEY, ABUSE_KEYS

pytestmark = pytest.mark.e2e

KEY = next(iter(ABUSE_KEYS.values()))
DEFAULT_BLOCK_PER_HOUR = 20


@pytest.fixture
def sandbox(abuse_stack: LocalStack) -> Iterator[ProviderSandbox]:
    assert abuse_stack.sandbox is not None
    abuse_stack.sandbox.reset()
    yield abuse_stack.sandbox
    abuse_stack.sandbox.reset()


def batch(stack: LocalStack, *numbers: str) -> requests.Response:
    body = {
        "template_code": "SMS_000002",
        "sign_name": "SmsGateway",
        "messages": [{"phone_number": n, "template_param": {"code": "123456"}} for n in numbers],
    }
    return requests.post(f"{stack.api_url}/v1/aliyun/batch-messages", json=body, headers={"x-api-key": KEY}, timeout=30)


def statuses(answer: requests.Response) -> dict[str, str]:
    return {r["phone_number"]: r["status"] for r in answer.json()["results"]}


def admin(stack: LocalStack, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(
        method, f"{stack.api_url}{path}", json=body, headers={"x-api-key": ABUSE_ADMIN_KEY}, timeout=30
    )


def test_a_number_opted_out_by_the_admin_key_reaches_no_provider(
    abuse_stack: LocalStack, sandbox: ProviderSandbox
) -> None:
    opted_out = admin(abuse_stack, "PUT", "/v1/opt-outs/13812340001")
    refused = requests.put(f"{abuse_stack.api_url}/v1/opt-outs/13812340001", headers={"x-api-key": KEY}, timeout=30)

    answer = batch(abuse_stack, "13812340001", "13812340002")

    assert (opted_out.status_code, opted_out.json()) == (200, {"phone_number": "+8613812340001", "opted_out": True})
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "admin_key_required")
    assert answer.status_code == 200
    assert statuses(answer) == {"+8613812340001": "opted_out", "+8613812340002": "accepted"}
    assert answer.json()["summary"]["opted_out"] == 1
    assert [call.phones for call in sandbox.calls_for("aliyun.SendBatchSms")] == [["13812340002"]]

    # Opted back in, it is sent to again
    assert admin(abuse_stack, "DELETE", "/v1/opt-outs/13812340001").status_code == 204
    assert admin(abuse_stack, "GET", "/v1/opt-outs/13812340001").json()["error"]["code"] == "not_opted_out"
    assert statuses(batch(abuse_stack, "13812340001")) == {"+8613812340001": "accepted"}


def test_a_country_the_tenant_does_not_send_to_is_refused_before_any_provider_call(
    abuse_stack: LocalStack, sandbox: ProviderSandbox
) -> None:
    body = {"phone_numbers": ["7400123456"], "country_code": "GB", "sign_name": "SmsGateway", "template_code": "SMS_1"}
    url = f"{abuse_stack.api_url}/v1/aliyun/messages"

    answer = requests.post(url, json=body, headers={"x-api-key": KEY}, timeout=30)

    assert answer.status_code == 200
    assert statuses(answer) == {"+447400123456": "country_not_allowed"}
    assert answer.json()["summary"]["country_not_allowed"] == 1
    assert sandbox.calls == []


def test_the_guard_stops_a_walk_through_a_number_block(abuse_stack: LocalStack, sandbox: ProviderSandbox) -> None:
    walk = [f"1390000{n:04d}" for n in range(DEFAULT_BLOCK_PER_HOUR + 5)]

    first = batch(abuse_stack, *walk)
    then = batch(abuse_stack, "13900009999")

    got = statuses(first)
    assert list(got.values()).count("accepted") == DEFAULT_BLOCK_PER_HOUR
    assert list(got.values()).count("blocked_by_guard") == 5
    assert sum(len(call.accepted_phones) for call in sandbox.calls) == DEFAULT_BLOCK_PER_HOUR
    # The block stays closed for its cool-down: a number of it alone is told to wait
    assert then.status_code == 429
    assert then.json()["error"]["code"] == "blocked_by_guard"
    assert int(then.headers["Retry-After"]) > 0
    assert statuses(then) == {"+8613900009999": "blocked_by_guard"}
