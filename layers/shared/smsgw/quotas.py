"""Quotas in DynamoDB: per phone number, per account (tenant) and per source IP.

Every counter is one item per fixed window (the window's start is part of its key), changed only
by atomic conditional updates (`ADD used :n` if `used <= limit - n`), so concurrent workers can
never push a counter past its limit. A window that has passed is simply never addressed again: an
expired item that TTL has not yet deleted cannot count, whatever TTL's lag.

All the updates of a request are issued at once. Shared scopes (account, IP) are reserved for the
whole request in one update each; if the whole request does not fit, what is left is granted to
the first numbers in the order given. A number is granted only if all its windows and its share of
the shared scopes are; whatever was reserved for a number that is not sent is given back.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from botocore.exceptions import ClientError

from smsgw.errors import DependencyUnavailable
from smsgw.providers.base import Clock, utc_now

TTL_GRACE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Limits:
    """Units per window; 0 switches a window off."""

    phone_per_minute: int = 1
    phone_per_hour: int = 5
    phone_per_day: int = 10
    account_per_day: int = 2000
    ip_per_day: int = 2000
    timezone: str = "Asia/Shanghai"


@dataclass(frozen=True, slots=True)
class Subject:
    """Who is sending: quotas are kept apart per tenant and per provider."""

    tenant: str
    provider: str
    source_ip: str


@dataclass(frozen=True, slots=True)
class Window:
    scope: str
    """`phone`, `account` or `ip`."""
    period: str
    """`minute`, `hour` or `day`."""
    key: str
    limit: int
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class Denial:
    scope: str
    period: str
    retry_after: int
    """Seconds until the window that refused the number ends."""


@dataclass(slots=True)
class Reservation:
    """What a request holds: units per granted number and per shared scope."""

    granted: dict[str, list[Window]] = field(default_factory=dict)
    remaining: dict[str, int] = field(default_factory=dict)
    """Per granted number: what is left in its tightest window after this send."""
    denied: dict[str, Denial] = field(default_factory=dict)
    shared: dict[str, tuple[Window, int]] = field(default_factory=dict)
    """Per shared scope: its window and the units this request still holds."""
    shared_remaining: dict[str, int] = field(default_factory=dict)

    @property
    def retry_after(self) -> int:
        return min((d.retry_after for d in self.denied.values()), default=0)


def phone_key(phone: str) -> str:
    """A number as the counters' keys hold it: digested, so that it is not written out in clear."""
    return hashlib.sha256(phone.encode()).hexdigest()[:32]


