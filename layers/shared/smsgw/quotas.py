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

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, HTTPClientError

from smsgw.clock import Clock, Deadline, utc_now
from smsgw.errors import DependencyUnavailable
from smsgw.observability import logger, report_guard
from smsgw.quota_windows import (
    Check,
    Counts,
    Hold,
    Limits,
    Own,
    Reservation,
    Scope,
    Share,
    Subject,
    Took,
    Window,
    counts_of,
    left,
    phone_windows,
    plan,
    shared_scopes,
    shared_windows,
)

__all__ = ["QUOTA_RETRIES", "Limits", "QuotaLedger", "Reservation", "Subject"]

TTL_GRACE_SECONDS = 300
# DynamoDB's ceiling on the actions of one transaction, and on the keys of one BatchGetItem.
TRANSACTION_ITEMS = 100
BATCH_GET_KEYS = 100
# Tries of a transaction cancelled without a refusal (a conflict, a throttle) before one by one.
TRANSACTION_ATTEMPTS = 3
# Tries of a call DynamoDB did not carry out (throttled, in conflict, not connected).
CALL_ATTEMPTS = 5
# What one call may take (the client's connect and read timeouts): none starts with less time left.
CALL_SECONDS = 3.0
# Cancellations and errors by which DynamoDB says it did nothing.
_RETRYABLE_CANCELLATIONS = {"None", "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
_NOT_DONE = frozenset(
    {
        "TransactionConflictException",
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
    }
)
QUOTA_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
"""Merged into the ledger's client's configuration: no retries of its own (see above)."""
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
        checks: Callable[[str], tuple[Check, ...]] | None = None,
        scopes: Sequence[Scope] = (),
    ) -> Reservation:
        """Take one unit per number (distinct numbers, in the order given) from its own windows, if
        its `checks` pass, and from the shared scopes (the account's and the source IP's, and any
        `scopes` more: guard windows, a budget); the numbers that do not fit are denied."""
        calls = _Calls(self, deadline)
        now = self.clock()
        owns = {p: Own(p, phone_windows(self.limits, subject, p, now), checks(p) if checks else ()) for p in phones}
        shared = [*shared_scopes(self.limits, subject, phones, now), *scopes]
        counted = [owns[p] for p in phones if owns[p].counted]
        per_chunk = TRANSACTION_ITEMS // (1 + max((len(o.checks) for o in counted), default=0))
        chunks = [counted[i : i + per_chunk] for i in range(0, len(counted), per_chunk)]

        taken, shared_taken, errors = self._take_all(calls, chunks, shared)
        held = [(owns[p].windows, 1) for p, took in taken.items() if took.taken and owns[p].windows]
        held += [([s.window], s.wanted) for s, took in shared_taken if took.taken]
        shares: list[Share] = []
        try:
            if errors:
                raise errors[0]
            for scope, took in shared_taken:
                shares.append(calls.share(scope, took, now))
                if not took.taken:
                    held.append(([scope.window], shares[-1].units))
        except DependencyUnavailable:
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
        self, calls: _Calls, chunks: list[list[Own]], shared: list[Scope]
    ) -> tuple[dict[str, Took], list[tuple[Scope, Took]], list[BaseException]]:
        """Every take of a request at once: the numbers' chunks, the shared scopes one by one, and the
        guard windows (one per number block: many) in transactions."""
        singles = [scope for scope in shared if not scope.window.cooldown]
        guards = [scope for scope in shared if scope.window.cooldown]
        scope_jobs = [self._pool.submit(calls.take_scopes, [scope]) for scope in singles]
        scope_jobs += [
            self._pool.submit(calls.take_scopes, guards[i : i + TRANSACTION_ITEMS])
            for i in range(0, len(guards), TRANSACTION_ITEMS)
        ]
        # The first chunk is taken in this thread, the others beside it: no hand-off for the usual send.
        chunk_jobs = [self._pool.submit(calls.take_each, chunk) for chunk in chunks[1:]]
        taken: dict[str, Took] = {}
        errors: list[BaseException] = []
        if chunks:
            try:
                taken.update(calls.take_each(chunks[0]))
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
        done = _Calls(self, deadline).give_back(back)
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


