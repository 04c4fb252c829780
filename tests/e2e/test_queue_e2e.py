"""Messages through the queues: the local SQS poller feeds the provider functions as Lambda's
event source mapping would (batches, partial failures, visibility timeout, redrive to the DLQ)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests

from local.sandbox import Fault, ProviderSandbox
from local.stack import LocalStack


@pytest.fixture
def sandbox(queue_stack: LocalStack) -> Iterator[ProviderSandbox]:
    assert queue_stack.sandbox is not None
    queue_stack.drain()
    queue_stack.sandbox.reset()
    yield queue_stack.sandbox
    queue_stack.sandbox.reset()


def sqs(stack: LocalStack) -> Any:
    return boto3.client(
        "sqs", endpoint_url=stack.moto_url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def enqueue(stack: LocalStack, queue: str, *bodies: Any) -> None:
    client = sqs(stack)
    for start in range(0, len(bodies), 10):
        entries = [
            {"Id": str(i), "MessageBody": body if isinstance(body, str) else json.dumps(body)}
            for i, body in enumerate(bodies[start : start + 10])
        ]
        client.send_message_batch(QueueUrl=stack.queues[queue], Entries=entries)


def dead_letters(stack: LocalStack, queue: str) -> list[dict[str, Any]]:
    client, found = sqs(stack), []
    while batch := client.receive_message(
        QueueUrl=stack.queues[queue], MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
    ).get("Messages", []):
        found.extend(batch)
        for message in batch:
            client.delete_message(QueueUrl=stack.queues[queue], ReceiptHandle=message["ReceiptHandle"])
    return found


def polyv(phone: str, **envelope: Any) -> dict[str, Any]:
    return {"phone_numbers": [phone], "template_param_names": ["code"], "template_param_values": ["1"], **envelope}


def record(stack: LocalStack, request_id: str) -> requests.Response:
    return requests.get(f"{stack.api_url}/v1/messages/{request_id}", headers={"x-api-key": "key-of-shop-1"}, timeout=30)


def test_a_message_is_sent_and_recorded(queue_stack: LocalStack, sandbox: ProviderSandbox) -> None:
    body = {"phone_numbers": ["13800138000"], "template_id": "1", "datas": ["1"]}
    enqueue(queue_stack, "RonglianQueue", {**body, "tenant": "shop-1", "idempotencyKey": "o-1"})
    queue_stack.drain()

    assert sandbox.accepted_phones() == ["13800138000"]
    answer = record(queue_stack, "o-1")
    assert answer.status_code == 200
    assert answer.json()["results"][0]["status"] == "accepted"


def test_a_batch_with_one_failing_record_retries_only_that_record(
    queue_stack: LocalStack, sandbox: ProviderSandbox
) -> None:
    phones = [f"1390013900{i}" for i in range(5)]
    sandbox.add_fault(Fault(kind="http_status", operation="polyv.send", phone=phones[2], status=503, times=1))

    enqueue(queue_stack, "PolyvQueue", *[polyv(p) for p in phones])
    queue_stack.drain()

    calls = Counter(p for call in sandbox.calls for p in call.phones)
    assert calls == {**dict.fromkeys(phones, 1), phones[2]: 2}
    assert sorted(sandbox.accepted_phones()) == sorted(phones)


def test_the_same_message_5_times_is_one_provider_call(queue_stack: LocalStack, sandbox: ProviderSandbox) -> None:
    enqueue(queue_stack, "PolyvQueue", *[polyv("13700137000", idempotencyKey="order-5") for _ in range(5)])
    queue_stack.drain()
    assert len(sandbox.calls) == 1
    assert sandbox.accepted_phones() == ["13700137000"]


def test_a_poison_message_is_parked_with_its_reason(queue_stack: LocalStack, sandbox: ProviderSandbox) -> None:
    enqueue(queue_stack, "AliyunQueue", "not json at all")
    queue_stack.drain()

    [parked] = dead_letters(queue_stack, "AliyunDeadLetterQueue")
    assert parked["Body"] == "not json at all"
    assert parked["MessageAttributes"]["reason"]["StringValue"] == "the message body is not JSON"
    assert parked["MessageAttributes"]["error_code"]["StringValue"] == "invalid_message"
    assert sandbox.calls == []


def test_a_provider_outage_is_retried_then_parked_after_max_receive_count(
    queue_stack: LocalStack, sandbox: ProviderSandbox
) -> None:
    sandbox.add_fault(Fault(kind="http_status", operation="polyv.send", phone="13600136000", status=503))

    enqueue(queue_stack, "PolyvQueue", polyv("13600136000"))
    queue_stack.drain()

    [parked] = dead_letters(queue_stack, "PolyvDeadLetterQueue")
    assert json.loads(parked["Body"])["phone_numbers"] == ["13600136000"]
    assert len(sandbox.calls) == 3, "one call per delivery, three deliveries"
    assert sandbox.accepted_phones() == []


def test_500_messages_with_20_percent_provider_failures_are_all_accounted_for(
    queue_stack: LocalStack, sandbox: ProviderSandbox
) -> None:
    phones = [f"135{i:08d}" for i in range(500)]
    never, once, rejected = phones[0:40], phones[40:80], phones[80:100]
    for phone in never:
        sandbox.add_fault(Fault(kind="http_status", operation="polyv.send", phone=phone, status=503))
    for phone in once:
        sandbox.add_fault(Fault(kind="http_status", operation="polyv.send", phone=phone, status=500, times=1))
    for phone in rejected:
        sandbox.add_fault(Fault(kind="code", operation="polyv.send", phone=phone, code=-2))

    enqueue(queue_stack, "PolyvQueue", *[polyv(p, idempotencyKey=f"bulk-{p}", tenant="shop-1") for p in phones])
    queue_stack.drain(timeout=300)

    sent = Counter(sandbox.accepted_phones())
    parked = {json.loads(m["Body"])["phone_numbers"][0] for m in dead_letters(queue_stack, "PolyvDeadLetterQueue")}
    statuses = {p: record(queue_stack, f"bulk-{p}").json()["results"][0]["status"] for p in phones if p not in parked}
    assert max(sent.values()) == 1, "nothing sent twice"
    assert parked == set(never)
    assert {p for p, s in statuses.items() if s == "accepted"} == set(phones) - set(never) - set(rejected)
    assert {p for p, s in statuses.items() if s == "rejected"} == set(rejected)
    assert set(sent) == set(phones) - set(never) - set(rejected)
    assert len(parked) + len(statuses) == 500, "every message accounted for"
