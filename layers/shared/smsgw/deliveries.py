"""Delivery status per number, in the message log table: what receipts and reconciliation learnt.

Three kinds of items beside the requests' records:
- `receipt#<provider>#<message id>`: written when a send is recorded, one per provider call that
  accepted numbers (Aliyun's `BizId`, Ronglian's `smsMessageSid`): which tenant, request and
  numbers a receipt for that id is about, and where the tenant wants webhooks. While some of its
  numbers have no final status it is in the `open` index, which reconciliation reads.
- `delivery#<tenant>#<request id>#<number>`: a number's final status (`delivered`, `undelivered`
  with the provider's reason, `expired`), written once: a conditional write makes the state
  machine monotonic, so a late, duplicate or reordered receipt never moves a final state.
- no item: the number is `accepted` (queued at the provider), or its provider sends no receipts
  (Polyv: `receipt: "unavailable"`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from smsgw.errors import DependencyUnavailable

OPEN_INDEX = "open"
RECEIPT_PROVIDERS = frozenset({"aliyun", "ronglian"})
"""Providers that report delivery; Polyv's numbers stay `accepted`."""


class Delivery(StrEnum):
    ACCEPTED = "accepted"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Sent:
    """One provider call's accepted numbers, as the receipt index keeps them."""

    provider: str
    operation: str
    message_id: str
    numbers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Indexed:
    """What a receipt's message id is about."""

    provider: str
    operation: str
    message_id: str
    tenant: str
    request_id: str
    numbers: tuple[str, ...]
    accepted_at: int
    callback_url: str | None


@dataclass(frozen=True, slots=True)
class Change:
    """A number's status moved to a final one (an event worth a webhook)."""

    indexed: Indexed
    phone: str
    status: Delivery
    reason: str | None
    at: str


def receipt_key(provider: str, message_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"receipt#{provider}#{message_id}"}}


def delivery_key(tenant: str, request_id: str, phone: str) -> dict[str, Any]:
    return {"pk": {"S": f"delivery#{tenant}#{request_id}#{phone}"}}


def sent_calls(results: Iterable[Mapping[str, Any]], provider: str | None, operation: str | None) -> list[Sent]:
    """The provider calls of an answer's accepted numbers that will have receipts, grouped by the
    provider's message id (an answer of a provider route names its provider once; the unified
    route's results name theirs)."""
    calls: dict[tuple[str, str, str], list[str]] = {}
    for result in results:
        attempts = result.get("attempts") or []
        route_provider = result.get("provider") or provider
        route_operation = attempts[-1]["operation"] if attempts else operation
        message_id = result.get("message_id")
        if result.get("status") != "accepted" or route_provider not in RECEIPT_PROVIDERS or not message_id:
            continue
        numbers = calls.setdefault((route_provider, str(route_operation), str(message_id)), [])
        if result["phone_number"] not in numbers:
            numbers.append(result["phone_number"])
    return [Sent(p, o, m, tuple(n)) for (p, o, m), n in calls.items()]


BATCH_WRITE_ITEMS = 25  # DynamoDB's ceiling on the items of one BatchWriteItem


