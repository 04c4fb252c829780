"""A send is never repeated, whatever DynamoDB does around it: the failure points of a send, in
process, against DynamoDB Local, moto server and the provider sandbox (docs/delivery.md has the
table these tests follow)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from local.sandbox import Fault, ProviderSandbox
from smsgw import runtime
from tests.support import FakeContext, call, event, header, invoke, sqs_event, with_header

A, B = "13800138000", "13900139000"


def polyv_event(*phones: str, key: str | None = None) -> dict[str, Any]:
    body = {"phone_numbers": list(phones), "template_param_names": ["code"], "template_param_values": ["1234"]}
    evt = event("polyv-send.json", body=body)
    if key is not None:
        with_header(evt, "Idempotency-Key", key)
    return evt


def messages_event(request_id: str) -> dict[str, Any]:
    evt = event("polyv-send.json")
    evt.update(httpMethod="GET", resource="/v1/messages/{requestId}", path=f"/v1/messages/{request_id}", body=None)
    evt["pathParameters"] = {"requestId": request_id}
    return evt


class Outage:
    """DynamoDB unreachable for some operations of the gateway's clients (connection refused)."""

    def __init__(self) -> None:
        self.operations: set[str] = set()
        self.refused: list[str] = []

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        name = model.name
        if name == "TransactWriteItems" and _completes(params):
            name = "TransactWriteItems:complete"  # a send's end: the record and its idempotency state
        if name in self.operations or model.name in self.operations or "*" in self.operations:
            self.refused.append(name)
            raise EndpointConnectionError(endpoint_url="http://dynamodb.local")


def _completes(request: dict[str, Any]) -> bool:
    """Whether a serialised TransactWriteItems ends a send (sets an idempotency record `done`)."""
    body = request.get("body") or b""
    return b'":done"' in (body if isinstance(body, bytes) else str(body).encode())


@pytest.fixture
def outage(deploy: Any, monkeypatch: pytest.MonkeyPatch) -> Outage:
    monkeypatch.setenv("QUOTA_LIMITS", "")  # the default limits: every send takes quota
    deploy("polyv")
    down = Outage()
    for client in (runtime.dynamodb_client(), runtime.quota_client()):
        client.meta.events.register("before-call.dynamodb", down)
    return down


