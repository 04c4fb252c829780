"""Webhooks to clients: one event per number's status change, signed per Standard Webhooks 1.0.

An event's id is derived from what it says (tenant, request, number, status): a duplicate receipt
or a retried delivery carries the same `webhook-id`, which is the receiver's idempotency key.
Events are sent from a queue: a failed delivery goes back to it with a growing delay, and after
the last try to its dead-letter queue. Destinations are the client's choice, so they are checked
before every delivery: https only, and never a private, loopback, link-local or otherwise
reserved address (the local stack may allow loopback, and plain http there).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import ipaddress
import json
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from smsgw.errors import InvalidRequest

# Seconds before each try after the first: SQS delays a message by at most 15 minutes, so the
# long waits of the specification's schedule are made of several such hops.
RETRY_DELAYS = (5, 300, 900, 900, 900, 900, 900, 900)
EVENT_TYPES = {
    "accepted": "message.accepted",
    "delivered": "message.delivered",
    "undelivered": "message.undelivered",
    "expired": "message.expired",
}


class UnsafeDestination(InvalidRequest):
    code = "callback_url_not_allowed"


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), the key being the secret's
    base64 part after `whsec_`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def event_id(tenant: str, request_id: str, phone: str, status: str) -> str:
    digest = hashlib.sha256(f"{tenant}|{request_id}|{phone}|{status}".encode()).digest()
    return "msg_" + base64.b32encode(digest[:20]).decode().rstrip("=").lower()


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    tenant: str
    url: str
    payload: dict[str, Any]
    attempt: int = 0

    def body(self) -> bytes:
        return json.dumps(self.payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()

    def to_message(self) -> str:
        return json.dumps(
            {"id": self.id, "tenant": self.tenant, "url": self.url, "payload": self.payload, "attempt": self.attempt}
        )

    @classmethod
    def from_message(cls, text: str) -> Event:
        data = json.loads(text)
        return cls(data["id"], data["tenant"], data["url"], data["payload"], int(data.get("attempt", 0)))


def event(
    tenant: str, url: str, *, request_id: str, phone: str, status: str, provider: str | None, **data: Any
) -> Event:
    payload = {
        "type": EVENT_TYPES[status],
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": {"request_id": request_id, "phone_number": phone, "status": status, "provider": provider, **data},
    }
    return Event(event_id(tenant, request_id, phone, status), tenant, url, payload)


def check_destination(url: str, *, allow_loopback: bool = False, resolve: bool = True) -> None:
    """Refuse a destination a webhook must never reach; `resolve=False` checks the URL's form only
    (when the request names it), `resolve=True` every address its host has (before each delivery)."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host or parts.username or parts.password or len(url) > 2048:
        raise UnsafeDestination("callback_url must be an absolute https URL without credentials.")
    loopback_host = host in ("localhost",) or _is_loopback_literal(host)
    if parts.scheme != "https" and not (allow_loopback and parts.scheme == "http" and loopback_host):
        raise UnsafeDestination("callback_url must be an https URL.")
    if not resolve or _is_literal(host):
        if _literal_refused(host, allow_loopback):
            raise UnsafeDestination("callback_url must not point at a private, loopback or link-local address.")
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)}
    except OSError:
        raise UnsafeDestination("callback_url's host does not resolve.") from None
    for address in addresses:
        if _refused(ipaddress.ip_address(str(address).split("%")[0]), allow_loopback):
            raise UnsafeDestination("callback_url must not point at a private, loopback or link-local address.")


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback_literal(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _literal_refused(host: str, allow_loopback: bool) -> bool:
    try:
        return _refused(ipaddress.ip_address(host), allow_loopback)
    except ValueError:
        return host == "localhost" and not allow_loopback


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool) -> bool:
    if address.is_loopback:
        return not allow_loopback
    return (
        address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


@dataclass(frozen=True, slots=True)
class Delivered:
    ok: bool
    retry: bool
    status: int | None
    """The receiver's HTTP status, or None when no answer came."""


Post = Callable[[str, bytes, Mapping[str, str]], int]
"""An HTTP POST (url, body, headers) → the status it answered; raises on a transport failure."""


def deliver(event: Event, secret: str, post: Post, *, allow_loopback: bool = False) -> Delivered:
    """One try: a 2xx is done; 410 Gone and refused destinations are given up; the rest retried."""
    try:
        check_destination(event.url, allow_loopback=allow_loopback)
    except UnsafeDestination:
        return Delivered(ok=False, retry=False, status=None)
    timestamp = int(time.time())
    body = event.body()
    headers = {
        "content-type": "application/json",
        "webhook-id": event.id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, event.id, timestamp, body),
    }
    try:
        status = post(event.url, body, headers)
    except Exception:
        return Delivered(ok=False, retry=True, status=None)
    if 200 <= status < 300:
        return Delivered(ok=True, retry=False, status=status)
    return Delivered(ok=False, retry=status != 410, status=status)


class Outbox(Protocol):
    """Where events go back to (the webhook queue, with a delay) or end (its dead-letter queue)."""

    def put(self, events: Sequence[Event], *, delay_seconds: int = 0) -> None: ...


class WebhookSender:
    """The webhook function: each queued event delivered, signed with its tenant's secret; a failed
    delivery goes back to the queue with the next delay of `RETRY_DELAYS`, then to the dead-letter
    queue. A message is done once each of its events is delivered, queued again or dead-lettered.

    A message's events are posted side by side (`POSTS` at once, for all the messages of a batch:
    no more than one post per message of a full batch made before), so that a message of 200 events
    alone does not take 200 posts' time. An event not yet posted when the
    invocation's time runs short goes back to the queue as it is (the same try), rather than be
    cut off by the function's timeout, which would deliver the whole message again."""

    def __init__(
        self,
        secrets: Callable[[], Mapping[str, Any]],
        retries: Outbox,
        dead_letters: Outbox,
        post: Post,
        *,
        allow_loopback: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.secrets = secrets
        self.retries = retries
        self.dead_letters = dead_letters
        self.post = post
        self.allow_loopback = allow_loopback
        self.clock = clock

    def process(self, body: str, *, deadline: float | None = None) -> None:
        """`deadline`: the `clock` time after which no post starts (None: no limit)."""
        events = [Event.from_message(json.dumps(item)) for item in json.loads(body)]
        secrets = self.secrets()

        def attempt(item: Event) -> Delivered | None:
            if deadline is not None and self.clock() > deadline:
                return None  # not tried
            secret = secrets.get(item.tenant)
            if not isinstance(secret, str):
                return Delivered(ok=False, retry=False, status=None)
            return deliver(item, secret, self.post, allow_loopback=self.allow_loopback)

        later: dict[int, list[Event]] = {}
        dead: list[Event] = []
        for item, outcome in zip(events, _posts().map(attempt, events), strict=True):
            if outcome is None:
                later.setdefault(0, []).append(item)
            elif outcome.ok:
                continue
            elif outcome.retry and item.attempt < len(RETRY_DELAYS):
                retry = Event(item.id, item.tenant, item.url, item.payload, item.attempt + 1)
                later.setdefault(RETRY_DELAYS[item.attempt], []).append(retry)
            else:
                dead.append(item)
        for delay, retried in later.items():
            self.retries.put(retried, delay_seconds=delay)
        if dead:
            self.dead_letters.put(dead)


POSTS = 10


@functools.cache
def _posts() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=POSTS, thread_name_prefix="webhook-post")