class DeliveryStore:
    def __init__(self, table_name: str, *, client: Any, retention_seconds: int) -> None:
        self.table_name = table_name
        self.client = client
        self.retention = retention_seconds

    # -- the index, written with a send's record ---------------------------------------------

    def index_items(
        self, tenant: str, request_id: str, calls: Sequence[Sent], *, callback_url: str | None, now: float | None = None
    ) -> list[dict[str, Any]]:
        """The receipt index's items for a send (puts, alone or in the record's transaction)."""
        at = int(now if now is not None else time.time())
        day = datetime.fromtimestamp(at, UTC).strftime("%Y%m%d")
        items = []
        for call in calls:
            item = {
                **receipt_key(call.provider, call.message_id),
                "provider": {"S": call.provider},
                "operation": {"S": call.operation},
                "tenant": {"S": tenant},
                "request_id": {"S": request_id},
                "numbers": {"S": json.dumps(list(call.numbers))},
                "accepted_at": {"N": str(at)},
                "open_day": {"S": day},
                "expires_at": {"N": str(at + self.retention)},
            }
            if callback_url:
                item["callback_url"] = {"S": callback_url}
            items.append({"TableName": self.table_name, "Item": item})
        return items

    def write_index(self, items: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(items), BATCH_WRITE_ITEMS):
            chunk = items[start : start + BATCH_WRITE_ITEMS]
            request = {self.table_name: [{"PutRequest": {"Item": i["Item"]}} for i in chunk]}
            for _ in range(5):
                try:
                    answer = self.client.batch_write_item(RequestItems=request)
                except Exception as exc:
                    raise _unavailable(exc) from exc
                request = answer.get("UnprocessedItems") or {}
                if not request:
                    break
            else:
                raise DependencyUnavailable("DynamoDB did not take every receipt index item")

    # -- receipts ------------------------------------------------------------------------------

    def indexed(self, provider: str, message_id: str) -> Indexed | None:
        try:
            item = self.client.get_item(
                TableName=self.table_name, Key=receipt_key(provider, message_id), ConsistentRead=True
            ).get("Item")
        except Exception as exc:
            raise _unavailable(exc) from exc
        return None if item is None else _indexed(item)

    def settle(self, indexed: Indexed, phone: str, status: Delivery, reason: str | None, at: str) -> Change | None:
        """Move a number to a final status, once; None if it already had one (or is not in the call)."""
        if phone not in indexed.numbers:
            return None
        item = {
            **delivery_key(indexed.tenant, indexed.request_id, phone),
            "status": {"S": status.value},
            "provider": {"S": indexed.provider},
            "reported_at": {"S": at},
            "recorded_at": {"N": str(int(time.time()))},
            "expires_at": {"N": str(int(time.time()) + self.retention)},
        }
        if reason:
            item["reason"] = {"S": reason}
        try:
            self.client.put_item(TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None  # a final state never moves
            raise _unavailable(exc) from exc
        except Exception as exc:
            raise _unavailable(exc) from exc
        return Change(indexed, phone, status, reason, at)

    def statuses(self, tenant: str, request_id: str, numbers: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The final statuses known for these numbers of a request."""
        found: dict[str, dict[str, Any]] = {}
        keys = [delivery_key(tenant, request_id, n) for n in dict.fromkeys(numbers)]
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {self.table_name: {"Keys": keys[start : start + 100]}}
            for _ in range(5):
                try:
                    answer = self.client.batch_get_item(RequestItems=request)
                except Exception as exc:
                    raise _unavailable(exc) from exc
                for item in answer.get("Responses", {}).get(self.table_name, []):
                    phone = item["pk"]["S"].rsplit("#", 1)[1]
                    found[phone] = {
                        "status": item["status"]["S"],
                        **({"reason": item["reason"]["S"]} if "reason" in item else {}),
                        "reported_at": item["reported_at"]["S"],
                    }
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
        return found

    def record_feedback(self, tenant: str, request_id: str, phone: str, *, converted: bool) -> bool:
        """A number's conversion feedback, True when it changed what was kept: the first feedback,
        or `converted` after a `not converted` (a code used late). A conversion is never taken back,
        and a repeat changes nothing (False)."""
        item = {
            "pk": {"S": f"feedback#{tenant}#{request_id}#{phone}"},
            "converted": {"BOOL": converted},
            "at": {"N": str(int(time.time()))},
            "expires_at": {"N": str(int(time.time()) + self.retention)},
        }
        try:
            self.client.put_item(TableName=self.table_name, Item=item, **_kept_unless(converted))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise _unavailable(exc) from exc
        except Exception as exc:
            raise _unavailable(exc) from exc
        return True

    # -- reconciliation ------------------------------------------------------------------------

    def open_calls(self, day: str, accepted_before: int) -> list[Indexed]:
        """Provider calls of one day (UTC) with numbers still without a final status."""
        found: list[Indexed] = []
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": OPEN_INDEX,
            "KeyConditionExpression": "open_day = :day AND accepted_at < :before",
            "ExpressionAttributeValues": {":day": {"S": day}, ":before": {"N": str(accepted_before)}},
        }
        while True:
            try:
                answer = self.client.query(**query)
            except Exception as exc:
                raise _unavailable(exc) from exc
            found += [_indexed(item) for item in answer.get("Items", [])]
            if "LastEvaluatedKey" not in answer:
                return found
            query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def close(self, indexed: Indexed) -> None:
        """Every number of the call has a final status: it leaves the open index."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=receipt_key(indexed.provider, indexed.message_id),
                UpdateExpression="REMOVE open_day",
            )
        except Exception as exc:
            raise _unavailable(exc) from exc


def _indexed(item: dict[str, Any]) -> Indexed:
    return Indexed(
        provider=item["provider"]["S"],
        operation=item["operation"]["S"],
        message_id=item["pk"]["S"].split("#", 2)[2],
        tenant=item["tenant"]["S"],
        request_id=item["request_id"]["S"],
        numbers=tuple(json.loads(item["numbers"]["S"])),
        accepted_at=int(item["accepted_at"]["N"]),
        callback_url=item.get("callback_url", {}).get("S"),
    )


def _unavailable(exc: Exception) -> DependencyUnavailable:
    return DependencyUnavailable(f"DynamoDB is unavailable ({type(exc).__name__})")


def _kept_unless(converted: bool) -> dict[str, Any]:
    """The feedback put's condition: none kept yet, or, for a conversion, `not converted` kept."""
    if not converted:
        return {"ConditionExpression": "attribute_not_exists(pk)"}
    return {
        "ConditionExpression": "attribute_not_exists(pk) OR converted = :no",
        "ExpressionAttributeValues": {":no": {"BOOL": False}},
    }
