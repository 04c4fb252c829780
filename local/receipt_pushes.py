"""Aliyun's delivery receipts on a running local stack: numbers sent through SendBatchSms, each
delivered by the sandbox at once and its receipt pushed and settled, and the same reports pushed
again through the API Gateway emulator to the receipt route, each answer checked."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import requests

from local.sandbox.receipts import aliyun_report
from local.stack import LocalStack

ALIYUN_ANSWER = {"code": 0, "msg": "接收成功"}
"""What the receipt route answers a push it took, as Aliyun wants it."""
SETTLE_TIMEOUT = 240.0


class PushRefused(RuntimeError):
    """The API answered a send or a push otherwise than a gateway that took it would."""


def send(stack: LocalStack, key: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """One send request through the API with the API key `key`: its answer, every number accepted."""
    answer = requests.post(f"{stack.api_url}{path}", json=body, headers={"x-api-key": key}, timeout=60)
    result: dict[str, Any] = answer.json() if answer.status_code == 200 else {}
    summary = result.get("summary") or {}
    if not result or summary.get("accepted") != len(result.get("results", [])):
        raise PushRefused(f"POST {path}: {answer.status_code} {answer.text[:1000]}")
    return result


def settle(stack: LocalStack) -> None:
    """Every receipt due pushed by the sandbox, and every queue (receipts, webhooks) worked through."""
    assert stack.sandbox is not None, "the stack is not running"
    stack.sandbox.wait_for_receipts(120)
    stack.drain(timeout=SETTLE_TIMEOUT)


def delivered_aliyun_reports(stack: LocalStack, key: str, count: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`count` numbers sent in one request to `/v1/aliyun/batch-messages` (SendBatchSms), each
    delivered at once by the sandbox (its automatic receipts off), the receipts pushed and settled:
    the send's answer, and the SmsReport objects Aliyun pushed, one per number."""
    sandbox = stack.sandbox
    assert sandbox is not None, "the stack is not running"
    sandbox.configure_receipts(auto=False)
    before = len(sandbox.messages())
    answer = send(
        stack,
        key,
        "/v1/aliyun/batch-messages",
        {
            "template_code": "SMS_000002",
            "sign_name": "SmsGateway",
            "messages": [{"phone_number": f"1361111{n:04d}", "template_param": {"code": "1"}} for n in range(count)],
        },
    )
    for sms in sandbox.messages()[before:]:
        sandbox.act(sms.id, "deliver")
    settle(stack)
    reports = [aliyun_report(sms) for sms in sandbox.messages()[before:] if sms.receipt == "pushed"]
    if len(reports) != count:
        raise PushRefused(f"{len(reports)} receipts pushed for {count} numbers delivered")
    return answer, reports


def aliyun_body(reports: list[dict[str, Any]]) -> bytes:
    """One push's body, as Aliyun sends it: a JSON array of SmsReport objects, in UTF-8."""
    return json.dumps(reports, ensure_ascii=False).encode()


def push_aliyun(http: requests.Session, url: str, body: bytes) -> requests.Response:
    """One push to Aliyun's receipt URL (`stack.receipt_urls()["aliyun"]`), on a kept-alive connection."""
    return http.post(url, data=body, headers={"content-type": "application/json"}, timeout=10)


def check_aliyun_answer(answer: requests.Response) -> None:
    """PushRefused unless the route took the push as Aliyun wants it answered (200, ALIYUN_ANSWER)."""
    try:
        taken = answer.status_code == 200 and answer.json() == ALIYUN_ANSWER
    except ValueError:
        taken = False
    if not taken:
        raise PushRefused(f"the receipt route answered {answer.status_code} {answer.text[:500]}")