class Clock:
    """The idempotency records' wall clock, moved forward by hand."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock(outage: Outage) -> Clock:
    moved = Clock()
    runtime.runtime().sender.store.now = moved
    return moved


class TestApi:
    def test_a_lost_completion_answers_the_outcomes_and_never_sends_again(
        self, outage: Outage, clock: Clock, sandbox: ProviderSandbox
    ) -> None:
        outage.operations = {"TransactWriteItems:complete"}
        first = polyv_event(A, key="order-1")

        status, body = invoke("polyv", first)

        # What the provider said, and that it is not on record: never "nothing was sent"
        assert status == 200
        assert [r["status"] for r in body["results"]] == ["accepted"]
        assert body["warning"]["code"] == "record_incomplete"
        assert outage.refused == ["TransactWriteItems:complete"]
        outage.operations = set()

        # At once: the first attempt's claim holds until its deadline
        assert invoke("polyv", polyv_event(A, key="order-1"))[0] == 409
        # Past it, and for the next five minutes: settled as ambiguous, never sent again
        for seconds in (30, 60, 120, 300):
            clock.offset = seconds
            answer = call("polyv", polyv_event(A, key="order-1"))
            status, body = answer["statusCode"], json.loads(answer["body"])
            assert status == 502
            assert body["results"][0]["status"] == "ambiguous"
            assert body["request_id"] == first["requestContext"]["requestId"]
            assert header(answer, "Idempotent-Replayed") == "true"
        assert len(sandbox.calls) == 1
        # The settled answer is on record under the first attempt's id
        status, record = invoke("messages", messages_event(first["requestContext"]["requestId"]))
        assert (status, record["results"][0]["status"]) == (200, "ambiguous")

    def test_dynamodb_down_before_the_provider_call_sends_nothing_and_gives_the_key_back(
        self, outage: Outage, sandbox: ProviderSandbox
    ) -> None:
        outage.operations = {"UpdateItem", "TransactWriteItems"}

        status, body = invoke("polyv", polyv_event(A, key="order-2"))

        assert (status, body["error"]["code"]) == (503, "dependency_unavailable")
        assert sandbox.calls == []
        outage.operations = set()
        # The claim was given back: the retry is a real attempt
        status, body = invoke("polyv", polyv_event(A, key="order-2"))
        assert (status, body["results"][0]["status"]) == (200, "accepted")
        assert len(sandbox.calls) == 1

    def test_a_claim_that_cannot_be_given_back_is_never_read_as_unsent(
        self, outage: Outage, clock: Clock, sandbox: ProviderSandbox
    ) -> None:
        outage.operations = {"UpdateItem", "DeleteItem"}

        assert invoke("polyv", polyv_event(A, key="order-3"))[0] == 503
        outage.operations = set()

        # Nothing went out, but nothing says so any more: the numbers are answered ambiguous
        clock.offset = 60
        status, body = invoke("polyv", polyv_event(A, key="order-3"))
        assert (status, body["results"][0]["status"]) == (502, "ambiguous")
        assert sandbox.calls == []

    def test_without_a_key_a_lost_record_still_answers_what_was_sent(
        self, outage: Outage, sandbox: ProviderSandbox
    ) -> None:
        outage.operations = {"PutItem"}

        status, body = invoke("polyv", polyv_event(A, B))

        assert status == 200
        assert body["summary"]["accepted"] == 2
        assert body["warning"]["code"] == "record_incomplete"
        assert invoke("messages", messages_event(body["request_id"]))[0] == 404


class TestQueue:
    @pytest.fixture
    def polyv(self, outage: Outage, aws: str, monkeypatch: pytest.MonkeyPatch) -> Any:
        import boto3

        url = boto3.client("sqs").create_queue(QueueName=f"dlq-{time.time_ns()}")["QueueUrl"]
        monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", url)
        runtime.reset()
        for client in (runtime.dynamodb_client(), runtime.quota_client()):
            client.meta.events.register("before-call.dynamodb", outage)

        def handle(evt: dict[str, Any]) -> list[str]:
            module = __import__("polyv.app", fromlist=["handler"])
            return [f["itemIdentifier"] for f in module.handler(evt, FakeContext())["batchItemFailures"]]

        return handle

    def test_a_lost_completion_is_settled_by_a_redelivery_and_never_sent_again(
        self, polyv: Any, outage: Outage, sandbox: ProviderSandbox
    ) -> None:
        moved = Clock()
        runtime.runtime().sender.store.now = moved
        message = {"phone_numbers": [A], "template_param_names": ["code"], "template_param_values": ["1234"]}
        outage.operations = {"TransactWriteItems:complete"}

        assert polyv(sqs_event(("m-1", message))) == ["m-1"], "not recorded: SQS delivers it again"
        outage.operations = set()
        assert polyv(sqs_event(("m-1", message), receive_count=2)) == ["m-1"], "the first claim still holds"
        for receive, seconds in ((3, 30), (4, 300)):
            moved.offset = seconds
            assert polyv(sqs_event(("m-1", message), receive_count=receive)) == []

        assert len(sandbox.calls) == 1
        lookup = messages_event("m-1")
        lookup["requestContext"]["identity"]["apiKeyId"] = "queue"  # a queued message's default tenant
        status, record = invoke("messages", lookup)
        assert (status, record["results"][0]["status"]) == (200, "ambiguous")


def black_hole() -> tuple[str, threading.Event]:
    """A DynamoDB that accepts connections and never answers (a hung process)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
        for conn in held:
            conn.close()
        listener.close()

    threading.Thread(target=accept, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", stop


@pytest.fixture
def hung_dynamodb(deploy: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    url, stop = black_hole()
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", url)
    monkeypatch.setenv("QUOTA_LIMITS", "")  # the default limits: every send takes quota first
    deploy("polyv")
    yield
    stop.set()


@pytest.mark.parametrize("count", [1, 100])
@pytest.mark.parametrize("key", [None, "hung"], ids=["no-key", "idempotency-key"])
def test_a_hung_dynamodb_is_answered_503_within_10_seconds(
    hung_dynamodb: None, sandbox: ProviderSandbox, count: int, key: str | None
) -> None:
    phones = [f"138{i:08d}" for i in range(count)]
    started = time.monotonic()

    status, body = invoke("polyv", polyv_event(*phones, key=key))

    assert (status, body["error"]["code"]) == (503, "dependency_unavailable")
    assert time.monotonic() - started < 10
    assert sandbox.calls == []


class TestHonestQuota:
    def test_a_failed_give_back_is_reported_as_quota_kept(
        self, outage: Outage, sandbox: ProviderSandbox, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        sandbox.add_fault(Fault(kind="code", operation="polyv.send", phone=A, code=-2))

        def no_give_back(params: dict[str, Any], **_: Any) -> None:
            if ":minus" in params.get("ExpressionAttributeValues", {}):
                raise EndpointConnectionError(endpoint_url="http://dynamodb.local")

        runtime.quota_client().meta.events.register("before-parameter-build.dynamodb.UpdateItem", no_give_back)

        status, body = invoke("polyv", polyv_event(A))

        assert status == 200
        assert body["results"][0]["status"] == "rejected"
        # The unit stayed counted, and the answer says so
        assert body["results"][0]["quota"] == {"remaining": 0}
        assert body["quota_remaining"] == {"account": 1999, "ip": 1999}
        sandbox.reset()
        assert invoke("polyv", polyv_event(A))[1]["results"][0]["status"] == "quota_exceeded"

    def test_a_given_back_unit_is_reported_back(self, outage: Outage, sandbox: ProviderSandbox) -> None:
        sandbox.add_fault(Fault(kind="code", operation="polyv.send", phone=A, code=-2))

        _, body = invoke("polyv", polyv_event(A))

        assert body["results"][0]["quota"] == {"remaining": 1}
        assert body["quota_remaining"] == {"account": 2000, "ip": 2000}


def test_a_large_answer_is_recorded_and_replayed(
    outage: Outage, sandbox: ProviderSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1000 numbers with long provider messages: over DynamoDB's 400 KB item limit as text."""
    monkeypatch.setenv("QUOTA_LIMITS", "phone_per_minute=0,phone_per_hour=0,phone_per_day=0,block_per_hour=0")
    runtime.reset()
    phones = [f"13{i:05d}{i % 10000:04d}" for i in range(1000)]
    first = polyv_event(*phones, key="large-1")

    status, body = invoke("polyv", first)
    replay = call("polyv", polyv_event(*phones, key="large-1"))

    assert status == 200
    assert "warning" not in body
    assert len(json.dumps(body)) > 100_000, "stored compressed"
    assert json.loads(replay["body"])["request_id"] == first["requestContext"]["requestId"]
    status, record = invoke("messages", messages_event(body["request_id"]))
    assert (status, len(record["results"])) == (200, 1000)


def test_a_record_past_dynamodbs_item_limit_as_text_is_kept(aws: str, tables: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from smsgw.messages import MessageLog

    log = MessageLog(tables.messages, retention=timedelta(days=1), client=runtime.dynamodb_client())
    results = [
        {"phone_number": f"+8613{i:09d}", "attempts": [{"provider": "aliyun", "code": "x" * 400}]} for i in range(1000)
    ]
    assert len(json.dumps(results)) > 400_000

    log.record("shop", "r-large", {"results": results}, received_at=datetime.now(UTC))

    found = log.find("shop", "r-large")
    assert found is not None
    assert found["results"] == results
