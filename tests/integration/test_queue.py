"""The provider functions fed SQS batches, in process, against DynamoDB Local, moto server (the
dead-letter queue) and the provider sandbox."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3
import pytest

from local.sandbox import Fault, ProviderSandbox
from smsgw import runtime
from tests.support import EVENTS, dead_letters, log_record, polyv_message, sqs_event

A, B = "13800138000", "13900139000"


@pytest.fixture
def polyv(polyv_queue: Any) -> Any:
    return polyv_queue


def test_the_event_file_is_processed(polyv: Any, sandbox: ProviderSandbox) -> None:
    event = json.loads((EVENTS / "polyv-queue.json").read_text())
    assert polyv(event) == []
    assert sandbox.accepted_phones() == json.loads(event["Records"][0]["body"])["phone_numbers"]
    status, record = log_record("shop-1", "order-1001")
    assert (status, record["results"][0]["status"]) == (200, "accepted")


def test_a_batch_with_good_and_poison_records(polyv: Any, sandbox: ProviderSandbox, dead_letter_queue: str) -> None:
    event = sqs_event(
        ("m-good", polyv_message(A)),
        ("m-not-json", "{oops"),
        ("m-invalid", polyv_message("12345")),
    )

    assert polyv(event) == [], "poison goes to the DLQ at once, not back to the queue"

    assert sandbox.accepted_phones() == [A]
    parked = {m["MessageAttributes"]["source_message_id"]["StringValue"]: m for m in dead_letters(dead_letter_queue)}
    assert set(parked) == {"m-not-json", "m-invalid"}
    assert parked["m-not-json"]["Body"] == "{oops"
    assert parked["m-not-json"]["MessageAttributes"]["reason"]["StringValue"] == "the message body is not JSON"
    assert parked["m-invalid"]["MessageAttributes"]["reason"]["StringValue"] == "the message is not a valid request"
    status, record = log_record("queue", "m-invalid")
    assert (status, record["error"]["code"]) == (200, "invalid_message")
    assert record["error"]["details"][0]["field"] == "phone_numbers.0"


def test_the_same_message_delivered_5_times_is_sent_once(polyv: Any, sandbox: ProviderSandbox) -> None:
    for delivery in range(1, 6):
        assert polyv(sqs_event(("m-dup", polyv_message(A)), receive_count=delivery)) == []
    assert len(sandbox.calls) == 1


def test_a_producer_key_dedupes_two_messages(polyv: Any, sandbox: ProviderSandbox) -> None:
    assert polyv(sqs_event(("m-1", polyv_message(A, idempotencyKey="order-7", tenant="shop")))) == []
    assert polyv(sqs_event(("m-2", polyv_message(A, idempotencyKey="order-7", tenant="shop")))) == []
    assert len(sandbox.calls) == 1
    assert log_record("shop", "order-7")[0] == 200
    assert log_record("other-shop", "order-7")[0] == 404


def test_a_provider_outage_is_a_batch_item_failure_and_retried(polyv: Any, sandbox: ProviderSandbox) -> None:
    event = sqs_event(("m-ok", polyv_message(B)), ("m-down", polyv_message(A)))
    sandbox.add_fault(Fault(kind="http_status", operation="polyv.send", phone=A, status=503, times=1))

    assert polyv(event) == ["m-down"]
    assert polyv(sqs_event(("m-down", polyv_message(A)), receive_count=2)) == []

    assert sorted(sandbox.accepted_phones()) == [A, B]
    status, record = log_record("queue", "m-down")
    assert (status, record["results"][0]["status"]) == (200, "accepted")


def test_only_the_retryable_numbers_are_sent_again(polyv: Any, sandbox: ProviderSandbox) -> None:
    sandbox.add_fault(Fault(kind="code", operation="polyv.send", phone=B, code=11, times=1))

    assert polyv(sqs_event(("m-partial", polyv_message(A, B)))) == ["m-partial"]
    assert polyv(sqs_event(("m-partial", polyv_message(A, B)), receive_count=2)) == []

    assert [call.phones for call in sandbox.calls] == [[A, B], [B]]
    assert sandbox.accepted_phones() == [A, B]
    _, record = log_record("queue", "m-partial")
    assert [r["status"] for r in record["results"]] == ["accepted", "accepted"]


def test_an_ambiguous_send_is_acknowledged_and_never_resent(polyv: Any, sandbox: ProviderSandbox) -> None:
    sandbox.add_fault(Fault(kind="timeout", operation="polyv.send", delay=2, times=1))
    assert polyv(sqs_event(("m-amb", polyv_message(A)))) == []
    assert polyv(sqs_event(("m-amb", polyv_message(A)), receive_count=2)) == []
    assert len(sandbox.calls) == 1
    _, record = log_record("queue", "m-amb")
    assert record["results"][0]["status"] == "ambiguous"


def test_quotas_apply_on_the_queue_path(polyv: Any, sandbox: ProviderSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUOTA_LIMITS", "phone_per_minute=0,phone_per_hour=0,phone_per_day=1")
    runtime.reset()
    assert polyv(sqs_event(("q-1", polyv_message(A)))) == []
    assert polyv(sqs_event(("q-2", polyv_message(A)))) == [], "quota_exceeded is final: recorded, acknowledged"
    assert sandbox.accepted_phones() == [A]
    assert log_record("queue", "q-2")[1]["results"][0]["status"] == "quota_exceeded"


def test_records_of_a_batch_go_out_together(polyv: Any, sandbox: ProviderSandbox) -> None:
    # Each answer waits a second: one after another, the last call would start 9 s after the first.
    sandbox.add_fault(Fault(kind="slow", operation="polyv.send", delay=1.0))
    event = sqs_event(*[(f"c-{i}", polyv_message(f"1380013800{i}")) for i in range(10)])

    assert polyv(event) == []

    arrivals = sorted(call.at for call in sandbox.calls)
    assert len(arrivals) == 10
    assert arrivals[-1] - arrivals[0] < timedelta(seconds=1)


def test_a_delivery_claims_its_key_and_a_redelivery_meets_the_claim(
    polyv: Any, sandbox: ProviderSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    session = boto3.session.Session()
    session.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    runtime.reset()

    assert polyv(sqs_event(("m-first", polyv_message(A)))) == []
    first = list(calls)
    assert polyv(sqs_event(("m-first", polyv_message(A)), receive_count=2)) == []
    assert polyv(sqs_event(("m-keyed", polyv_message(B, idempotencyKey="order-9")))) == []
    assert polyv(sqs_event(("m-again", polyv_message(B, idempotencyKey="order-9")))) == []

    # A first delivery: the claim with the number's counters in one transaction (what is left read
    # back), the account's and its number block's counters beside it, then the completion with its
    # log record; no record is read first
    assert sorted(first[:-1]) == ["BatchGetItem", "TransactWriteItems", "UpdateItem", "UpdateItem"]
    assert first[-1] == "TransactWriteItems"
    assert "GetItem" not in calls
    # A redelivery, or a producer's key used again, meets the record its first delivery left
    assert len(sandbox.calls) == 2


def test_a_queued_message_counts_against_its_tenant_and_no_source_ip(
    polyv: Any, sandbox: ProviderSandbox, tables: Any, dynamodb_url: str
) -> None:
    from tests.support import dynamodb_client

    assert polyv(sqs_event(("m-ip", polyv_message(A, tenant="shop")))) == []

    keys = sorted(i["pk"]["S"] for i in dynamodb_client(dynamodb_url).scan(TableName=tables.quota)["Items"])
    assert [k.split("#")[:2] for k in keys] == [["shop", "account"], ["shop", "block"], ["shop", "phone"]]
    _, record = log_record("shop", "m-ip")
    assert set(record["quota_remaining"]) == {"account"}