class _Calls:
    """The DynamoDB calls of one request, with its deadline."""

    def __init__(self, ledger: QuotaLedger, deadline: Deadline) -> None:
        self.ledger = ledger
        self.table_name = ledger.table_name
        self.deadline = deadline

    def _update(self, windows: Sequence[Window], units: int) -> dict[str, Any]:
        """The conditional update adding `units` to every window of one item, if each has room (and,
        for a guard window, if it is not in its cool-down)."""
        names = {f"#c{i}": w.attribute for i, w in enumerate(windows)}
        values = {f":r{i}": {"N": str(w.limit - units)} for i, w in enumerate(windows)}
        values[":n"] = {"N": str(units)}
        expires = max(w.ends_at for w in windows).timestamp() + TTL_GRACE_SECONDS
        values[":exp"] = {"N": str(int(expires))}
        conditions = [f"(attribute_not_exists({n}) OR {n} <= :r{i})" for i, n in enumerate(names)]
        if any(w.cooldown for w in windows):
            values[":now"] = {"N": str(int(time.time()))}
            conditions.append("(attribute_not_exists(closed_until) OR closed_until < :now)")
        return {
            "TableName": self.table_name,
            "Key": {"pk": {"S": windows[0].key}},
            "UpdateExpression": "ADD " + ", ".join(f"{n} :n" for n in names) + " SET expires_at = :exp",
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def take(self, windows: Sequence[Window], units: int) -> Took:
        """Add `units` to one item's windows if all have room: taken, with the counts after (or as
        they are, and the item as it is, when refused)."""
        if any(units > w.limit for w in windows):
            return Took(False, self.read(windows))
        update = self._update(windows, units)
        update.update(ReturnValues="UPDATED_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD")
        try:
            answer = self.call("update_item", update, repeatable=False)
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                item = exc.response.get("Item") or {}
                return Took(False, counts_of(item, windows), closed_until=closed_until(item))
            raise _unavailable(exc) from exc
        except Exception as exc:
            raise _unavailable(exc) from exc
        return Took(True, counts_of(answer["Attributes"], windows))

    def take_scopes(self, scopes: Sequence[Scope]) -> list[tuple[Scope, Took]]:
        """What each shared scope can take of what it wants: alone, an update; several (guard windows),
        one transaction, whose refusals name their windows and whose other scopes are taken again."""
        if len(scopes) == 1:
            return [(scopes[0], self.take([scopes[0].window], scopes[0].wanted))]
        owns = [Own(scope.window.key, [scope.window]) for scope in scopes]
        units = {scope.window.key: scope.wanted for scope in scopes}
        results: dict[int, Took] = {}
        pending = list(range(len(owns)))
        for attempt in range(TRANSACTION_ATTEMPTS):
            if len(pending) <= 1:
                break
            refused, pending = self._transact(owns, pending, attempt, units)
            results.update(refused)
        for index in pending:
            results[index] = self.take([scopes[index].window], scopes[index].wanted)
        return [(scope, results[i]) for i, scope in enumerate(scopes)]

    def take_each(self, owns: Sequence[Own]) -> dict[str, Took]:
        """One unit from each number's item, and its checks, in one transaction: a transaction does
        not tell the counts it left (None); a refusal tells the counts, or the check, that refused."""
        if len(owns) == 1 and not owns[0].checks:
            return {owns[0].phone: self.take(owns[0].windows, 1)}
        results: dict[int, Took] = {}
        pending = list(range(len(owns)))
        for attempt in range(TRANSACTION_ATTEMPTS):
            if not pending or (len(pending) == 1 and not owns[pending[0]].checks):
                break
            refused, pending = self._transact(owns, pending, attempt)
            results.update(refused)
        for index in pending:  # a lone number, or a transaction that kept conflicting
            try:
                results[index] = (
                    self.take_each([owns[index]])[owns[index].phone]
                    if owns[index].checks
                    else (self.take(owns[index].windows, 1))
                )
            except DependencyUnavailable:
                self.abandon([(owns[i].windows, 1) for i, took in results.items() if took.taken and owns[i].windows])
                raise
        return {owns[i].phone: results[i] for i in range(len(owns))}

    def _actions(self, own: Own, units: int = 1) -> list[dict[str, Any]]:
        actions = []
        if own.windows:
            actions.append(
                {"Update": {**self._update(own.windows, units), "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}
            )
        for check in own.checks:
            actions.append(
                {
                    "ConditionCheck": {
                        "TableName": check.table,
                        "Key": check.key,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        return actions

    def _transact(
        self, owns: Sequence[Own], pending: list[int], attempt: int, units: Mapping[str, int] | None = None
    ) -> tuple[dict[int, Took], list[int]]:
        """One transaction over the pending items: what it settled, and what is to be tried again."""
        actions = {index: self._actions(owns[index], (units or {}).get(owns[index].phone, 1)) for index in pending}
        transaction = {
            "TransactItems": [action for index in pending for action in actions[index]],
            # The same token on a call made again after a lost answer: DynamoDB applies it once.
            "ClientRequestToken": str(uuid.uuid4()),
        }
        try:
            self.call("transact_write_items", transaction, repeatable=True)
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if _code(exc) != "TransactionCanceledException" or len(reasons) != len(transaction["TransactItems"]):
                raise _unavailable(exc) from exc
            settled: dict[int, Took] = {}
            again = []
            position = 0
            for index in pending:
                own, count = owns[index], len(actions[index])
                mine = reasons[position : position + count]
                position += count
                verdict = self._verdict(own, mine, exc)
                if verdict is None:
                    again.append(index)
                else:
                    settled[index] = verdict
            if len(again) == len(pending):
                _pause(attempt)  # nothing refused: another writer was in the way
            return settled, again
        except Exception as exc:
            raise _unavailable(exc) from exc
        return dict.fromkeys(pending, Took(True, None)), []

    @staticmethod
    def _verdict(own: Own, reasons: Sequence[dict[str, Any]], exc: ClientError) -> Took | None:
        """A number's share of a cancellation: refused (by a check, or by its windows), or None to try again."""
        codes = [reason.get("Code") for reason in reasons]
        checks = codes[1:] if own.windows else codes
        for check, code in zip(own.checks, checks, strict=True):
            if code == "ConditionalCheckFailed":
                return Took(False, None, check.scope)
        if own.windows and codes[0] == "ConditionalCheckFailed":
            item = reasons[0].get("Item") or {}
            return Took(False, counts_of(item, own.windows), closed_until=closed_until(item))
        if all(code in _RETRYABLE_CANCELLATIONS for code in codes):
            return None
        raise _unavailable(exc)

    def share(self, scope: Scope, took: Took, now: datetime) -> Share:
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
            again = self.take([window], units)
            used = (again.counts or counts)[window.attribute]
            if again.taken:
                return Share(scope, units, used, self._close(scope, units, now))
        return Share(scope, 0, used, self._close(scope, 0, now))

    def _close(self, scope: Scope, units: int, now: datetime) -> datetime | None:
        """A guard window that could not take all it wanted closes for its cool-down: until when."""
        window = scope.window
        if not window.cooldown or units >= scope.wanted:
            return None
        until = int(time.time()) + window.cooldown
        update = {
            "TableName": self.table_name,
            "Key": {"pk": {"S": window.key}},
            "UpdateExpression": "SET closed_until = :until",
            "ExpressionAttributeValues": {":until": {"N": str(until)}},
        }
        try:
            self.call("update_item", update, repeatable=True)
        except Exception as exc:  # the window stays full for the hour: the guard holds without it
            logger.warning("guard cool-down not written", extra={"error": type(exc).__name__})
            return None
        report_guard(window)
        return datetime.fromtimestamp(until, now.tzinfo)

    def read(self, windows: Sequence[Window]) -> Counts:
        read = {"TableName": self.table_name, "Key": {"pk": {"S": windows[0].key}}, "ConsistentRead": True}
        try:
            item = self.call("get_item", read, repeatable=True).get("Item")
        except Exception as exc:
            raise _unavailable(exc) from exc
        return counts_of(item or {}, windows)

    def read_remaining(self, numbers: dict[str, list[Window]]) -> dict[str, int]:
        """What is left in each number's tightest window, read back after a transaction."""
        by_key = {windows[0].key: (phone, windows) for phone, windows in numbers.items()}
        attributes = sorted({w.attribute for windows in numbers.values() for w in windows})
        names = {f"#c{i}": a for i, a in enumerate(attributes)} | {"#pk": "pk"}
        found: dict[str, int] = {}
        keys = list(by_key)
        for start in range(0, len(keys), BATCH_GET_KEYS):
            request: dict[str, Any] = {
                self.table_name: {
                    "Keys": [{"pk": {"S": key}} for key in keys[start : start + BATCH_GET_KEYS]],
                    "ConsistentRead": True,
                    "ProjectionExpression": ", ".join(names),
                    "ExpressionAttributeNames": names,
                }
            }
            for attempt in range(CALL_ATTEMPTS):
                try:
                    answer = self.call("batch_get_item", {"RequestItems": request}, repeatable=True)
                except Exception as exc:
                    raise _unavailable(exc) from exc
                for item in answer.get("Responses", {}).get(self.table_name, []):
                    phone, windows = by_key[item["pk"]["S"]]
                    found[phone] = left(windows, counts_of(item, windows))
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                _pause(attempt)
        return found

    def give_back(self, items: list[tuple[list[Window], int]]) -> list[bool]:
        """Give back each item's units, all at once: whether each is back (a failed one stays counted)."""
        jobs = [self.ledger.submit(self._return, windows, n) if n > 0 and windows else None for windows, n in items]
        return [job is None or job.exception() is None for job in jobs]

    def abandon(self, items: list[tuple[list[Window], int]]) -> None:
        """Give back what a failing request took, as far as DynamoDB lets: its error is the one told."""
        self.give_back(items)

    def _return(self, windows: Sequence[Window], units: int) -> None:
        names = {f"#c{i}": w.attribute for i, w in enumerate(windows)}
        update = {
            "TableName": self.table_name,
            "Key": {"pk": {"S": windows[0].key}},
            "UpdateExpression": "ADD " + ", ".join(f"{n} :minus" for n in names),
            "ConditionExpression": " AND ".join(f"{n} >= :n" for n in names),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {":minus": {"N": str(-units)}, ":n": {"N": str(units)}},
        }
        try:
            self.call("update_item", update, repeatable=False)
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise _unavailable(exc) from exc
        except Exception as exc:
            raise _unavailable(exc) from exc

    def call(self, operation: str, request: dict[str, Any], *, repeatable: bool) -> dict[str, Any]:
        """One DynamoDB call, made again where that cannot apply it twice: after an answer saying it
        was not carried out or a connection never made, whatever the call; after a lost answer (a
        timeout, a 5xx) only if it is `repeatable` (a read, a transaction with its token). Never
        made again once the deadline would not leave it time."""
        method = getattr(self.ledger.client, operation)
        for attempt in range(CALL_ATTEMPTS):
            try:
                answer: dict[str, Any] = method(**request)
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if self._last(attempt) or not (_code(exc) in _NOT_DONE or (repeatable and status >= 500)):
                    raise
            except (EndpointConnectionError, ConnectTimeoutError):
                if self._last(attempt):
                    raise
            except HTTPClientError:  # the request may have been carried out, its answer lost
                if self._last(attempt) or not repeatable:
                    raise
            else:
                return answer
            _pause(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _last(self, attempt: int) -> bool:
        """Whether a failed call is not to be made again: attempts used up, or no time for one more."""
        return attempt + 1 == CALL_ATTEMPTS or not self.deadline.allows(CALL_SECONDS)


def _fitting(scope: Scope, room: int) -> int:
    """The cost of the scope's first numbers that fit in `room`."""
    units = 0
    for cost in scope.costs.values():
        if units + cost > room:
            break
        units += cost
    return units


def closed_until(item: dict[str, Any]) -> int | None:
    """A guard item's cool-down end, when one is set and not over."""
    value = item.get("closed_until", {}).get("N")
    return int(value) if value is not None and int(value) >= time.time() else None


def _pause(attempt: int) -> None:
    """A short, jittered wait before trying again after a conflict or a throttle."""
    time.sleep(random.uniform(0, 0.02 * 2**attempt))  # noqa: S311 - jitter, not a secret


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unavailable(exc: Exception) -> DependencyUnavailable:
    return DependencyUnavailable(f"DynamoDB is unavailable ({type(exc).__name__})")
