"""What a recorded send sets going for delivery tracking: the receipt index of its accepted
numbers (smsgw.deliveries) and, when the request names a `callback_url`, its `message.accepted`
webhook events, queued for the webhook function (smsgw.webhooks)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from smsgw.deliveries import DeliveryStore, sent_calls
from smsgw.errors import DependencyUnavailable

if TYPE_CHECKING:
    from smsgw.webhooks import Event

EVENTS_PER_MESSAGE = 200
"""Events in one queue message: 200 stay well within SQS's 256 KiB."""


class WebhookQueue:
    """Events to the webhook function's queue, several to a message."""

    def __init__(self, queue_url: str, *, client: Any) -> None:
        self.queue_url = queue_url
        self.client = client

    def put(self, events: Sequence[Event], *, delay_seconds: int = 0) -> None:
        for start in range(0, len(events), EVENTS_PER_MESSAGE):
            chunk = events[start : start + EVENTS_PER_MESSAGE]
            body = json.dumps([json.loads(e.to_message()) for e in chunk], separators=(",", ":"))
            try:
                self.client.send_message(QueueUrl=self.queue_url, MessageBody=body, DelaySeconds=delay_seconds)
            except Exception as exc:
                raise DependencyUnavailable(f"SQS is unavailable ({type(exc).__name__})") from exc


class Tracking:
    def __init__(
        self, deliveries: DeliveryStore, webhooks: WebhookQueue | None, *, allow_loopback: bool = False
    ) -> None:
        self.deliveries = deliveries
        self.webhooks = webhooks
        self.allow_loopback = allow_loopback

    def check_callback(self, url: str | None) -> None:
        """A request's `callback_url`, refused (400) before anything is sent if no webhook may go there."""
        if url is not None:
            # smsgw.webhooks only for a request that names a callback: not at every cold start
            from smsgw.webhooks import check_destination

            check_destination(url, allow_loopback=self.allow_loopback, resolve=False)

    def index_items(
        self, tenant: str, request_id: str, body: Mapping[str, Any], callback_url: str | None
    ) -> list[dict[str, Any]]:
        calls = sent_calls(body.get("results", []), body.get("provider"), body.get("operation"))
        return self.deliveries.index_items(tenant, request_id, calls, callback_url=callback_url)

    def write_index(self, items: Sequence[dict[str, Any]]) -> None:
        self.deliveries.write_index(items)

    def accepted(self, tenant: str, request_id: str, body: Mapping[str, Any], callback_url: str | None) -> None:
        """The `message.accepted` events of a send, one per accepted handset."""
        if callback_url is None or self.webhooks is None:
            return
        from smsgw.webhooks import event

        seen: set[str] = set()
        events = []
        for result in body.get("results", []):
            phone = result["phone_number"]
            if result["status"] != "accepted" or phone in seen:
                continue
            seen.add(phone)
            provider = result.get("provider") or body.get("provider")
            events.append(
                event(tenant, callback_url, request_id=request_id, phone=phone, status="accepted", provider=provider)
            )
        if events:
            self.webhooks.put(events)
