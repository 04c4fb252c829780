"""Delivery tracking end to end on a local stack: a thousand numbers sent through Aliyun
SendBatchSms and Ronglian, their receipts pushed by the sandbox with duplicates, reordering and
losses, reconciliation recovering what was lost (Aliyun's QuerySendDetails; Ronglian's numbers
expire after 72 hours), and a client's webhook URL that verifies every signature. Then the receipt
route itself: how fast it answers Aliyun, and what it refuses."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from local.receipt_pushes import aliyun_body, check_aliyun_answer, delivered_aliyun_reports, push_aliyun, send, settle
from local.running import DELIVERY_KEYS
from local.sandbox import ProviderSandbox
from local.sandbox.inbox import Sms
from local.stack import LOCAL_RECEIPT_TOKENS, LOCAL_WEBHOOK_SECRET, STATE_FILE, LocalStack
from tests.support import LoopbackEndpoint

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
KEY = next(iter(DELIVERY_KEYS.values()))
REQUESTS_PER_PROVIDER, NUMBERS_PER_REQUEST = 5, 100
# Per number: 10% of the receipts duplicated, 10% reordered (pushed at once, possibly before the
# send is recorded, or after the others), 10% lost; 10% of the numbers not delivered.
RECEIPT_FAULTS = {"delay": 0.5, "duplicate": 0.1, "reorder": 0.1, "lose": 0.1, "fail": 0.1, "seed": 20261201}
FINAL = {"delivered", "undelivered", "expired"}


class Client:
    """A client's webhook URL on loopback: each signature verified by the standardwebhooks package,
    each delivery counted by its webhook-id."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.deliveries: Counter[str] = Counter()
        self.forged = 0
        self._lock = threading.Lock()
        self.endpoint = LoopbackEndpoint(self.take)
        self.url = f"{self.endpoint.url}/hooks"

    def take(self, path: str, headers: Mapping[str, str], body: bytes) -> int:
        try:
            payload = Webhook(LOCAL_WEBHOOK_SECRET).verify(body, dict(headers))
        except WebhookVerificationError:
            with self._lock:
                self.forged += 1
            return 400
        webhook_id = next(v for k, v in headers.items() if k.lower() == "webhook-id")
        with self._lock:
            self.deliveries[webhook_id] += 1
            self.events[webhook_id] = payload
        return 204

    def statuses(self) -> dict[str, list[str]]:
        """Each number's events' statuses, in no particular order."""
        found: dict[str, list[str]] = {}
        with self._lock:
            for payload in self.events.values():
                found.setdefault(payload["data"]["phone_number"], []).append(payload["data"]["status"])
        return found


@pytest.fixture
def client() -> Iterator[Client]:
    receiver = Client()
    yield receiver
    receiver.endpoint.close()


@pytest.fixture
def sandbox(delivery_stack: LocalStack) -> Iterator[ProviderSandbox]:
    assert delivery_stack.sandbox is not None
    delivery_stack.sandbox.reset()
    yield delivery_stack.sandbox
    delivery_stack.sandbox.reset()


def post(stack: LocalStack, path: str, body: dict[str, Any]) -> dict[str, Any]:
    return send(stack, KEY, path, body)


def deliveries(stack: LocalStack, request_id: str) -> dict[str, dict[str, Any]]:
    """Each accepted number's delivery, as GET /v1/messages/{requestId} answers it."""
    answer = requests.get(f"{stack.api_url}/v1/messages/{request_id}", headers={"x-api-key": KEY}, timeout=30)
    assert answer.status_code == 200, answer.text
    return {r["phone_number"]: r["delivery"] for r in answer.json()["results"]}


def reconcile(stack: LocalStack, ahead: str) -> dict[str, int]:
    """`make reconcile AHEAD=…` on this stack."""
    assert stack.state_dir is not None
    done = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "local.reconcile", "--state", str(stack.state_dir / STATE_FILE), "--ahead", ahead],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary: dict[str, int] = json.loads(done.stdout)
    return summary


def expected(sms: Sms, *, reconciled: bool) -> str:
    """What a number's status must be: its receipt's, or reconciliation's when the receipt was lost."""
    assert sms.outcome is not None
    if sms.receipt == "pushed" or (reconciled and sms.sent.provider == "aliyun"):
        return sms.outcome
    assert sms.receipt == "lost", sms.to_dict()
    return "expired" if reconciled else "accepted"


def send_everything(stack: LocalStack, callback_url: str) -> list[dict[str, Any]]:
    """Ten requests of a hundred numbers, half through Aliyun SendBatchSms, half through Ronglian."""
    numbers = [f"1370000{n:04d}" for n in range(2 * REQUESTS_PER_PROVIDER * NUMBERS_PER_REQUEST)]
    chunks = [numbers[i : i + NUMBERS_PER_REQUEST] for i in range(0, len(numbers), NUMBERS_PER_REQUEST)]
    aliyun = [
        (
            "/v1/aliyun/batch-messages",
            {
                "template_code": "SMS_000002",
                "sign_name": "SmsGateway",
                "messages": [{"phone_number": n, "template_param": {"code": "123456"}} for n in chunk],
                "callback_url": callback_url,
            },
        )
        for chunk in chunks[:REQUESTS_PER_PROVIDER]
    ]
    ronglian = [
        (
            "/v1/ronglian/messages",
            {"phone_numbers": chunk, "template_id": "1", "datas": ["123456", "5"], "callback_url": callback_url},
        )
        for chunk in chunks[REQUESTS_PER_PROVIDER:]
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda request: post(stack, *request), [*aliyun, *ronglian]))