def _period_bounds(now: datetime, period: str) -> tuple[str, datetime]:
    if period == "minute":
        start = now.replace(second=0, microsecond=0)
        return start.strftime("%Y%m%d%H%M"), start + timedelta(minutes=1)
    if period == "hour":
        start = now.replace(minute=0, second=0, microsecond=0)
        return start.strftime("%Y%m%d%H"), start + timedelta(hours=1)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    # The calendar day of the zone: adding a day to a midnight keeps DST-free zones exact and
    # lets zoneinfo fix the offset of zones with DST.
    end = (start + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return start.strftime("%Y%m%d"), end


class QuotaLedger:
    def __init__(
        self,
        table_name: str,
        limits: Limits,
        *,
        client_factory: Callable[[], Any],
        clock: Clock = utc_now,
        max_workers: int = 16,
    ) -> None:
        self.table_name = table_name
        self.limits = limits
        self.zone = ZoneInfo(limits.timezone)
        self._client_factory = client_factory
        self._client: Any = None
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="quota")
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client

    # -- windows -------------------------------------------------------------------------------

    def windows(self, subject: Subject, phone: str | None) -> list[Window]:
        now = self.clock().astimezone(self.zone)
        limits = self.limits
        if phone is not None:
            wanted = [
                ("minute", limits.phone_per_minute),
                ("hour", limits.phone_per_hour),
                ("day", limits.phone_per_day),
            ]
            prefix = f"{subject.tenant}#phone#{subject.provider}#{phone_key(phone)}"
            scope = "phone"
            return [self._window(scope, prefix, period, limit, now) for period, limit in wanted if limit > 0]
        shared = []
        if limits.account_per_day > 0:
            prefix = f"{subject.tenant}#account#{subject.provider}"
            shared.append(self._window("account", prefix, "day", limits.account_per_day, now))
        if limits.ip_per_day > 0:
            prefix = f"{subject.tenant}#ip#{subject.provider}#{subject.source_ip}"
            shared.append(self._window("ip", prefix, "day", limits.ip_per_day, now))
        return shared

    @staticmethod
    def _window(scope: str, prefix: str, period: str, limit: int, now: datetime) -> Window:
        window_id, ends_at = _period_bounds(now, period)
        return Window(scope=scope, period=period, key=f"{prefix}#{period}#{window_id}", limit=limit, ends_at=ends_at)

    # -- reserving -----------------------------------------------------------------------------

    def reserve(self, subject: Subject, phones: Sequence[str]) -> Reservation:
        reservation = Reservation()
        shared_windows = self.windows(subject, None)
        phone_windows = {phone: self.windows(subject, phone) for phone in phones}

        shared_jobs = [self._pool.submit(self._take, w, len(phones)) for w in shared_windows]
        phone_jobs = {
            phone: [self._pool.submit(self._take, w, 1) for w in windows] for phone, windows in phone_windows.items()
        }
        shared_results = [job.result() for job in shared_jobs]
        phone_results = {phone: [job.result() for job in jobs] for phone, jobs in phone_jobs.items()}

        # A shared scope that could not take the whole request takes what is left.
        shares: list[tuple[Window, int, int]] = []  # window, units held, used after taking them
        for window, (taken, used) in zip(shared_windows, shared_results, strict=True):
            if taken:
                shares.append((window, len(phones), used))
            else:
                shares.append((window, *self._take_partial(window, len(phones), used)))
        shared_units = min((units for _, units, _ in shares), default=len(phones))

        to_give_back: list[tuple[Window, int]] = []
        served = 0
        for phone in phones:
            windows = phone_windows[phone]
            results = phone_results[phone]
            refused = [w for w, (taken, _) in zip(windows, results, strict=True) if not taken]
            if refused:
                to_give_back += [(w, 1) for w, (taken, _) in zip(windows, results, strict=True) if taken]
                reservation.denied[phone] = self._denial(refused[0])
                continue
            if served >= shared_units:
                to_give_back += [(w, 1) for w in windows]
                reservation.denied[phone] = self._denial(min(shares, key=lambda s: s[1])[0])
                continue
            served += 1
            reservation.granted[phone] = windows
            reservation.remaining[phone] = min(
                (w.limit - used for w, (_, used) in zip(windows, results, strict=True)), default=-1
            )

        for window, units, used in shares:
            if units > served:
                to_give_back.append((window, units - served))
            reservation.shared[window.scope] = (window, served)
            reservation.shared_remaining[window.scope] = window.limit - (used - (units - served))
        self._give_back(to_give_back)
        return reservation

    def refund(self, reservation: Reservation, phones: Iterable[str]) -> None:
        """Give back the units of numbers the provider definitely did not send."""
        returned = [p for p in phones if p in reservation.granted]
        if not returned:
            return
        back = [(w, 1) for p in returned for w in reservation.granted.pop(p)]
        for p in returned:
            if reservation.remaining.get(p, -1) >= 0:
                reservation.remaining[p] += 1
        for scope, (window, units) in list(reservation.shared.items()):
            back.append((window, len(returned)))
            reservation.shared[scope] = (window, units - len(returned))
            reservation.shared_remaining[scope] += len(returned)
        self._give_back(back)

    def _denial(self, window: Window) -> Denial:
        seconds = (window.ends_at - self.clock()).total_seconds()
        return Denial(scope=window.scope, period=window.period, retry_after=max(int(seconds) + 1, 1))

    def _take(self, window: Window, units: int) -> tuple[bool, int]:
        """Add `units` if the window has room for all of them; return (taken, used after or now)."""
        if units > window.limit:
            return False, self._used(window)
        try:
            answer = self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": window.key}},
                UpdateExpression="ADD used :n SET expires_at = :exp",
                ConditionExpression="attribute_not_exists(used) OR used <= :room",
                ExpressionAttributeValues={
                    ":n": {"N": str(units)},
                    ":room": {"N": str(window.limit - units)},
                    ":exp": {"N": str(int((window.ends_at + TTL_GRACE).timestamp()))},
                },
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                item = exc.response.get("Item") or {}
                return False, int(item.get("used", {}).get("N", window.limit))
            raise _unavailable(exc) from exc
        except Exception as exc:
            raise _unavailable(exc) from exc
        return True, int(answer["Attributes"]["used"]["N"])

    def _used(self, window: Window) -> int:
        try:
            item = self.client.get_item(
                TableName=self.table_name, Key={"pk": {"S": window.key}}, ConsistentRead=True
            ).get("Item")
        except Exception as exc:
            raise _unavailable(exc) from exc
        return int(item["used"]["N"]) if item else 0

    def _take_partial(self, window: Window, wanted: int, used: int) -> tuple[int, int]:
        """Take as much of `wanted` as is left, racing other requests for it: (units, used after)."""
        for _ in range(10):
            left = min(wanted, window.limit - used)
            if left <= 0:
                break
            taken, used = self._take(window, left)
            if taken:
                return left, used
        return 0, used

    def _give_back(self, items: list[tuple[Window, int]]) -> None:
        jobs = [self._pool.submit(self._return, w, n) for w, n in items if n > 0]
        for job in jobs:
            job.result()

    def _return(self, window: Window, units: int) -> None:
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": window.key}},
                UpdateExpression="ADD used :minus",
                ConditionExpression="attribute_exists(used) AND used >= :n",
                ExpressionAttributeValues={":minus": {"N": str(-units)}, ":n": {"N": str(units)}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise _unavailable(exc) from exc
        except Exception as exc:
            raise _unavailable(exc) from exc


def _unavailable(exc: Exception) -> DependencyUnavailable:
    return DependencyUnavailable(f"DynamoDB is unavailable ({type(exc).__name__})")
