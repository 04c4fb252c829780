"""Delivery receipts in process, against DynamoDB Local, moto server (secrets, queues) and the
provider sandbox: receipt routes, the receipts consumer, the status API, webhooks signed and
verified by an independent library, and reconciliation's expiry."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from standardwebhooks import Webhook

from local.sandbox import ProviderSandbox
from smsgw import runtime
from smsgw.deliveries import DeliveryStore
from smsgw.reconcile import Reconciler
from tests.support import FakeContext, Tables, call, event, invoke

TOKENS = {"aliyun": "aliyun-receipt-token-0001", "ronglian": "ronglian-receipt-token-01"}
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TENANT = "shop"


class Receiver:
    """A client's webhook endpoint on loopback: verifies every signature, counts webhook ids."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.ids: list[str] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                payload = Webhook(WEBHOOK_SECRET).verify(body, dict(self.headers.items()))
                received.events.append(payload)
                received.ids.append(self.headers["webhook-id"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()


@pytest.fixture
def wired(deploy: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Aliyun's function with webhooks, the receipts function and the webhook function, on one stack."""
    sqs, secrets = boto3.client("sqs"), boto3.client("secretsmanager")
    queues = {
        name: sqs.create_queue(QueueName=f"{name}-{uuid.uuid4().hex[:6]}")["QueueUrl"] for name in ("r", "w", "d")
    }
    tokens = secrets.create_secret(Name=f"tokens-{uuid.uuid4().hex[:6]}", SecretString=json.dumps(TOKENS))["ARN"]
    hooks = secrets.create_secret(
        Name=f"hooks-{uuid.uuid4().hex[:6]}", SecretString=json.dumps({TENANT: WEBHOOK_SECRET})
    )["ARN"]
    for name, value in {
        "RECEIPT_TOKEN_SECRET_ID": tokens,
        "RECEIPTS_QUEUE_URL": queues["r"],
        "WEBHOOK_QUEUE_URL": queues["w"],
        "WEBHOOK_DEAD_LETTER_QUEUE_URL": queues["d"],
        "WEBHOOK_SECRET_ID": hooks,
        "WEBHOOK_ALLOW_LOOPBACK": "true",
    }.items():
        monkeypatch.setenv(name, value)
    deploy("aliyun")
    import smsgw.workers

    smsgw.workers.webhook_sender.cache_clear()
    return queues


def send(phones: list[str], callback_url: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "template_code": "SMS_1",
        "sign_name": "Shop",
        "messages": [{"phone_number": p, "template_param": {"code": "1"}} for p in phones],
    }
    if callback_url:
        body["callback_url"] = callback_url
    evt = event("aliyun-batch-send.json", body=body)
    evt["requestContext"]["identity"]["apiKeyId"] = TENANT
    status, answer = invoke("aliyun", evt)
    assert status == 200, answer
    return answer


def push(reports: list[dict[str, Any]], token: str = TOKENS["aliyun"]) -> dict[str, Any]:
    evt = event("aliyun-batch-send.json", raw_body=json.dumps(reports))
    path = f"/v1/receipts/aliyun/{token}"
    evt.update(path=path, resource="/v1/receipts/aliyun/{token}", pathParameters={"token": token})
    return call("receipts", evt)


def report(answer: dict[str, Any], phone: str, *, success: bool = True, code: str = "DELIVERED") -> dict[str, Any]:
    [result] = [r for r in answer["results"] if r["phone_number"] == phone]
    return {
        "phone_number": phone.removeprefix("+86"),
        "send_time": "2026-12-01 10:00:00",
        "report_time": "2026-12-01 10:00:05",
        "success": success,
        "err_code": code,
        "err_msg": "",
        "sms_size": "1",
        "biz_id": result["message_id"],
        "out_id": answer["request_id"],
    }


def drain(queue_url: str, function: str) -> list[str]:
    """Feed a queue's messages to a function as Lambda would; the ids of the failed records."""
    sqs, failed = boto3.client("sqs"), []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
        module = __import__(f"{function}.app", fromlist=["handler"])
        answer = module.handler({"Records": records}, FakeContext())
        failed += [f["itemIdentifier"] for f in answer["batchItemFailures"]]
        for m in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return failed


def lookup(request_id: str) -> dict[str, Any]:
    evt = event("polyv-send.json")
    evt.update(httpMethod="GET", path=f"/v1/messages/{request_id}", resource="/v1/messages/{requestId}", body=None)
    evt["pathParameters"] = {"requestId": request_id}
    evt["requestContext"]["identity"]["apiKeyId"] = TENANT
    status, record = invoke("messages", evt)
    assert status == 200, record
    return record


def test_receipts_move_each_number_once_and_webhooks_follow(
    wired: dict[str, str], sandbox: ProviderSandbox, receiver: Receiver
) -> None:
    a, b = "+8613800138000", "+8613900139000"
    answer = send([a, b], receiver.url)

    delivered, failed = report(answer, a), report(answer, b, success=False, code="USER_REJECT")
    late = report(answer, a, success=False, code="UNKNOWN")  # after the final state: changes nothing
    assert push([failed, delivered])["statusCode"] == 200
    assert json.loads(push([delivered, late])["body"]) == {"code": 0, "msg": "接收成功"}
    assert drain(wired["r"], "receipts") == []
    drain(wired["w"], "webhooks")

    results = {r["phone_number"]: r["delivery"] for r in lookup(answer["request_id"])["results"]}
    assert results[a]["status"] == "delivered"
    assert (results[b]["status"], results[b]["reason"]) == ("undelivered", "USER_REJECT")
    # One signed webhook per status change, however many receipts
    assert sorted(e["type"] for e in receiver.events) == [
        "message.accepted",
        "message.accepted",
        "message.delivered",
        "message.undelivered",
    ]
    assert len(set(receiver.ids)) == 4


def test_a_receipt_before_its_send_is_recorded_waits(wired: dict[str, str], sandbox: ProviderSandbox) -> None:
    early = {**report(send(["+8613700137000"]), "+8613700137000"), "biz_id": "not-yet-recorded^0"}
    assert push([early])["statusCode"] == 200

    assert len(drain(wired["r"], "receipts")) == 1, "a batch item failure: SQS delivers it again later"


@pytest.mark.parametrize(
    ("token", "body", "status"),
    [
        ("wrong-token-000000000000", [{"biz_id": "1"}], 403),
        (TOKENS["aliyun"], [{"biz_id": "1", "success": "yes"}], 400),
        (TOKENS["aliyun"], {"not": "an array"}, 400),
    ],
)
def test_a_wrong_token_or_a_malformed_body_queues_nothing(
    wired: dict[str, str], token: str, body: Any, status: int
) -> None:
    assert push(body, token)["statusCode"] == status
    assert boto3.client("sqs").receive_message(QueueUrl=wired["r"]).get("Messages", []) == []


def test_aliyun_checks_the_url_with_a_get(wired: dict[str, str]) -> None:
    evt = event("polyv-send.json")
    path = f"/v1/receipts/aliyun/{TOKENS['aliyun']}"
    evt.update(httpMethod="GET", path=path, resource="/v1/receipts/aliyun/{token}", body=None)
    evt["pathParameters"] = {"token": TOKENS["aliyun"]}
    answer = call("receipts", evt)
    assert (answer["statusCode"], json.loads(answer["body"])) == (200, {"code": 0, "msg": "成功"})


def test_numbers_no_receipt_settled_expire_after_72_hours(
    wired: dict[str, str], sandbox: ProviderSandbox, tables: Any, dynamodb_url: str
) -> None:
    answer = send(["+8613600136000"])
    store = DeliveryStore(tables.messages, client=runtime.dynamodb_client(), retention_seconds=86_400)

    early = Reconciler(store, None, now=lambda: time.time() + 3600).run()
    late = Reconciler(store, None, now=lambda: time.time() + 73 * 3600).run()
    again = Reconciler(store, None, now=lambda: time.time() + 74 * 3600).run()

    assert (early.calls, early.expired) == (1, 0)
    assert (late.expired, late.closed) == (1, 1)
    assert again.calls == 0, "a closed call leaves the open index"
    assert lookup(answer["request_id"])["results"][0]["delivery"]["status"] == "expired"


def test_the_receipt_index_of_many_calls_is_written_in_side_by_side_batches(
    wired: dict[str, str], sandbox: ProviderSandbox, tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SendInterSms makes one call per number: 60 numbers are 60 index items, three BatchWriteItem
    of at most 25 that run at once (one round), not one after another."""
    spans: dict[int, list[float]] = {}  # per thread: each write runs on a thread of its own
    sizes: list[int] = []
    session = boto3.session.Session()

    def started(params: dict[str, Any], **_: Any) -> None:
        sizes.append(sum(len(items) for items in params["RequestItems"].values()))
        spans[threading.get_ident()] = [time.monotonic()]
        time.sleep(0.2)  # each write takes long enough that writes one after another could not overlap

    def ended(**_: Any) -> None:
        spans[threading.get_ident()].append(time.monotonic())

    session.events.register("provide-client-params.dynamodb.BatchWriteItem", started)
    session.events.register("after-call.dynamodb.BatchWriteItem", ended)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    runtime.reset()
    phones = [f"+85291234{i:03d}" for i in range(60)]
    body = {"phone_numbers": phones, "country_code": "HK", "sign_name": "Shop", "template_code": "SMS_1"}
    evt = event("aliyun-send.json", body=body)
    evt["requestContext"]["identity"]["apiKeyId"] = TENANT

    status, answer = invoke("aliyun", evt)

    assert (status, answer["summary"]["accepted"]) == (200, 60)
    assert sorted(sizes) == [10, 25, 25]
    assert len(spans) == 3
    assert max(s[0] for s in spans.values()) < min(s[-1] for s in spans.values()), "the three writes overlap"
    store = DeliveryStore(tables.messages, client=runtime.dynamodb_client(), retention_seconds=86_400)
    for result in answer["results"]:
        indexed = store.indexed("aliyun", result["message_id"])
        assert indexed is not None
        assert indexed.numbers == (result["phone_number"],)
