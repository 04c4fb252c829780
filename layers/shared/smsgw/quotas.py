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
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, HTTPClientError

from smsgw.clock import Clock, Deadline, utc_now
from smsgw.errors import DependencyUnavailable
from smsgw.quota_windows import (
    Counts,
    Limits,
    Reservation,
    Share,
    Subject,
    Taken,
    Window,
    counts_of,
    left,
    phone_windows,
    plan,
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

    def reserve(self, subject: Subject, phones: Sequence[str], deadline: Deadline = _NO_DEADLINE) -> Reservation:
        """Take one unit per number (distinct numbers, in the order given) from its own windows and
        from the shared scopes; the numbers that do not fit are denied."""
        calls = _Calls(self, deadline)
        now = self.clock()
        windows = {phone: phone_windows(self.limits, subject, phone, now) for phone in phones}
        shared = shared_windows(self.limits, subject, now)
        counted = [phone for phone in phones if windows[phone]]
        chunks = [counted[i : i + TRANSACTION_ITEMS] for i in range(0, len(counted), TRANSACTION_ITEMS)]

        shared_jobs = [self._pool.submit(calls.take, [w], len(phones)) for w in shared]
        # The first chunk is taken in this thread, the others beside it: no hand-off for the usual send.
        chunk_jobs = [self._pool.submit(calls.take_each, [windows[p] for p in chunk]) for chunk in chunks[1:]]
        taken: dict[str, Taken] = {}
        errors: list[BaseException] = []
        if chunks:
            try:
                taken.update(zip(chunks[0], calls.take_each([windows[p] for p in chunks[0]]), strict=True))
            except DependencyUnavailable as exc:
                errors.append(exc)
        # Nothing of this request is left running once it returns.
        running: list[Future[Any]] = [*shared_jobs, *chunk_jobs]
        wait(running)
        for chunk, job in zip(chunks[1:], chunk_jobs, strict=True):
            if (error := job.exception()) is None:
                taken.update(zip(chunk, job.result(), strict=True))
            else:
                errors.append(error)
        errors += [error for job in shared_jobs if (error := job.exception()) is not None]
        held = [(windows[p], 1) for p, (took, _) in taken.items() if took]
        shared_taken = [(w, job.result()) for w, job in zip(shared, shared_jobs, strict=True) if not job.exception()]
        held += [([w], len(phones)) for w, (took_all, _) in shared_taken if took_all]
        shares: list[Share] = []
        try:
            if errors:
                raise errors[0]
            for window, (took_all, counts) in shared_taken:
                shares.append(calls.share(window, len(phones), took_all, counts))
                if not took_all:
                    held.append(([window], shares[-1].units))
        except DependencyUnavailable:
            calls.abandon(held)  # a request that fails holds nothing
            raise
        decided = plan(phones, windows, taken, shares, now)
        # What the plan does not use goes back; what cannot go back stays counted, and is reported so.
        for (returned, units), done in zip(decided.give_back, calls.give_back(decided.give_back), strict=True):
            if not done and returned[0].scope != "phone":
                decided.reservation.shared_remaining[returned[0].scope] -= units
        if decided.unknown:
            decided.reservation.reading = self._pool.submit(calls.read_remaining, decided.unknown)
        return decided.reservation

    def refund(self, reservation: Reservation, phones: Iterable[str], deadline: Deadline = _NO_DEADLINE) -> bool:
        """Give back the units of numbers the provider definitely did not send. The reservation's
        report counts a unit back only once DynamoDB has it back; False if some could not be."""
        returned = [p for p in phones if p in reservation.granted]
        if not returned:
            return True
        reservation.wait_for_counts()  # read before the counts change
        own = [p for p in returned if reservation.granted[p]]
        shared = list(reservation.shared.items())
        back = [(reservation.granted[p], 1) for p in own] + [([w], len(returned)) for _, (w, _) in shared]
        done = _Calls(self, deadline).give_back(back)
        for p, given in zip(own, done, strict=False):
            if given and reservation.remaining.get(p, -1) >= 0:
                reservation.remaining[p] += 1
        for (scope, (window, units)), given in zip(shared, done[len(own) :], strict=True):
            if given:
                reservation.shared[scope] = (window, units - len(returned))
                reservation.shared_remaining[scope] += len(returned)
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
        """The conditional update adding `units` to every window of one item, if each has room."""
        names = {f"#c{i}": w.attribute for i, w in enumerate(windows)}
        values = {f":r{i}": {"N": str(w.limit - units)} for i, w in enumerate(windows)}
        values[":n"] = {"N": str(units)}
        expires = max(w.ends_at for w in windows).timestamp() + TTL_GRACE_SECONDS
        values[":exp"] = {"N": str(int(expires))}
        return {
            "TableName": self.table_name,
            "Key": {"pk": {"S": windows[0].key}},
            "UpdateExpression": "ADD " + ", ".join(f"{n} :n" for n in names) + " SET expires_at = :exp",
            "ConditionExpression": " AND ".join(
                f"(attribute_not_exists({n}) OR {n} <= :r{i})" for i, n in enumerate(names)
            ),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def take(self, windows: Sequence[Window], units: int) -> tuple[bool, Counts]:
        """Add `units` to one item's windows if all have room: (taken, counts after, or as they are)."""
        if any(units > w.limit for w in windows):
            return False, self.read(windows)
        update = self._update(windows, units)
        update.update(ReturnValues="UPDATED_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD")
        try:
            answer = self.call("update_item", update, repeatable=False)
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False, counts_of(exc.response.get("Item") or {}, windows)
            raise _unavailable(exc) from exc
        except Exception as exc:
            raise _unavailable(exc) from exc
        return True, counts_of(answer["Attributes"], windows)

    def take_each(self, counters: Sequence[Sequence[Window]]) -> list[Taken]:
        """One unit from each of up to 100 items, in one transaction: (taken, counts) per item. A
        transaction does not tell the counts it left (None); a refusal tells the counts that refused."""
        if len(counters) == 1:
            return [self.take(counters[0], 1)]
        results: dict[int, Taken] = {}
        pending = list(range(len(counters)))
        for attempt in range(TRANSACTION_ATTEMPTS):
            if len(pending) <= 1:
                break
            refused, pending = self._transact(counters, pending, attempt)
            results.update(refused)
        for index in pending:  # a lone number, or a transaction that kept conflicting
            try:
                results[index] = self.take(counters[index], 1)
            except DependencyUnavailable:
                self.abandon([(list(counters[i]), 1) for i, (took, _) in results.items() if took])
                raise
        return [results[i] for i in range(len(counters))]

    def _transact(
        self, counters: Sequence[Sequence[Window]], pending: list[int], attempt: int
    ) -> tuple[dict[int, Taken], list[int]]:
        """One transaction over the pending items: what it settled, and what is to be tried again."""
        transaction = {
            "TransactItems": [
                {"Update": {**self._update(counters[i], 1), "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}
                for i in pending
            ],
            # The same token on a call made again after a lost answer: DynamoDB applies it once.
            "ClientRequestToken": str(uuid.uuid4()),
        }
        try:
            self.call("transact_write_items", transaction, repeatable=True)
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if _code(exc) != "TransactionCanceledException" or len(reasons) != len(pending):
                raise _unavailable(exc) from exc
            settled: dict[int, Taken] = {}
            again = []
            for index, reason in zip(pending, reasons, strict=True):
                code = reason.get("Code")
                if code == "ConditionalCheckFailed":
                    settled[index] = (False, counts_of(reason.get("Item") or {}, counters[index]))
                elif code in _RETRYABLE_CANCELLATIONS:
                    again.append(index)
                else:
                    raise _unavailable(exc) from exc
            if len(again) == len(pending):
                _pause(attempt)  # nothing refused: another writer was in the way
            return settled, again
        except Exception as exc:
            raise _unavailable(exc) from exc
        return dict.fromkeys(pending, (True, None)), []

    def share(self, window: Window, wanted: int, took_all: bool, counts: Counts) -> Share:
        """What a shared scope holds for a request: all of it, or as much as is left."""
        used = counts[window.attribute]
        if took_all:
            return Share(window, wanted, used)
        for _ in range(10):  # racing other requests for what is left
            units = min(wanted, window.limit - used)
            if units <= 0:
                break
            took, after = self.take([window], units)
            used = after[window.attribute]
            if took:
                return Share(window, units, used)
        return Share(window, 0, used)

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


def _pause(attempt: int) -> None:
    """A short, jittered wait before trying again after a conflict or a throttle."""
    time.sleep(random.uniform(0, 0.02 * 2**attempt))  # noqa: S311 - jitter, not a secret


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unavailable(exc: Exception) -> DependencyUnavailable:
    return DependencyUnavailable(f"DynamoDB is unavailable ({type(exc).__name__})")
