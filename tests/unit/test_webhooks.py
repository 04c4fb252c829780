"""Webhook signatures against the specification's known answer and an independent implementation
(the `standardwebhooks` package), event ids, and the destinations a webhook must never reach."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from smsgw.webhooks import UnsafeDestination, check_destination, deliver, event, event_id, sign

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
