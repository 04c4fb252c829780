"""Reservations of several requests taken together (the records of one SQS batch): their numbers
and idempotency claims in one transaction, their shared counters (the account's day, the number
blocks) in one update each, what is left read back once; then each request gets its own
reservation, as if it had been taken alone.

Requests are taken together only where one transaction can hold them: the same subject (tenant,
provider, source IP), no number twice, at most 100 actions. A refused claim (`LeadRefused`) is its
request's alone: it is left out and the others are taken again without it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from smsgw.clock import Deadline
from smsgw.quota_calls import (
    RETRYABLE_CANCELLATIONS,
    TRANSACTION_ATTEMPTS,
    TRANSACTION_ITEMS,
    Calls,
    LeadRefused,
    pause,
    unavailable,
)
from smsgw.quota_windows import Check, Hold, Own, Reservation, Scope, Subject, Took

Checks = Callable[[str], tuple[Check, ...]]


@dataclass(frozen=True, slots=True)
class Part:
    """One request's reservation: `QuotaLedger.reserve`'s arguments."""

    subject: Subject
    phones: tuple[str, ...]
    deadline: Deadline
    checks: Checks | None = None
    scopes: tuple[Scope, ...] = ()
    lead: dict[str, Any] | None = None

    def owns(self, windows: Callable[[str], list[Any]]) -> list[Own]:
        return [Own(p, windows(p), self.checks(p) if self.checks else ()) for p in self.phones]


@dataclass(slots=True)
class _Group:
    subject: Subject
    phones: set[str]
    actions: int
    members: list[int]


def together(parts: Sequence[Part], actions: Callable[[Part], int]) -> list[list[int]]:
    """The parts (by index, in order) that can be taken in one transaction each."""
    groups: list[_Group] = []
    for index, part in enumerate(parts):
        size = actions(part)
        group = next(
            (
                g
                for g in groups
                if g.subject == part.subject
                and g.phones.isdisjoint(part.phones)
                and g.actions + size <= TRANSACTION_ITEMS
            ),
            None,
        )
        if group is None:
            groups.append(_Group(part.subject, set(part.phones), size, [index]))
        else:
            group.phones.update(part.phones)
            group.actions += size
            group.members.append(index)
    return [group.members for group in groups]


def merged(scopes: Iterable[Scope]) -> list[Scope]:
    """The parts' scopes, one per counter: each counts the numbers of every part that has it."""
    by_key: dict[str, Scope] = {}
    for scope in scopes:
        known = by_key.get(scope.window.key)
        by_key[scope.window.key] = scope if known is None else Scope(known.window, {**known.costs, **scope.costs})
    return list(by_key.values())


def take_parts(
    calls: Calls, owns_of: Sequence[Sequence[Own]], leads: Sequence[dict[str, Any] | None]
) -> tuple[dict[str, Took], dict[int, dict[str, Any]]]:
    """Every part's numbers, each after its lead (a claim), in one transaction: what each number
    took, and the parts whose lead was refused (by index: the item that refused it). A refused part
    is left out; a number refused by its own windows or checks is settled; the rest is taken again."""
    taken: dict[str, Took] = {}
    refused: dict[int, dict[str, Any]] = {}
    pending = {i: list(owns) for i, owns in enumerate(owns_of)}
    unwritten = {i: lead for i, lead in enumerate(leads) if lead is not None}
    for attempt in range(TRANSACTION_ATTEMPTS):
        live = [i for i in pending if pending[i] or i in unwritten]
        if not live:
            break
        try:
            settled = _transact(calls, live, pending, unwritten, taken, refused)
        except _OneByOne:
            break
        if settled is None:
            return taken, refused  # carried out: every live part is in
        if not settled:
            pause(attempt)  # nothing refused: another writer was in the way
    for index in [i for i in pending if pending[i] or i in unwritten]:  # kept conflicting: one by one
        try:
            taken.update(calls.take_each(pending[index], unwritten.get(index)))
        except LeadRefused as exc:
            refused[index] = exc.item
        except Exception:
            calls.abandon([(own.windows, 1) for own in _owns(owns_of) if taken.get(own.phone, _NOT).taken])
            raise
    return taken, refused


