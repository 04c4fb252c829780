"""A circuit breaker per provider operation, its state in DynamoDB so that every instance shares it.

A run of provider-side failures (calls whose every number failed over: connection refused, 5xx,
throttling, a refused account) opens the circuit: for a cool-down the unified route skips that
provider without calling it. After the cool-down one call goes through as a probe (one instance
claims it with a conditional write); a success closes the circuit, a failure opens it again.
Reads are cached for a second, so a busy route does not read the state on every send.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from smsgw.observability import logger

CACHE_SECONDS = 1.0
PROBE_SECONDS = 30


class Circuit(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    PROBE = "probe"
    """Open, but this call is the one let through to see whether the provider is back."""


@dataclass(frozen=True, slots=True)
class _State:
    failures: int
    open_until: int


class CircuitBreaker:
    def __init__(
        self,
        table_name: str,
        *,
        client: Any,
        threshold: int,
        cooldown_seconds: int,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.table_name = table_name
        self.client = client
        self.threshold = threshold
        self.cooldown = cooldown_seconds
        self.now = now
        self._cache: dict[str, tuple[float, _State]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(name: str) -> dict[str, Any]:
        return {"pk": {"S": f"circuit#{name}"}, "sk": {"S": "state"}}

    def state(self, provider: str, operation: str) -> Circuit:
        """Whether a call may go to this provider operation now."""
        name = f"{provider}#{operation}"
        current = self._read(name)
        now = self.now()
        if current.open_until == 0:
            return Circuit.CLOSED
        if now < current.open_until:
            return Circuit.OPEN
        return Circuit.PROBE if self._claim_probe(name, now) else Circuit.OPEN

    def record(self, provider: str, operation: str, *, failed: bool) -> None:
        """A call's outcome; never raises (the circuit is advice, not a gate on sending)."""
        name = f"{provider}#{operation}"
        try:
            if failed:
                self._failed(name)
            elif self._read(name) != _State(0, 0):
                self._write(name, "SET failures = :zero, open_until = :zero REMOVE probe_until", {":zero": {"N": "0"}})
        except Exception as exc:
            logger.warning("circuit state not written", extra={"circuit": name, "error": type(exc).__name__})

    def _failed(self, name: str) -> None:
        answer = self._write(name, "ADD failures :one", {":one": {"N": "1"}}, returns=True)
        failures = int(answer.get("Attributes", {}).get("failures", {}).get("N", "0"))
        if failures >= self.threshold:
            until = int(self.now()) + self.cooldown
            self._write(name, "SET open_until = :until REMOVE probe_until", {":until": {"N": str(until)}})
            logger.warning("circuit opened", extra={"circuit": name, "failures": failures, "open_until": until})

    def _write(self, name: str, expression: str, values: dict[str, Any], *, returns: bool = False) -> Any:
        answer = self.client.update_item(
            TableName=self.table_name,
            Key=self._key(name),
            UpdateExpression=expression,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW" if returns else "NONE",
        )
        with self._lock:
            self._cache.pop(name, None)
        return answer

    def _claim_probe(self, name: str, now: float) -> bool:
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(name),
                UpdateExpression="SET probe_until = :until",
                ConditionExpression="attribute_not_exists(probe_until) OR probe_until < :now",
                ExpressionAttributeValues={
                    ":until": {"N": str(int(now) + PROBE_SECONDS)},
                    ":now": {"N": str(int(now))},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _read(self, name: str) -> _State:
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        try:
            item = self.client.get_item(TableName=self.table_name, Key=self._key(name)).get("Item") or {}
        except Exception as exc:
            logger.warning("circuit state not read", extra={"circuit": name, "error": type(exc).__name__})
            return _State(0, 0)
        state = _State(int(item.get("failures", {}).get("N", 0)), int(item.get("open_until", {}).get("N", 0)))
        with self._lock:
            self._cache[name] = (time.monotonic(), state)
        return state
