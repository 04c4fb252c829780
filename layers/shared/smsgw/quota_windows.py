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
from typing import Any
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
    block_per_hour: int = 20
    """Sends per hour to one number block (the SMS pumping guard; a tenant's rules may change it)."""
    country_per_hour: int = 0
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
    cooldown: int = 0
    """Seconds a guard window that went over stays closed (0: not a guard window)."""


@dataclass(frozen=True, slots=True)
class Check:
    """A condition on another item that a number's take depends on: the item must not exist (an
    opt-out). Checked in the same transaction as the number's counters."""

    table: str
    key: dict[str, Any]
    scope: str
    """The denial's scope when the item exists: `optout`."""


@dataclass(frozen=True, slots=True)
class Own:
    """A number's own counters (one item), and the checks its take depends on."""

    phone: str
    windows: list[Window]
    checks: tuple[Check, ...] = ()

    @property
    def counted(self) -> bool:
        return bool(self.windows or self.checks)


@dataclass(frozen=True, slots=True)
class Scope:
    """A shared window and the numbers of the request it counts, each with its cost (one unit for
    the account, the source IP, a number block or a country; a price for the budget)."""

    window: Window
    costs: dict[str, int]

    @property
    def wanted(self) -> int:
        return sum(self.costs.values())


@dataclass(frozen=True, slots=True)
class Denial:
    scope: str
    period: str
    retry_after: int
    """Seconds until the window that refused the number ends."""


Counts = dict[str, int]
"""A counter item's windows as read or written: attribute → units used."""


@dataclass(frozen=True, slots=True)
class Took:
    """What taking a number's unit did: whether it was taken, the counts after it (or, when its
    own windows refused it, the counts that did); None where a transaction did not tell."""

    taken: bool
    counts: Counts | None = None
    refused_by: str | None = None
    """A check's scope when that check, not the number's windows, refused it."""
    closed_until: int | None = None
    """A guard window's cool-down end (epoch seconds), when that refused it."""


@dataclass(frozen=True, slots=True)
class Hold:
    """What a request holds of a shared scope: its window, and the cost of each granted number."""

    window: Window
    costs: dict[str, int]

    @property
    def units(self) -> int:
        return sum(self.costs.values())


@dataclass(slots=True)
class Reservation:
    """What a request holds: units per granted number and per shared scope."""

    granted: dict[str, list[Window]] = field(default_factory=dict)
    denied: dict[str, Denial] = field(default_factory=dict)
    shared: dict[str, Hold] = field(default_factory=dict)
    """Per shared counter (by key): what this request still holds of it."""
    shared_remaining: dict[str, int] = field(default_factory=dict)
    """What is left today of the account, the source IP and the budget."""
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


def shared_scopes(limits: Limits, subject: Subject, phones: Sequence[str], now: datetime) -> list[Scope]:
    """The account's and the source IP's days, each counting every number once."""
    return [Scope(window, dict.fromkeys(phones, 1)) for window in shared_windows(limits, subject, now)]


def window_of(
    scope: str, period: str, prefix: str, limit: int, now: datetime, *, zone: str, cooldown: int = 0
) -> Window:
    """A shared counter's window of this hour or day, in the quotas' zone."""
    local = now.astimezone(ZoneInfo(zone))
    window_id, ends_at = period_bounds(local, period)
    return Window(scope, period, f"{prefix}#{period}#{window_id}", "used", limit, ends_at, cooldown)


def counts_of(item: Mapping[str, object], windows: Sequence[Window]) -> Counts:
    """The counters of `windows` in a DynamoDB item (its attribute values as DynamoDB gives them)."""
    counts: Counts = {}
    for w in windows:
        value = item.get(w.attribute)
        counts[w.attribute] = int(value.get("N", 0)) if isinstance(value, Mapping) else 0
    return counts


def left(windows: Sequence[Window], counts: Counts) -> int:
    return min((w.limit - counts[w.attribute] for w in windows), default=-1)


def denial(window: Window, now: datetime, until: datetime | None = None) -> Denial:
    seconds = ((until or window.ends_at) - now).total_seconds()
    return Denial(scope=window.scope, period=window.period, retry_after=max(int(seconds) + 1, 1))


REPORTED_SCOPES = frozenset({"account", "ip", "budget"})
"""The shared scopes whose remainder an answer reports (`quota_remaining`)."""


@dataclass(frozen=True, slots=True)
class Share:
    """What a shared scope took for a request: units held (the cost of its first numbers), the
    counter after taking them, and for a guard window in its cool-down, until when."""

    scope: Scope
    units: int
    used: int
    closed_until: datetime | None = None

    @property
    def window(self) -> Window:
        return self.scope.window


@dataclass(slots=True)
class Plan:
    reservation: Reservation
    give_back: list[tuple[list[Window], int]]
    unknown: dict[str, list[Window]]
    """Granted numbers whose counts a transaction did not tell: read back while the provider sends."""


def plan(
    phones: Sequence[str],
    owns: Mapping[str, Own],
    taken: Mapping[str, Took],
    shares: Sequence[Share],
    now: datetime,
) -> Plan:
    """Which numbers go, given what their own items and the shared scopes took: numbers refused by
    their own windows or checks are denied; each shared scope's units go to its first numbers in
    the order given; everything held for a number that does not go is given back."""
    reservation = Reservation()
    give_back: list[tuple[list[Window], int]] = []
    unknown: dict[str, list[Window]] = {}
    held: dict[str, dict[str, int]] = {s.window.key: {} for s in shares}
    for phone in phones:
        own = owns[phone].windows
        took = taken.get(phone, Took(True, {}))
        if not took.taken:
            reservation.denied[phone] = _own_denial(own, took, now)
            continue
        short = next(
            (
                s
                for s in shares
                if phone in s.scope.costs and sum(held[s.window.key].values()) + s.scope.costs[phone] > s.units
            ),
            None,
        )
        if short is not None:
            if own:
                give_back.append((own, 1))
            reservation.denied[phone] = denial(short.window, now, short.closed_until)
            continue
        for share in shares:
            if phone in share.scope.costs:
                held[share.window.key][phone] = share.scope.costs[phone]
        reservation.granted[phone] = own
        if took.counts is None and own:
            unknown[phone] = own
        else:
            reservation.remaining[phone] = left(own, took.counts or {})
    for share in shares:
        hold = Hold(share.window, held[share.window.key])
        if share.units > hold.units:
            give_back.append(([share.window], share.units - hold.units))
        reservation.shared[share.window.key] = hold
        if share.window.scope in REPORTED_SCOPES:
            reservation.shared_remaining[share.window.scope] = share.window.limit - (
                share.used - (share.units - hold.units)
            )
    return Plan(reservation, give_back, unknown)


def _own_denial(own: Sequence[Window], took: Took, now: datetime) -> Denial:
    if took.refused_by is not None:
        return Denial(scope=took.refused_by, period="", retry_after=0)
    counts = took.counts
    refused = [w for w in own if counts is not None and counts[w.attribute] + 1 > w.limit] or list(own)
    # The number can be sent again only once every full window has ended.
    return denial(max(refused, key=lambda w: w.ends_at), now)