_NOT = Took(False)


class _OneByOne(Exception):
    """The parts cannot share a transaction: they are taken one by one."""


def _owns(owns_of: Sequence[Sequence[Own]]) -> list[Own]:
    return [own for owns in owns_of for own in owns if own.windows]


def _transact(
    calls: Calls,
    live: list[int],
    pending: dict[int, list[Own]],
    unwritten: dict[int, dict[str, Any]],
    taken: dict[str, Took],
    refused: dict[int, dict[str, Any]],
) -> bool | None:
    """One transaction over the live parts: None if it was carried out, else whether a cancellation
    settled anything (a refused lead or number)."""
    actions: list[tuple[int, Own | None, list[dict[str, Any]]]] = []
    for index in live:
        if index in unwritten:
            actions.append((index, None, [unwritten[index]]))
        actions += [(index, own, calls.actions(own)) for own in pending[index]]
    items = [action for _, _, acts in actions for action in acts]
    try:
        calls.call(
            "transact_write_items", {"TransactItems": items, "ClientRequestToken": str(uuid.uuid4())}, repeatable=True
        )
    except ClientError as exc:
        reasons = exc.response.get("CancellationReasons") or []
        if len(live) > 1 and exc.response.get("Error", {}).get("Code") == "ValidationException":
            raise _OneByOne from None  # two parts on one item (one key in two messages): nothing was done
        if len(reasons) != len(items):
            raise unavailable(exc) from exc
        return _settle(calls, actions, reasons, exc, pending, unwritten, taken, refused)
    except Exception as exc:
        raise unavailable(exc) from exc
    for index in live:
        taken.update((own.phone, Took(True, None)) for own in pending[index])
        pending[index] = []
        unwritten.pop(index, None)
    return None


def _settle(
    calls: Calls,
    actions: list[tuple[int, Own | None, list[dict[str, Any]]]],
    reasons: list[dict[str, Any]],
    exc: ClientError,
    pending: dict[int, list[Own]],
    unwritten: dict[int, dict[str, Any]],
    taken: dict[str, Took],
    refused: dict[int, dict[str, Any]],
) -> bool:
    """A cancelled transaction's reasons, part by part: refused leads, settled numbers."""
    settled = False
    position = 0
    for index, own, acts in actions:
        mine = reasons[position : position + len(acts)]
        position += len(acts)
        if own is None:
            code = mine[0].get("Code")
            if code == "ConditionalCheckFailed":
                refused[index] = mine[0].get("Item") or {}
                settled = True
            elif code not in RETRYABLE_CANCELLATIONS:
                raise unavailable(exc)
            continue
        verdict = calls.verdict(own, mine, exc)
        if verdict is not None:
            taken[own.phone] = verdict
            pending[index].remove(own)
            settled = True
    for index in refused:
        pending.pop(index, None)
        unwritten.pop(index, None)
    return settled


def split(reservation: Reservation, phones: Sequence[str]) -> Reservation:
    """One part's share of a reservation taken together: its numbers, and what it holds of each
    shared counter."""
    mine = set(phones)
    part = Reservation(
        granted={p: w for p, w in reservation.granted.items() if p in mine},
        denied={p: d for p, d in reservation.denied.items() if p in mine},
        shared={
            key: Hold(hold.window, {p: c for p, c in hold.costs.items() if p in mine})
            for key, hold in reservation.shared.items()
        },
        shared_remaining=dict(reservation.shared_remaining),
        remaining={p: n for p, n in reservation.remaining.items() if p in mine},
    )
    if reservation.reading is not None:
        part.reading = _only(reservation.reading, mine)
    return part


def _only(reading: Future[dict[str, int]], phones: set[str]) -> Future[dict[str, int]]:
    """The counts of `phones` out of a read of many."""
    mine: Future[dict[str, int]] = Future()

    def done(read: Future[dict[str, int]]) -> None:
        if (error := read.exception()) is not None:
            mine.set_exception(error)
        else:
            mine.set_result({p: n for p, n in read.result().items() if p in phones})

    reading.add_done_callback(done)
    return mine
