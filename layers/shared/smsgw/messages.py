"""The message log: what happened to every request, kept for a configurable time (TTL).

Items are keyed by tenant and request id together, so a tenant can only ever address its own
records: another tenant's request id is simply not found.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from smsgw.bodies import restored, stored
from smsgw.clock import Clock, utc_now
from smsgw.errors import DependencyUnavailable


class MessageLog:
    def __init__(self, table_name: str, *, retention: timedelta, client: Any, clock: Clock = utc_now) -> None:
        self.table_name = table_name
        self.retention = retention
        self.client = client
        self.clock = clock

    @staticmethod
    def key(tenant: str, request_id: str) -> dict[str, Any]:
        return {"pk": {"S": f"{tenant}#{request_id}"}}

    def item(self, tenant: str, request_id: str, record: dict[str, Any], *, received_at: datetime) -> dict[str, Any]:
        """One request's record as a put (alone, or in a transaction); `record` is its JSON answer."""
        now = self.clock()
        return {
            "TableName": self.table_name,
            "Item": {
                **self.key(tenant, request_id),
                "tenant": {"S": tenant},
                "request_id": {"S": request_id},
                "received_at": {"S": received_at.isoformat()},
                "finished_at": {"S": now.isoformat()},
                "record": stored(record),
                "expires_at": {"N": str(int((now + self.retention).timestamp()))},
            },
        }

    def record(self, tenant: str, request_id: str, record: dict[str, Any], *, received_at: datetime) -> None:
        try:
            self.client.put_item(**self.item(tenant, request_id, record, received_at=received_at))
        except Exception as exc:
            raise DependencyUnavailable(f"DynamoDB is unavailable ({type(exc).__name__})") from exc

    def find(self, tenant: str, request_id: str) -> dict[str, Any] | None:
        try:
            item = self.client.get_item(TableName=self.table_name, Key=self.key(tenant, request_id)).get("Item")
        except Exception as exc:
            raise DependencyUnavailable(f"DynamoDB is unavailable ({type(exc).__name__})") from exc
        # TTL deletes lazily: a record past its time is treated as gone.
        if item is None or int(item["expires_at"]["N"]) <= self.clock().timestamp():
            return None
        found: dict[str, Any] = restored(item["record"])
        found["received_at"] = item["received_at"]["S"]
        found["finished_at"] = item["finished_at"]["S"]
        return found
