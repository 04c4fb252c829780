"""Quota windows and the reservation plan: what a request may take, with no I/O.

Counters live in fixed windows. A number's windows of one day (its minute, its hour, the day) are
attributes of one item keyed by the number's digest and the day (`m1030`, `h10`, `d`); the account's
and the source IP's day are one item each (`used`). A window that has passed is simply never
addressed again: an expired item that TTL has not yet deleted cannot count, whatever TTL's lag.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from smsgw.errors import DependencyUnavailable


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
    source_ip: str | None
    """None where there is no source address (a queued message): no per-IP quota applies."""


@dataclass(frozen=True, slots=True)
class Window:
    scope: str
    """`phone`, `account` or `ip`."""
    period: str
    """`minute`, `hour` or `day`."""
    key: str
    """The item holding the counter."""
    attribute: str
    """The counter's attribute in that item."""
    limit: int
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class Denial:
    scope: str
    period: str
    retry_after: int
    """Seconds until the window that refused the number ends."""


Counts = dict[str, int]
"""A counter item's windows as read or written: attribute → units used."""
Taken = tuple[bool, Counts | None]
"""What taking a unit from one item did: whether it was taken, and the counts after it (or, when
refused, the counts that refused it); None where a transaction did not tell."""


@dataclass(slots=True)
class Reservation:
    """What a request holds: units per granted number and per shared scope."""

    granted: dict[str, list[Window]] = field(default_factory=dict)
    denied: dict[str, Denial] = field(default_factory=dict)
    shared: dict[str, tuple[Window, int]] = field(default_factory=dict)
    """Per shared scope: its window and the units this request still holds."""
    shared_remaining: dict[str, int] = field(default_factory=dict)
    remaining: dict[str, int] = field(default_factory=dict)
    """Per granted number: what is left in its tightest window after this send (-1: no window).
    A number whose counts are not known (yet) is left out; see `wait_for_counts`."""
    reading: Future[dict[str, int]] | None = field(default=None, repr=False)
    """A transaction tells nothing of the counts it left: they are read while the provider sends."""

    def wait_for_counts(self) -> None:
        """Take in the counts read after a transaction; if that read failed, only the report is lost."""
        if self.reading is None:
            return
        reading, self.reading = self.reading, None
        with contextlib.suppress(DependencyUnavailable):
            self.remaining.update(reading.result())

    @property
    def retry_after(self) -> int:
        return min((d.retry_after for d in self.denied.values()), default=0)


def phone_key(phone: str) -> str:
    """A number as the counters' keys hold it: digested, so that it is not written out in clear."""
    return hashlib.sha256(phone.encode()).hexdigest()[:32]


def period_bounds(now: datetime, period: str) -> tuple[str, datetime]:
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


def phone_windows(limits: Limits, subject: Subject, phone: str, now: datetime) -> list[Window]:
    """A number's windows, all in one item (none if every phone limit is off)."""
    now = now.astimezone(ZoneInfo(limits.timezone))
    day, _ = period_bounds(now, "day")
    key = f"{subject.tenant}#phone#{subject.provider}#{phone_key(phone)}#{day}"
    wanted = [("minute", limits.phone_per_minute), ("hour", limits.phone_per_hour), ("day", limits.phone_per_day)]
    found = []
    for period, limit in wanted:
        if limit > 0:
            window_id, ends_at = period_bounds(now, period)
            # In the day's item, the window id without the day: m1030, h10, d.
            found.append(Window("phone", period, key, period[0] + window_id[8:], limit, ends_at))
    return found


def shared_windows(limits: Limits, subject: Subject, now: datetime) -> list[Window]:
    """The account's and the source IP's windows of the day, one item each."""
    now = now.astimezone(ZoneInfo(limits.timezone))
    window_id, ends_at = period_bounds(now, "day")
    found = []
    if limits.account_per_day > 0:
        key = f"{subject.tenant}#account#{subject.provider}#day#{window_id}"
        found.append(Window("account", "day", key, "used", limits.account_per_day, ends_at))
    if limits.ip_per_day > 0 and subject.source_ip is not None:
        key = f"{subject.tenant}#ip#{subject.provider}#{subject.source_ip}#day#{window_id}"
        found.append(Window("ip", "day", key, "used", limits.ip_per_day, ends_at))
    return found


def counts_of(item: Mapping[str, object], windows: Sequence[Window]) -> Counts:
    """The counters of `windows` in a DynamoDB item (its attribute values as DynamoDB gives them)."""
    counts: Counts = {}
    for w in windows:
        value = item.get(w.attribute)
        counts[w.attribute] = int(value.get("N", 0)) if isinstance(value, Mapping) else 0
    return counts


def left(windows: Sequence[Window], counts: Counts) -> int:
    return min((w.limit - counts[w.attribute] for w in windows), default=-1)


def denial(window: Window, now: datetime) -> Denial:
    seconds = (window.ends_at - now).total_seconds()
    return Denial(scope=window.scope, period=window.period, retry_after=max(int(seconds) + 1, 1))


@dataclass(frozen=True, slots=True)
class Share:
    """What a shared scope took for a request: units held, and the counter after taking them."""

    window: Window
    units: int
    used: int


@dataclass(slots=True)
class Plan:
    reservation: Reservation
    give_back: list[tuple[list[Window], int]]
    unknown: dict[str, list[Window]]
    """Granted numbers whose counts a transaction did not tell: read back while the provider sends."""


def plan(
    phones: Sequence[str],
    windows: Mapping[str, list[Window]],
    taken: Mapping[str, Taken],
    shares: Sequence[Share],
    now: datetime,
) -> Plan:
    """Which numbers go, given what their own items and the shared scopes took: numbers refused by
    their own windows are denied; the shared scopes' units go to the first numbers in the order
    given; everything held for a number that does not go is given back."""
    reservation = Reservation()
    give_back: list[tuple[list[Window], int]] = []
    unknown: dict[str, list[Window]] = {}
    shared_units = min((s.units for s in shares), default=len(phones))
    served = 0
    for phone in phones:
        own = windows[phone]
        took, counts = taken.get(phone, (True, {}))
        if not took:
            refused = [w for w in own if counts is not None and counts[w.attribute] + 1 > w.limit] or own
            # The number can be sent again only once every full window has ended.
            reservation.denied[phone] = denial(max(refused, key=lambda w: w.ends_at), now)
        elif served >= shared_units:
            if own:
                give_back.append((own, 1))
            reservation.denied[phone] = denial(min(shares, key=lambda s: s.units).window, now)
        else:
            served += 1
            reservation.granted[phone] = own
            if counts is None:
                unknown[phone] = own
            else:
                reservation.remaining[phone] = left(own, counts)
    for share in shares:
        if share.units > served:
            give_back.append(([share.window], share.units - served))
        reservation.shared[share.window.scope] = (share.window, served)
        reservation.shared_remaining[share.window.scope] = share.window.limit - (share.used - (share.units - served))
    return Plan(reservation, give_back, unknown)
