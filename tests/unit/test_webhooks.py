"""Webhook signatures against the specification's known answer and an independent implementation
(the `standardwebhooks` package), event ids, and the destinations a webhook must never reach."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from smsgw.webhooks import Event, UnsafeDestination, WebhookSender, check_destination, deliver, event, event_id, sign

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_the_specifications_known_answer() -> None:
    assert (
        sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(st.binary(min_size=24, max_size=64), st.text(min_size=1, max_size=40), st.binary(max_size=300))
def test_an_independent_implementation_verifies_every_signature(key: bytes, message: str, body: bytes) -> None:
    secret = "whsec_" + base64.b64encode(key).decode()
    timestamp = 1_700_000_000
    expected = Webhook(secret).sign(
        message, __import__("datetime").datetime.fromtimestamp(timestamp), body.decode("latin-1")
    )
    assert sign(secret, message, timestamp, body.decode("latin-1").encode()) == expected


def test_a_delivery_is_verified_by_the_receivers_library() -> None:
    received: dict[str, Any] = {}

    def post(url: str, body: bytes, headers: Any) -> int:
        received.update(body=body, headers=dict(headers))
        return 204

    sent = event(
        "shop",
        "https://93.184.216.34/hook",
        request_id="r-1",
        phone="+8613800138000",
        status="delivered",
        provider="aliyun",
    )
    outcome = deliver(sent, SECRET, post)

    assert outcome.ok
    payload = Webhook(SECRET).verify(received["body"], received["headers"])
    assert payload["type"] == "message.delivered"
    assert payload["data"]["phone_number"] == "+8613800138000"
    assert received["headers"]["webhook-id"] == sent.id


def test_event_ids_are_the_same_for_the_same_change_only() -> None:
    one = event_id("shop", "r-1", "+8613800138000", "delivered")
    assert one == event_id("shop", "r-1", "+8613800138000", "delivered")
    assert one != event_id("shop", "r-1", "+8613800138000", "undelivered")
    assert one != event_id("shop", "r-2", "+8613800138000", "delivered")
    assert one.startswith("msg_")


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "https://127.0.0.1/hook",
        "https://10.0.0.5/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[fe80::1]/hook",
        "https://100.64.0.1/hook",
        "https://user:pass@example.com/hook",
        "https://localhost/hook",
        "ftp://example.com/hook",
    ],
)
def test_destinations_a_webhook_never_reaches(url: str) -> None:
    with pytest.raises(UnsafeDestination):
        check_destination(url, resolve=False)


def test_loopback_only_where_allowed() -> None:
    check_destination("http://127.0.0.1:8080/hook", allow_loopback=True, resolve=False)
    with pytest.raises(UnsafeDestination):
        check_destination("http://10.0.0.1/hook", allow_loopback=True, resolve=False)


@pytest.mark.parametrize(
    ("status", "ok", "retry"),
    [
        (200, True, False),
        (204, True, False),
        (302, False, True),
        (410, False, False),
        (429, False, True),
        (500, False, True),
    ],
)
def test_what_each_answer_means(status: int, ok: bool, retry: bool) -> None:
    sent = event(
        "shop", "https://93.184.216.34/hook", request_id="r", phone="+8613800138000", status="accepted", provider=None
    )
    outcome = deliver(sent, SECRET, lambda *_: status)
    assert (outcome.ok, outcome.retry) == (ok, retry)


def test_the_body_is_what_was_signed() -> None:
    sent = event(
        "shop", "https://93.184.216.34/h", request_id="r", phone="+8613800138000", status="expired", provider="aliyun"
    )
    assert json.loads(sent.body())["data"]["status"] == "expired"


class Outbox:
    """The webhook queue or its dead-letter queue: what was put back, with its delay."""

    def __init__(self) -> None:
        self.put_back: list[tuple[int, list[Event]]] = []

    def put(self, events: Sequence[Event], *, delay_seconds: int = 0) -> None:
        self.put_back.append((delay_seconds, list(events)))


def _message(count: int) -> str:
    events = [
        event("shop", "http://127.0.0.1/h", request_id="r", phone=f"+86138{i:08d}", status="accepted", provider=None)
        for i in range(count)
    ]
    return json.dumps([json.loads(e.to_message()) for e in events])


class Receiver:
    """A client's endpoint: how many posts it had in flight at once, and which ids it got."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ids: list[str] = []
        self.in_flight = self.most = 0
        self.lock = threading.Lock()

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        time.sleep(self.seconds)
        with self.lock:
            self.in_flight -= 1
            self.ids.append(headers["webhook-id"])
        return 204


def _sender(receiver: Receiver, retries: Outbox, clock: Any = time.monotonic) -> WebhookSender:
    return WebhookSender(lambda: {"shop": SECRET}, retries, Outbox(), receiver.post, allow_loopback=True, clock=clock)


def test_the_events_of_a_message_are_posted_side_by_side() -> None:
    receiver, retries = Receiver(0.05), Outbox()

    _sender(receiver, retries).process(_message(40))

    assert len(set(receiver.ids)) == 40
    assert receiver.most > 1
    assert retries.put_back == []


def test_events_not_posted_by_the_deadline_go_back_to_the_queue_as_they_are() -> None:
    receiver, retries = Receiver(0.01), Outbox()
    message = _message(100)
    # the clock is the posts done: none starts once more than 5 are over
    sender = _sender(receiver, retries, clock=lambda: len(receiver.ids))

    sender.process(message, deadline=5)

    [(delay, untried)] = retries.put_back
    everything = [e["id"] for e in json.loads(message)]
    assert delay == 0
    assert receiver.ids
    assert untried
    assert sorted(receiver.ids + [e.id for e in untried]) == sorted(everything), "each event posted or put back"
    assert {e.attempt for e in untried} == {0}, "not tried: the same try again"


def test_past_the_deadline_nothing_is_posted() -> None:
    receiver, retries = Receiver(0), Outbox()

    _sender(receiver, retries).process(_message(3), deadline=time.monotonic() - 1)

    assert receiver.ids == []
    assert [(delay, len(events)) for delay, events in retries.put_back] == [(0, 3)]
