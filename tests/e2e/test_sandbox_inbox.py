"""The sandbox's inbox page in a real browser, on the local stack's port: the messages a send
delivered to two handsets, one delivered and one failed with the page's buttons, and the message
log's delivery statuses following."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.sandbox import ProviderSandbox
from local.stack import LocalStack

pytestmark = pytest.mark.e2e

# A number block no other test sends to: the pumping guard counts per block and hour.
DELIVERED, FAILED = "+8613512345601", "+8613512345602"


@pytest.fixture
def sandbox(local_stack: LocalStack) -> Iterator[ProviderSandbox]:
    assert local_stack.sandbox is not None
    local_stack.sandbox.reset()
    # Receipts wait for the page's buttons.
    local_stack.sandbox.configure_receipts(auto=False)
    yield local_stack.sandbox
    local_stack.sandbox.reset()


def delivery(stack: LocalStack, request_id: str) -> dict[str, str]:
    answer = requests.get(
        f"{stack.api_url}/v1/messages/{request_id}", headers={"x-api-key": stack.api_key}, timeout=30
    ).json()
    return {r["phone_number"]: r["delivery"]["status"] for r in answer["results"]}


def test_the_inbox_buttons_deliver_and_fail_receipts_and_the_message_log_follows(
    local_stack: LocalStack, sandbox: ProviderSandbox, page: Any
) -> None:
    body = {"phone_numbers": [DELIVERED, FAILED], "template_id": "1", "datas": ["246810", "5"]}
    sent = requests.post(
        f"{local_stack.api_url}/v1/ronglian/messages", json=body, headers={"x-api-key": local_stack.api_key}, timeout=30
    )
    assert sent.status_code == 200, sent.text
    request_id = sent.json()["request_id"]

    page.goto(local_stack.inbox_url)
    delivered, failed = (page.locator(f'section.phone[data-phone="{phone}"]') for phone in (DELIVERED, FAILED))
    assert "您的验证码是246810" in delivered.locator(".sms .text").inner_text()
    assert delivered.locator(".sms .status").get_attribute("data-status") == "waiting"
    assert delivery(local_stack, request_id) == {DELIVERED: "accepted", FAILED: "accepted"}

    delivered.locator("button[data-action=deliver]").click()
    failed.locator("button[data-action=fail]").click()

    # The page shows what the sandbox did, and the gateway's receipts consumer settles both numbers
    delivered.locator('.sms .status[data-status="delivered"]').wait_for()
    failed.locator('.sms .status[data-status="undelivered"]').wait_for()
    deadline = time.monotonic() + 30
    while delivery(local_stack, request_id) != {DELIVERED: "delivered", FAILED: "undelivered"}:
        assert time.monotonic() < deadline, delivery(local_stack, request_id)
        time.sleep(0.2)
