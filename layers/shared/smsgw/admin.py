"""Admin API keys: a key allowed to manage one tenant's templates (and, later, its rules).

An API key is a tenant; an admin key is an API key that the configuration table names as its
tenant's admin (`make admin-key` writes the item). The check is cached for a short while.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from smsgw.errors import DependencyUnavailable, GatewayError


class NotAdmin(GatewayError):
    status_code = 403
    code = "admin_key_required"


def admin_item_key(api_key_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"admin-key#{api_key_id}"}, "sk": {"S": "tenant"}}


class AdminKeys:
    def __init__(
        self, table_name: str, *, client: Any, cache_seconds: int = 60, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.table_name = table_name
        self.client = client
        self.cache_seconds = cache_seconds
        self.now = now
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def tenant(self, api_key_id: str | None) -> str:
        """The tenant an admin key manages; 403 for any other key."""
        found = self._lookup(api_key_id) if api_key_id else None
        if found is None:
            raise NotAdmin("This route needs an admin API key.")
        return found

    def _lookup(self, api_key_id: str) -> str | None:
        with self._lock:
            cached = self._cache.get(api_key_id)
        if cached is not None and self.now() - cached[0] < self.cache_seconds:
            return cached[1]
        try:
            item = self.client.get_item(TableName=self.table_name, Key=admin_item_key(api_key_id)).get("Item")
        except Exception as exc:
            raise DependencyUnavailable(f"DynamoDB is unavailable ({type(exc).__name__})") from exc
        tenant = item["tenant"]["S"] if item else None
        with self._lock:
            self._cache[api_key_id] = (self.now(), tenant)
        return tenant

    def grant(self, api_key_id: str, tenant: str) -> None:
        """Make a key its tenant's admin (the command line's `make admin-key` does this)."""
        item = {**admin_item_key(api_key_id), "tenant": {"S": tenant}}
        self.client.put_item(TableName=self.table_name, Item=item)
