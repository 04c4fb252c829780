"""Reconciliation: numbers accepted a while ago that no receipt has settled.

Receipts get lost (Aliyun stops pushing after three retries within about 15 minutes), so a
scheduled run reads the open provider calls of the last days: Aliyun's numbers are asked about
with `QuerySendDetails` once `after` has passed since the send; any number still without a final
status 72 hours after its send becomes `expired`. Ronglian's pull (`GetArrived`) is not used: its
documentation could not be checked, and a pulled report may be consumed for good. Polyv reports
nothing, so its numbers are never in the index.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from smsgw.deliveries import Change, Delivery, DeliveryStore, Indexed
from smsgw.observability import logger
from smsgw.receipts import BEIJING

EXPIRE_AFTER = timedelta(hours=72)
DAYS_BACK = 4
"""Open calls of today and the days before it (UTC): 72 hours reach into the fourth."""
SEND_STATUS = {3: Delivery.DELIVERED, 2: Delivery.UNDELIVERED}


class Query(Protocol):
    """Aliyun's `QuerySendDetails` (smsgw.providers.aliyun.AliyunDeliveryQuery)."""

    def details(self, phone: str, biz_id: str, send_date: str) -> list[dict[str, Any]]: ...


@dataclass(slots=True)
class Summary:
    calls: int = 0
    queried: int = 0
    settled: int = 0
    expired: int = 0
    closed: int = 0
    errors: int = 0
    changes: list[Change] = field(default_factory=list, repr=False)


class Reconciler:
    def __init__(
        self,
        deliveries: DeliveryStore,
        query: Query | None,
        *,
        after_seconds: int = 600,
        max_queries: int = 1000,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.deliveries = deliveries
        self.query = query
        self.after = after_seconds
        self.max_queries = max_queries
        self.now = now

    def run(self) -> Summary:
        summary = Summary()
        now = self.now()
        today = datetime.fromtimestamp(now, UTC)
        for back in range(DAYS_BACK):
            day = (today - timedelta(days=back)).strftime("%Y%m%d")
            for call in self.deliveries.open_calls(day, int(now) - self.after):
                summary.calls += 1
                self._reconcile(call, now, summary)
        return summary

    def _reconcile(self, call: Indexed, now: float, summary: Summary) -> None:
        known = self.deliveries.statuses(call.tenant, call.request_id, call.numbers)
        pending = [n for n in call.numbers if n not in known]
        if pending and now - call.accepted_at >= EXPIRE_AFTER.total_seconds():
            at = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
            for phone in pending:
                self._settle(call, phone, Delivery.EXPIRED, None, at, summary)
                summary.expired += 1
            pending = []
        elif pending and call.provider == "aliyun" and self.query is not None:
            pending = self._ask_aliyun(call, pending, summary)
        if not pending:
            self.deliveries.close(call)
            summary.closed += 1

    def _ask_aliyun(self, call: Indexed, pending: Sequence[str], summary: Summary) -> list[str]:
        assert self.query is not None
        send_date = datetime.fromtimestamp(call.accepted_at, BEIJING).strftime("%Y%m%d")
        left = []
        for phone in pending:
            if summary.queried >= self.max_queries:  # the rest waits for the next run
                left.append(phone)
                continue
            summary.queried += 1
            try:
                details = self.query.details(phone, call.message_id, send_date)
            except Exception as exc:  # a failed query leaves the number open for the next run
                summary.errors += 1
                logger.warning("QuerySendDetails failed", extra={"error": type(exc).__name__})
                left.append(phone)
                continue
            status = next((SEND_STATUS[d["SendStatus"]] for d in details if d.get("SendStatus") in SEND_STATUS), None)
            if status is None:
                left.append(phone)
                continue
            detail = next(d for d in details if d.get("SendStatus") in SEND_STATUS)
            reason = None if status is Delivery.DELIVERED else str(detail.get("ErrCode") or "unknown")
            self._settle(call, phone, status, reason, _beijing(detail.get("ReceiveDate")), summary)
            summary.settled += 1
        return left

    def _settle(
        self, call: Indexed, phone: str, status: Delivery, reason: str | None, at: str, summary: Summary
    ) -> None:
        change = self.deliveries.settle(call, phone, status, reason, at)
        if change is not None:
            summary.changes.append(change)


def _beijing(value: Any) -> str:
    try:
        return datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING).isoformat()
    except ValueError:
        return datetime.now(UTC).isoformat(timespec="seconds")