def test_a_thousand_numbers_end_with_their_true_status_and_one_webhook_per_change(
    delivery_stack: LocalStack, sandbox: ProviderSandbox, client: Client
) -> None:
    stack = delivery_stack
    sandbox.configure_receipts(**RECEIPT_FAULTS)

    answers = send_everything(stack, client.url)
    settle(stack)
    messages = {"+" + m.sent.msisdn: m for m in sandbox.messages()}
    assert len({r["phone_number"] for a in answers for r in a["results"]}) == len(messages) == 1000

    def now_known() -> dict[str, str]:
        found = {}
        for answer in answers:
            found.update({phone: d["status"] for phone, d in deliveries(stack, answer["request_id"]).items()})
        return found

    # What the receipts said, duplicated, reordered and all; the lost ones are still accepted
    assert now_known() == {phone: expected(sms, reconciled=False) for phone, sms in messages.items()}
    receipts = Counter(m.receipt for m in messages.values())
    assert receipts["lost"] > 0
    assert any(len(m.pushes) > 1 for m in messages.values()), "no receipt was duplicated"

    # Reconciliation ten minutes on: Aliyun's lost receipts recovered through QuerySendDetails
    lost_aliyun = [m for m in messages.values() if m.receipt == "lost" and m.sent.provider == "aliyun"]
    first = reconcile(stack, "700")
    stack.drain(timeout=240)
    assert (first["queried"], first["settled"], first["errors"]) == (len(lost_aliyun), len(lost_aliyun), 0)

    # Three days on: Ronglian's, which no one can ask about, expire
    lost_ronglian = [m for m in messages.values() if m.receipt == "lost" and m.sent.provider == "ronglian"]
    later = reconcile(stack, "73h")
    stack.drain(timeout=240)
    assert (later["expired"], later["errors"]) == (len(lost_ronglian), 0)
    final = now_known()
    assert final == {phone: expected(sms, reconciled=True) for phone, sms in messages.items()}
    assert set(final.values()) == FINAL

    # One signed webhook per status change, accepted then the final one, each delivered once (a
    # webhook delivered again, SQS being at least once, would carry the same id)
    assert client.forged == 0
    assert len(client.events) == 2 * len(messages)
    assert client.deliveries.total() == len(client.events), client.deliveries.most_common(3)
    assert {phone: sorted(statuses) for phone, statuses in client.statuses().items()} == {
        phone: sorted(["accepted", final[phone]]) for phone in messages
    }

    # Receipts contradicting a final status, for every tenth number, change nothing and send nothing
    for sms in list(messages.values())[::10]:
        sandbox.act(sms.id, "fail" if final["+" + sms.sent.msisdn] == "delivered" else "deliver")
    settle(stack)
    assert now_known() == final
    assert len(client.events) == 2 * len(messages)
    assert client.deliveries.total() == len(client.events)


def receipts_queue_records(stack: LocalStack) -> tuple[int, int]:
    """Records the receipts consumer was given so far, and messages waiting on its queue."""
    sqs = boto3.client(
        "sqs", endpoint_url=stack.moto_url, region_name="us-east-1", aws_access_key_id="e2e", aws_secret_access_key="-"
    )
    attributes = sqs.get_queue_attributes(QueueUrl=stack.queues["ReceiptsQueue"], AttributeNames=["All"])["Attributes"]
    waiting = int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])
    return stack.poller_stats()["ReceiptsQueue"].records, waiting


def test_the_aliyun_receipt_route_answers_every_push_and_refuses_a_wrong_token_or_body(
    delivery_stack: LocalStack, sandbox: ProviderSandbox
) -> None:
    stack = delivery_stack
    answer, reports = delivered_aliyun_reports(stack, KEY, 10)
    url = stack.receipt_urls()["aliyun"]

    # The receipts Aliyun pushed, pushed again, each answered as Aliyun wants it, though matched to a
    # send settled already (how fast: `make bench`, the receipt route on the local stack)
    with requests.Session() as http:
        for number in range(50):
            check_aliyun_answer(push_aliyun(http, url, aliyun_body([reports[number % len(reports)]])))
    stack.drain(timeout=240)
    assert {d["status"] for d in deliveries(stack, answer["request_id"]).values()} == {"delivered"}

    # A wrong token (403) and a body that is no SmsReport array (400): nothing queued
    before = receipts_queue_records(stack)
    wrong = requests.post(f"{url.rsplit('/', 1)[0]}/not-this-gateways-token", json=reports[:1], timeout=10)
    malformed = requests.post(url, json={"phone_number": "13611110000"}, timeout=10)
    time.sleep(1)
    stack.drain(timeout=60)
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (403, "invalid_receipt_token")
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (400, "invalid_request")
    assert receipts_queue_records(stack) == before
    assert LOCAL_RECEIPT_TOKENS["aliyun"] in url
