"""Quotas in DynamoDB: per phone number, per account (tenant) and per source IP.

Counters change only by atomic conditional updates (`ADD` if every window has room), so concurrent
workers never push a counter past its limit (windows and the plan: `smsgw.quota_windows`). All the
updates of a request go out at once: one per shared scope for the whole request, and the numbers'
items in transactions of up to 100 (a single number: one `UpdateItem`). A transaction is all or
nothing: a number refused by its own limits is named in the cancellation, and the others are taken
again without it. What was reserved for a number that is not sent is given back.

An `ADD` sent twice counts twice, so the ledger's client never retries by itself (`QUOTA_RETRIES`):
a call is made again only where DynamoDB said it did not carry it out (a throttle, a conflict) or no
connection was made; after a lost answer (a timeout, a 5xx) only reads and transactions (which carry
an idempotency token) are; a lost update fails the request and keeps the unit it may have taken: a
counter may count one request too many, never one too few. No call starts past the request's deadline.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any

from smsgw import gathering
from smsgw.clock import Clock, Deadline, utc_now
from smsgw.errors import DependencyUnavailable
from smsgw.quota_batch import Checks, Part, merged, split, take_parts, together
from smsgw.quota_calls import QUOTA_RETRIES, TRANSACTION_ITEMS, Calls, LeadRefused
from smsgw.quota_scopes import share, take_scopes
from smsgw.quota_windows import (
    Hold,
    Limits,
    Own,
    Reservation,
    Scope,
    Share,
    Subject,
    Took,
    Window,
    phone_windows,
    plan,
    shared_scopes,
    shared_windows,
)

__all__ = ["QUOTA_RETRIES", "Limits", "QuotaLedger", "Reservation", "Subject"]

_NO_DEADLINE = Deadline(float("inf"))


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

    def windows(self, subject: Subject, phone: str | None) -> list[Window]:
        """A number's windows (all in one item), or with no number the shared scopes' (one item each)."""
        if phone is None:
            return shared_windows(self.limits, subject, self.clock())
        return phone_windows(self.limits, subject, phone, self.clock())

    def reserve(
        self,
        subject: Subject,
        phones: Sequence[str],
        deadline: Deadline = _NO_DEADLINE,
        *,
        checks: Checks | None = None,
        scopes: Sequence[Scope] = (),
        lead: dict[str, Any] | None = None,
    ) -> Reservation:
        """Take one unit per number (distinct numbers, in the order given) from its own windows, if
        its `checks` pass, and from the shared scopes (the account's and the source IP's, and any
        `scopes` more: guard windows, a budget); the numbers that do not fit are denied. A `lead`
        action (an idempotency claim) is written in the same round, in the first numbers'
        transaction: if it is refused (LeadRefused), nothing is held. In a batch (smsgw.gathering),
        the records' claimed reservations are taken together (smsgw.quota_batch)."""
        part = Part(subject, tuple(phones), deadline, checks, tuple(scopes), lead)
        member = gathering.current()
        if member is not None and lead is not None:
            reservation: Reservation = member.gather("quota.reserve", self.reserve_many, part)
            return reservation
        return self._reserve(part)

    def reserve_many(self, parts: Sequence[Part]) -> list[Reservation | BaseException]:
        """Each part's reservation, or the exception its own call would have raised; parts that fit
        in one transaction are taken together."""
        found: dict[int, Reservation | BaseException] = {}
        for group in together(parts, self._actions):
            if len(group) == 1:
                try:
                    found[group[0]] = self._reserve(parts[group[0]])
                except Exception as exc:  # its own call would have raised it
                    found[group[0]] = exc
                continue
            try:
                found.update(zip(group, self._reserve_together([parts[i] for i in group]), strict=True))
            except Exception as exc:
                found.update(dict.fromkeys(group, exc))
        return [found[i] for i in range(len(parts))]

    def _actions(self, part: Part) -> int:
        """The actions a part puts in a transaction: its lead, and per number its update and checks."""
        limits = (self.limits.phone_per_minute, self.limits.phone_per_hour, self.limits.phone_per_day)
        checks = len(part.checks(part.phones[0])) if part.checks and part.phones else 0
        return int(part.lead is not None) + (int(any(limits)) + checks) * len(part.phones)

    def _reserve(self, part: Part) -> Reservation:
        calls = Calls(self, part.deadline)
        now = self.clock()
        owns = {own.phone: own for own in part.owns(lambda p: phone_windows(self.limits, part.subject, p, now))}
        shared = [*shared_scopes(self.limits, part.subject, part.phones, now), *part.scopes]
        counted = [owns[p] for p in part.phones if owns[p].counted]
        actions = 1 + max((len(o.checks) for o in counted), default=0)
        first = (TRANSACTION_ITEMS - (part.lead is not None)) // actions  # the lead rides in the first
        per_chunk = TRANSACTION_ITEMS // actions
        chunks = [counted[:first]] + [counted[i : i + per_chunk] for i in range(first, len(counted), per_chunk)]
        chunks = [chunk for chunk in chunks if chunk]
        lead = part.lead

        def numbers() -> dict[str, Took]:
            if chunks:
                return calls.take_each(chunks[0], lead)
            if lead is not None:
                calls.lead_alone(lead)
            return {}

        taken, shared_taken, errors = self._take_all(calls, numbers, chunks[1:], shared)
        return self._settle(calls, part.phones, owns, (taken, shared_taken, errors), now)

    def _reserve_together(self, parts: Sequence[Part]) -> list[Reservation | BaseException]:
        calls = Calls(self, min((part.deadline for part in parts), key=lambda d: d.at))
        now = self.clock()
        subject = parts[0].subject
        owns_of = [part.owns(lambda p: phone_windows(self.limits, subject, p, now)) for part in parts]
        owns = {own.phone: own for owns in owns_of for own in owns}
        phones = [p for part in parts for p in part.phones]
        shared = [*shared_scopes(self.limits, subject, phones, now), *merged(s for part in parts for s in part.scopes)]
        refused: dict[int, dict[str, Any]] = {}

        def numbers() -> dict[str, Took]:
            counted = [[own for own in owns if own.counted] for owns in owns_of]
            taken, left_out = take_parts(calls, counted, [part.lead for part in parts])
            refused.update(left_out)
            return taken

        took = self._take_all(calls, numbers, [], shared)
        going = [p for i, part in enumerate(parts) if i not in refused for p in part.phones]
        reservation = self._settle(calls, going, owns, took, now)
        return [
            LeadRefused(refused[i]) if i in refused else split(reservation, part.phones) for i, part in enumerate(parts)
        ]

    def _settle(
        self,
        calls: Calls,
        phones: Sequence[str],
        owns: dict[str, Own],
        took: tuple[dict[str, Took], list[tuple[Scope, Took]], list[BaseException]],
        now: datetime,
    ) -> Reservation:
        """What the takes come to: the plan of which numbers go, with what the plan does not use given back."""
        taken, shared_taken, errors = took
        held = [(owns[p].windows, 1) for p, took_ in taken.items() if took_.taken and owns[p].windows]
        held += [([s.window], s.wanted) for s, took_ in shared_taken if took_.taken]
        shares: list[Share] = []
        try:
            if errors:
                raise errors[0]
            for scope, took_ in shared_taken:
                shares.append(share(calls, scope, took_, now))
                if not took_.taken:
                    held.append(([scope.window], shares[-1].units))
        except (DependencyUnavailable, LeadRefused):
            calls.abandon(held)  # a request that fails holds nothing
            raise
        decided = plan(phones, owns, taken, shares, now)
        # What the plan does not use goes back; what cannot go back stays counted, and is reported so.
        for (returned, units), done in zip(decided.give_back, calls.give_back(decided.give_back), strict=True):
            if not done and returned[0].scope in decided.reservation.shared_remaining:
                decided.reservation.shared_remaining[returned[0].scope] -= units
        if decided.unknown:
            decided.reservation.reading = self._pool.submit(calls.read_remaining, decided.unknown)
        return decided.reservation

    def _take_all(
        self,
        calls: Calls,
        numbers: Callable[[], dict[str, Took]],
        chunks: list[list[Own]],
        shared: list[Scope],
    ) -> tuple[dict[str, Took], list[tuple[Scope, Took]], list[BaseException]]:
        """Every take of a request at once: `numbers` (the first numbers' chunk, with the lead) in
        this thread, the other chunks beside it, the shared scopes one by one, and the guard windows
        (one per number block: many) in transactions."""
        singles = [scope for scope in shared if not scope.window.cooldown]
        guards = [scope for scope in shared if scope.window.cooldown]
        scope_jobs = [self._pool.submit(take_scopes, calls, [scope]) for scope in singles]
        scope_jobs += [
            self._pool.submit(take_scopes, calls, guards[i : i + TRANSACTION_ITEMS])
            for i in range(0, len(guards), TRANSACTION_ITEMS)
        ]
        # The first chunk is taken in this thread, the others beside it: no hand-off for the usual send.
        chunk_jobs = [self._pool.submit(calls.take_each, chunk) for chunk in chunks]
        taken: dict[str, Took] = {}
        errors: list[BaseException] = []
        try:
            taken.update(numbers())
        except LeadRefused as refused:
            errors.append(refused)  # first: the reason told, whatever else failed
        except DependencyUnavailable as exc:
            errors.append(exc)
        # Nothing of this request is left running once it returns.
        running: list[Future[Any]] = [*scope_jobs, *chunk_jobs]
        wait(running)
        shared_taken: list[tuple[Scope, Took]] = []
        for job in running:
            if (error := job.exception()) is not None:
                errors.append(error)
            elif job in scope_jobs:
                shared_taken += job.result()
            else:
                taken.update(job.result())
        return taken, shared_taken, errors

    def refund(self, reservation: Reservation, phones: Iterable[str], deadline: Deadline = _NO_DEADLINE) -> bool:
        """Give back the units of numbers the provider definitely did not send. The reservation's
        report counts a unit back only once DynamoDB has it back; False if some could not be."""
        returned = [p for p in phones if p in reservation.granted]
        if not returned:
            return True
        reservation.wait_for_counts()  # read before the counts change
        own = [p for p in returned if reservation.granted[p]]
        shared = [(key, hold, sum(hold.costs.get(p, 0) for p in returned)) for key, hold in reservation.shared.items()]
        back = [(reservation.granted[p], 1) for p in own] + [([hold.window], units) for _, hold, units in shared]
        done = Calls(self, deadline).give_back(back)
        for p, given in zip(own, done, strict=False):
            if given and reservation.remaining.get(p, -1) >= 0:
                reservation.remaining[p] += 1
        for (key, hold, units), given in zip(shared, done[len(own) :], strict=True):
            if given and units:
                kept = {p: cost for p, cost in hold.costs.items() if p not in returned}
                reservation.shared[key] = Hold(hold.window, kept)
                if hold.window.scope in reservation.shared_remaining:
                    reservation.shared_remaining[hold.window.scope] += units
        for p in returned:
            del reservation.granted[p]
        return all(done)

    def submit(self, work: Callable[..., Any], *args: Any) -> Future[Any]:
        return self._pool.submit(work, *args)
