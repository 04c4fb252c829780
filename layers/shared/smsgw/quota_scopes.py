"""The shared scopes' calls of a reservation (the account's and the source IP's days, the number
blocks of the pumping guard, a budget): what each takes of what it wants, and, when it cannot take
all, the cost of as many of the request's first numbers as there is room for."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from smsgw.observability import logger, report_guard
from smsgw.quota_calls import TRANSACTION_ATTEMPTS, TTL_GRACE_SECONDS, Calls
from smsgw.quota_windows import Own, Scope, Share, Took, Window, period_bounds

MAX_COOLDOWN_WINDOWS = 48
"""The most windows one cool-down is written on (two days of hours)."""


def take_scopes(calls: Calls, scopes: Sequence[Scope]) -> list[tuple[Scope, Took]]:
    """What each shared scope can take of what it wants: alone, an update; several (guard windows),
    one transaction, whose refusals name their windows and whose other scopes are taken again."""
    if len(scopes) == 1:
        return [(scopes[0], calls.take([scopes[0].window], scopes[0].wanted))]
    owns = [Own(scope.window.key, [scope.window]) for scope in scopes]
    units = {scope.window.key: scope.wanted for scope in scopes}
    results: dict[int, Took] = {}
    pending = list(range(len(owns)))
    for attempt in range(TRANSACTION_ATTEMPTS):
        if len(pending) <= 1:
            break
        refused, pending, _ = calls.transact(owns, pending, attempt, units)
        results.update(refused)
    for index in pending:
        results[index] = calls.take([scopes[index].window], scopes[index].wanted)
    return [(scope, results[i]) for i, scope in enumerate(scopes)]


def share(calls: Calls, scope: Scope, took: Took, now: datetime) -> Share:
    """What a shared scope holds for a request: all it wanted, or the cost of as many of its first
    numbers as is left; a guard window that goes over closes for its cool-down."""
    window = scope.window
    counts = took.counts or {window.attribute: 0}
    used = counts[window.attribute]
    if took.taken:
        return Share(scope, scope.wanted, used)
    if took.closed_until is not None:  # a guard window in its cool-down
        return Share(scope, 0, used, datetime.fromtimestamp(took.closed_until, now.tzinfo))
    for _ in range(10):  # racing other requests for what is left
        units = _fitting(scope, window.limit - used)
        if units <= 0:
            break
        again = calls.take([window], units)
        used = (again.counts or counts)[window.attribute]
        if again.taken:
            return Share(scope, units, used, _close(calls, scope, units, now))
    return Share(scope, 0, used, _close(calls, scope, 0, now))


def _close(calls: Calls, scope: Scope, units: int, now: datetime) -> datetime | None:
    """A guard window that could not take all it wanted closes for its cool-down: until when. The
    cool-down is written on this window's item and on those of the windows it reaches into, so
    that a new hour does not open a block closed a minute before it."""
    window = scope.window
    if not window.cooldown or units >= scope.wanted:
        return None
    until = int(time.time()) + window.cooldown
    try:
        for key, ends_at in covered(window, now, until, calls.ledger.limits.timezone):
            expires = int(ends_at.timestamp()) + TTL_GRACE_SECONDS
            update = {
                "TableName": calls.table_name,
                "Key": {"pk": {"S": key}},
                "UpdateExpression": "SET closed_until = :until, expires_at = if_not_exists(expires_at, :exp)",
                "ExpressionAttributeValues": {":until": {"N": str(until)}, ":exp": {"N": str(expires)}},
            }
            calls.call("update_item", update, repeatable=True)
    except Exception as exc:  # the window stays full for the hour: the guard holds without it
        logger.warning("guard cool-down not written", extra={"error": type(exc).__name__})
        return None
    report_guard(window)
    return datetime.fromtimestamp(until, now.tzinfo)


def covered(window: Window, now: datetime, until: int, zone: str) -> list[tuple[str, datetime]]:
    """The items (keys, and when their windows end) of `window` and of the windows after it of the
    same counter, up to the one `until` (epoch seconds) falls in."""
    prefix, period, _ = window.key.rsplit("#", 2)
    found: list[tuple[str, datetime]] = []
    at = now.astimezone(ZoneInfo(zone))
    while len(found) < MAX_COOLDOWN_WINDOWS:
        window_id, ends_at = period_bounds(at, period)
        found.append((f"{prefix}#{period}#{window_id}", ends_at))
        if ends_at.timestamp() > until:
            break
        at = ends_at
    return found


def _fitting(scope: Scope, room: int) -> int:
    """The cost of the scope's first numbers that fit in `room`."""
    units = 0
    for cost in scope.costs.values():
        if units + cost > room:
            break
        units += cost
    return units
