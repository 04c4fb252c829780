"""What a hostile or careless caller tries, over HTTP against the local stack with its default
quotas: one handset in several spellings, bytes a provider should never see, and DynamoDB failing
around a send (stopped with SIGSTOP, as a hung process is)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
import requests

from local.sandbox import Fault, ProviderSandbox
from local.stack import LocalStack

KEY = "key-of-shop-1"
SPELLINGS = ["13611110001", "8613611110001", "+8613611110001", "008613611110001"]


@pytest.fixture
def sandbox(strict_stack: LocalStack) -> Iterator[ProviderSandbox]:
    assert strict_stack.sandbox is not None
    strict_stack.sandbox.reset()
    yield strict_stack.sandbox
    strict_stack.sandbox.reset()


def post(stack: LocalStack, path: str, body: Any, *, key: str | None = None, raw: bytes | None = None) -> Any:
    headers = {"content-type": "application/json", "x-api-key": KEY}
    if key is not None:
        headers["Idempotency-Key"] = key
    data = raw if raw is not None else json.dumps(body).encode()
    return requests.post(f"{stack.api_url}{path}", data=data, headers=headers, timeout=60)


def polyv(*phones: str, values: list[str] | None = None) -> dict[str, Any]:
    return {"phone_numbers": list(phones), "template_param_names": ["code"], "template_param_values": values or ["1"]}


def at_once(count: int, send: Callable[[int], requests.Response]) -> list[requests.Response]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(send, range(count)))


@contextmanager
def dynamodb_stopped(stack: LocalStack) -> Iterator[None]:
    pid = stack.pids()["dynamodb"]
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


class TestOneHandset:
    def test_four_spellings_in_one_batch_are_one_send(self, strict_stack: LocalStack, sandbox: ProviderSandbox) -> None:
        body = {
            "template_code": "SMS_1",
            "sign_name": "Shop",
            "messages": [{"phone_number": p, "template_param": {"code": "1"}} for p in SPELLINGS],
        }

        response = post(strict_stack, "/v1/aliyun/batch-messages", body)

        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["phone_number"] for r in results] == ["+8613611110001"] * 4
        assert {r["status"] for r in results} == {"accepted"}
        assert len({r["message_id"] for r in results}) == 1
        [call] = sandbox.calls
        assert call.phones == ["13611110001"]

    def test_four_spellings_at_once_are_one_send_per_minute(
        self, strict_stack: LocalStack, sandbox: ProviderSandbox
    ) -> None:
        phone = "13611110002"
        spellings = [phone, f"86{phone}", f"+86{phone}", f"0086{phone}"]

        answers = at_once(4, lambda i: post(strict_stack, "/v1/polyv/messages", polyv(spellings[i])))

        assert Counter(a.status_code for a in answers) == {200: 1, 429: 3}
        assert sandbox.accepted_phones() == [phone]
        for answer in answers:
            if answer.status_code == 429:
                assert answer.json()["results"][0]["quota"] == {
                    "scope": "phone",
                    "period": "minute",
                    "retry_after": answer.json()["results"][0]["quota"]["retry_after"],
                }


def batch(phone: str, params: dict[str, str]) -> dict[str, Any]:
    return {"template_code": "SMS_1", "sign_name": "S", "messages": [{"phone_number": phone, "template_param": params}]}


def raw_polyv(phone: str, tail: bytes) -> bytes:
    return b'{"phone_numbers": ["' + phone.encode() + b'"], "template_param_names": ["code"], ' + tail


# Each case's number: its own, so that a quota taken by a refused request would show.
HOSTILE: dict[str, tuple[str, Callable[[str], Any]]] = {
    "nul in template_param_values": ("/v1/polyv/messages", lambda p: polyv(p, values=["12\u000034"])),
    "esc in datas": (
        "/v1/ronglian/messages",
        lambda p: {"phone_numbers": [p], "template_id": "1", "datas": ["\x1b[2J"]},
    ),
    "bel in sign_name": ("/v1/aliyun/batch-messages", lambda p: {**batch(p, {"c": "1"}), "sign_name": "Shop\x07"}),
    "c1 in template_param": ("/v1/aliyun/batch-messages", lambda p: batch(p, {"c": "a\x85b"})),
    "duplicated key": (
        "/v1/polyv/messages",
        lambda p: raw_polyv(p, b'"template_param_values": ["1"], "template_param_values": ["2"]}'),
    ),
    "duplicated nested key": (
        "/v1/aliyun/batch-messages",
        lambda p: json.dumps(batch(p, {"c": "1"})).replace('{"c": "1"}', '{"c": "1", "c": "2"}').encode(),
    ),
    "invalid utf-8": ("/v1/polyv/messages", lambda p: raw_polyv(p, b'"template_param_values": ["A\xff\xfeB"]}')),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_values_are_400_and_reach_no_provider(
    strict_stack: LocalStack, sandbox: ProviderSandbox, case: str
) -> None:
    phone = f"1361112{list(HOSTILE).index(case):04d}"
    path, make = HOSTILE[case]
    body = make(phone)

    response = post(strict_stack, path, None, raw=body) if isinstance(body, bytes) else post(strict_stack, path, body)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert sandbox.calls == []
    # Nothing refused took quota: the number's one SMS of the minute is still there
    assert post(strict_stack, "/v1/polyv/messages", polyv(phone)).status_code == 200


class TestDynamoDBFailing:
    def test_an_outage_after_the_provider_accepted_never_sends_twice(
        self, strict_stack: LocalStack, sandbox: ProviderSandbox
    ) -> None:
        # The provider answers after 2 s; DynamoDB stops while it is being called
        sandbox.add_fault(Fault(kind="slow", operation="polyv.send", delay=2.0))
        with ThreadPoolExecutor(max_workers=1) as pool:
            first = pool.submit(post, strict_stack, "/v1/polyv/messages", polyv("13611110004"), key="outage-1")
            while not sandbox.calls:
                time.sleep(0.05)
            with dynamodb_stopped(strict_stack):
                answer = first.result()
        sandbox.reset()

        # The provider's outcome, and that it is not on record
        assert answer.status_code == 200, answer.text
        assert answer.json()["results"][0]["status"] == "accepted"
        assert answer.json()["warning"]["code"] == "record_incomplete"
        # Retries with the key, while the attempt's claim holds and after: nothing goes out again
        statuses = []
        for _ in range(12):
            retry = post(strict_stack, "/v1/polyv/messages", polyv("13611110004"), key="outage-1")
            statuses.append(retry.status_code)
            time.sleep(1)
        assert sandbox.calls == []
        assert set(statuses) <= {409, 200, 502}
        assert statuses[-1] in (200, 502)
        assert retry.headers["Idempotent-Replayed"] == "true"

    @pytest.mark.parametrize("count", [1, 100])
    @pytest.mark.parametrize("key", [None, "hung"], ids=["no-key", "idempotency-key"])
    def test_a_hung_dynamodb_is_503_within_10_seconds(
        self, strict_stack: LocalStack, sandbox: ProviderSandbox, count: int, key: str | None
    ) -> None:
        phones = [f"137{i:08d}" for i in range(count)]
        with dynamodb_stopped(strict_stack):
            started = time.monotonic()
            answer = post(strict_stack, "/v1/polyv/messages", polyv(*phones), key=key and f"{key}-{count}")
            took = time.monotonic() - started

        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "dependency_unavailable"
        assert took < 10
        assert sandbox.calls == []


def test_a_queued_message_meeting_an_outage_is_sent_once(strict_stack: LocalStack, sandbox: ProviderSandbox) -> None:
    sqs = boto3.client(
        "sqs",
        endpoint_url=strict_stack.moto_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    sandbox.add_fault(Fault(kind="slow", operation="polyv.send", delay=2.0))
    body = {**polyv("13611110005"), "idempotencyKey": "queued-outage-1", "tenant": "shop-1"}

    sqs.send_message(QueueUrl=strict_stack.queues["PolyvQueue"], MessageBody=json.dumps(body))
    deadline = time.monotonic() + 30
    while not sandbox.calls and time.monotonic() < deadline:
        time.sleep(0.05)
    with dynamodb_stopped(strict_stack):
        time.sleep(6)
    strict_stack.drain(timeout=60)

    assert len(sandbox.calls) == 1
    record = requests.get(f"{strict_stack.api_url}/v1/messages/queued-outage-1", headers={"x-api-key": KEY}, timeout=30)
    assert record.status_code == 200, record.text
    assert record.json()["results"][0]["status"] in ("accepted", "ambiguous")
