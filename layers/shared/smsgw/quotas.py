"""Quotas in DynamoDB: per phone number, per account (tenant) and per source IP.

Counters live in fixed windows. A number's windows of one day (its minute, its hour, the day) are
attributes of one item keyed by the number's digest and the day (`m1030`, `h10`, `d`); the account's
and the source IP's day are one item each (`used`). Counters change only by atomic conditional
updates (`ADD` if every window has room), so concurrent workers can never push a counter past its
limit. A window that has passed is simply never addressed again: an expired item that TTL has not
yet deleted cannot count, whatever TTL's lag.

All the updates of a request are issued at once: one update per shared scope, reserving for the
whole request, and the numbers' items in transactions of up to 100 (one `UpdateItem` for a single
number). A transaction is all or nothing, so a number refused by its own limits is named in the
cancellation and the others are taken again without it. If the shared scopes cannot take the whole
request, what is left is granted to the first numbers in the order given; whatever was reserved
for a number that is not sent is given back.

An `ADD` sent twice counts twice, so the ledger's client never retries by itself (`QUOTA_RETRIES`):
the ledger sends a call again only where DynamoDB said it did not carry it out (a throttle, a
conflict with a transaction) or the connection was never made. A lost answer (a timeout, a 5xx) is
sent again only for reads and for transactions, which carry their own idempotency token; for an
update it fails the request, which keeps the unit that may have been taken: a counter may count
one request too many, never one too few.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from botocore.config import Config
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, HTTPClientError

from smsgw.errors import DependencyUnavailable
from smsgw.providers.base import Clock, utc_now

TTL_GRACE = timedelta(minutes=5)
# DynamoDB's ceiling on the actions of one transaction, and on the keys of one BatchGetItem.
TRANSACTION_ITEMS = 100
BATCH_GET_KEYS = 100
# A transaction cancelled for reasons other than a refusal (a conflict with another writer, a
# throttle) is tried again this many times before its numbers are taken one by one.
TRANSACTION_ATTEMPTS = 3
# A call that DynamoDB did not carry out (throttled, in conflict with a transaction, not connected)
# is made this many times in all.
CALL_ATTEMPTS = 5
_RETRYABLE_CANCELLATIONS = {"None", "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
# Errors by which DynamoDB says it did nothing.
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


@dataclass(slots=True)
class Reservation:
    """What a request holds: units per granted number and per shared scope."""

    granted: dict[str, list[Window]] = field(default_factory=dict)
    denied: dict[str, Denial] = field(default_factory=dict)
    shared: dict[str, tuple[Window, int]] = field(default_factory=dict)
    """Per shared scope: its window and the units this request still holds."""
    shared_remaining: dict[str, int] = field(default_factory=dict)
    known_remaining: dict[str, int] = field(default_factory=dict, repr=False)
    pending_remaining: Future[dict[str, int]] | None = field(default=None, repr=False)
    """A transaction tells nothing of the counts it left: they are read while the provider sends."""

    @property
    def remaining(self) -> dict[str, int]:
        """Per granted number: what is left in its tightest window after this send (-1: no window).
        A number whose counts could not be read is left out."""
        if self.pending_remaining is not None:
            pending, self.pending_remaining = self.pending_remaining, None
            # The numbers were granted whatever happened to the read: only the report is lost.
            with contextlib.suppress(DependencyUnavailable):
                self.known_remaining.update(pending.result())
        return self.known_remaining

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


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _counts(item: Mapping[str, Any], windows: Sequence[Window]) -> Counts:
    return {w.attribute: int(item.get(w.attribute, {}).get("N", 0)) for w in windows}


def _left(windows: Sequence[Window], counts: Counts) -> int:
    return min((w.limit - counts[w.attribute] for w in windows), default=-1)


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
        """A number's windows (all in one item), or with no number the shared scopes' (one item each)."""
        now = self.clock().astimezone(self.zone)
        limits = self.limits
        if phone is not None:
            wanted = [
                ("minute", limits.phone_per_minute),
                ("hour", limits.phone_per_hour),
                ("day", limits.phone_per_day),
            ]
            day, _ = _period_bounds(now, "day")
            key = f"{subject.tenant}#phone#{subject.provider}#{phone_key(phone)}#{day}"
            found = []
            for period, limit in wanted:
                if limit <= 0:
                    continue
                window_id, ends_at = _period_bounds(now, period)
                # In the day's item, the window id without the day: m1030, h10, d.
                found.append(Window("phone", period, key, period[0] + window_id[8:], limit, ends_at))
            return found
        shared = []
        if limits.account_per_day > 0:
            prefix = f"{subject.tenant}#account#{subject.provider}"
            shared.append(self._shared_window("account", prefix, limits.account_per_day, now))
        if limits.ip_per_day > 0 and subject.source_ip is not None:
            prefix = f"{subject.tenant}#ip#{subject.provider}#{subject.source_ip}"
            shared.append(self._shared_window("ip", prefix, limits.ip_per_day, now))
        return shared

    @staticmethod
    def _shared_window(scope: str, prefix: str, limit: int, now: datetime) -> Window:
        window_id, ends_at = _period_bounds(now, "day")
        return Window(scope, "day", f"{prefix}#day#{window_id}", "used", limit, ends_at)

    # -- reserving -----------------------------------------------------------------------------

    def reserve(self, subject: Subject, phones: Sequence[str]) -> Reservation:
        reservation = Reservation()
        shared_windows = self.windows(subject, None)
        phone_windows = {phone: self.windows(subject, phone) for phone in phones}
        counted = [phone for phone in phones if phone_windows[phone]]

        shared_jobs = [self._pool.submit(self._take, [w], len(phones)) for w in shared_windows]
        chunks = [counted[i : i + TRANSACTION_ITEMS] for i in range(0, len(counted), TRANSACTION_ITEMS)]
        # The first chunk is taken in this thread, the others beside it: no hand-off for the usual send.
        phone_jobs = [self._pool.submit(self._take_each, [phone_windows[p] for p in chunk]) for chunk in chunks[1:]]
        phone_results: dict[str, tuple[bool, Counts | None]] = {}
        errors: list[BaseException] = []
        if chunks:
            try:
                first = self._take_each([phone_windows[p] for p in chunks[0]])
                phone_results.update(zip(chunks[0], first, strict=True))
            except DependencyUnavailable as exc:
                errors.append(exc)
        # Nothing of this request is left running once it returns.
        running: list[Future[Any]] = [*shared_jobs, *phone_jobs]
        wait(running)
        for chunk, job in zip(chunks[1:], phone_jobs, strict=True):
            if (error := job.exception()) is not None:
                errors.append(error)
            else:
                phone_results.update(zip(chunk, job.result(), strict=True))
        shared_results = {
            w: job.result() for w, job in zip(shared_windows, shared_jobs, strict=True) if not job.exception()
        }
        errors += [error for job in shared_jobs if (error := job.exception()) is not None]
        held = [(phone_windows[p], 1) for p, (taken, _) in phone_results.items() if taken]
        held += [([w], len(phones)) for w, (took_all, _) in shared_results.items() if took_all]
        if errors:
            self._abandon(held)  # a request that fails holds nothing
            raise errors[0]

        # A shared scope that could not take the whole request takes what is left.
        shares: list[tuple[Window, int, int]] = []  # window, units held, used after taking them
        for window, (took_all, counted_now) in shared_results.items():
            used = counted_now[window.attribute]
            if took_all:
                shares.append((window, len(phones), used))
                continue
            try:
                units, used = self._take_partial(window, len(phones), used)
            except DependencyUnavailable:
                self._abandon(held)
                raise
            held.append(([window], units))
            shares.append((window, units, used))
        shared_units = min((units for _, units, _ in shares), default=len(phones))

        to_give_back: list[tuple[list[Window], int]] = []
        unknown: dict[str, list[Window]] = {}
        served = 0
        for phone in phones:
            windows = phone_windows[phone]
            taken, counts = phone_results.get(phone, (True, {}))
            if not taken:
                assert counts is not None
                refused = [w for w in windows if counts[w.attribute] + 1 > w.limit] or windows
                # The number can be sent again only once every full window has ended.
                reservation.denied[phone] = self._denial(max(refused, key=lambda w: w.ends_at))
                continue
            if served >= shared_units:
                if windows:
                    to_give_back.append((windows, 1))
                reservation.denied[phone] = self._denial(min(shares, key=lambda s: s[1])[0])
                continue
            served += 1
            reservation.granted[phone] = windows
            if counts is None:
                unknown[phone] = windows
            else:
                reservation.known_remaining[phone] = _left(windows, counts)

        for window, units, used in shares:
            if units > served:
                to_give_back.append(([window], units - served))
            reservation.shared[window.scope] = (window, served)
            reservation.shared_remaining[window.scope] = window.limit - (used - (units - served))
        self._give_back(to_give_back)
        if unknown:
            reservation.pending_remaining = self._pool.submit(self._read_remaining, unknown)
        return reservation

    def refund(self, reservation: Reservation, phones: Iterable[str]) -> None:
        """Give back the units of numbers the provider definitely did not send."""
        returned = [p for p in phones if p in reservation.granted]
        if not returned:
            return
        remaining = reservation.remaining  # read before the counts change
        back = [(windows, 1) for p in returned if (windows := reservation.granted.pop(p))]
        for p in returned:
            if remaining.get(p, -1) >= 0:
                remaining[p] += 1
        for scope, (window, units) in list(reservation.shared.items()):
            back.append(([window], len(returned)))
            reservation.shared[scope] = (window, units - len(returned))
            reservation.shared_remaining[scope] += len(returned)
        self._give_back(back)

    def _denial(self, window: Window) -> Denial:
        seconds = (window.ends_at - self.clock()).total_seconds()
        return Denial(scope=window.scope, period=window.period, retry_after=max(int(seconds) + 1, 1))

    # -- DynamoDB ------------------------------------------------------------------------------

    def _update(self, windows: Sequence[Window], units: int) -> dict[str, Any]:
        """The conditional update adding `units` to every window of one item, if each has room."""
        names = {f"#c{i}": w.attribute for i, w in enumerate(windows)}
        values = {f":r{i}": {"N": str(w.limit - units)} for i, w in enumerate(windows)}
        values[":n"] = {"N": str(units)}
        expires = max(w.ends_at for w in windows) + TTL_GRACE
        values[":exp"] = {"N": str(int(expires.timestamp()))}
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

    def _take(self, windows: Sequence[Window], units: int) -> tuple[bool, Counts]:
        """Add `units` to one item's windows if all have room: (taken, counts after, or as they are)."""
        if any(units > w.limit for w in windows):
            return False, self._read(windows)
        update = self._update(windows, units)
        update.update(ReturnValues="UPDATED_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD")
        try:
            answer = self._call("update_item", update, repeatable=False)
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False, _counts(exc.response.get("Item") or {}, windows)
            raise _unavailable(exc) from exc
        except Exception as exc:
            raise _unavailable(exc) from exc
        return True, _counts(answer["Attributes"], windows)

    def _take_each(self, counters: Sequence[Sequence[Window]]) -> list[tuple[bool, Counts | None]]:
        """One unit from each of up to 100 items, in one transaction: (taken, counts) per item. A
        transaction does not tell the counts it left (None); a refusal tells the counts that refused."""
        if len(counters) == 1:
            return [self._take(counters[0], 1)]
        results: list[tuple[bool, Counts | None] | None] = [None] * len(counters)
        pending = list(range(len(counters)))
        for attempt in range(TRANSACTION_ATTEMPTS):
            if len(pending) <= 1:
                break
            transaction = {
                "TransactItems": [self._transact_update(counters[i]) for i in pending],
                # The same token on a call made again after a lost answer: DynamoDB applies it once.
                "ClientRequestToken": str(uuid.uuid4()),
            }
            try:
                self._call("transact_write_items", transaction, repeatable=True)
            except ClientError as exc:
                reasons = exc.response.get("CancellationReasons") or []
                if _code(exc) != "TransactionCanceledException" or len(reasons) != len(pending):
                    raise _unavailable(exc) from exc
                again = []
                for index, reason in zip(pending, reasons, strict=True):
                    code = reason.get("Code")
                    if code == "ConditionalCheckFailed":
                        results[index] = (False, _counts(reason.get("Item") or {}, counters[index]))
                    elif code in _RETRYABLE_CANCELLATIONS:
                        again.append(index)
                    else:
                        raise _unavailable(exc) from exc
                if len(again) == len(pending):
                    _pause(attempt)  # nothing refused: another writer was in the way
                pending = again  # refusals are settled; the rest go again
                continue
            except Exception as exc:
                raise _unavailable(exc) from exc
            for index in pending:
                results[index] = (True, None)
            pending = []
        for index in pending:  # a lone number, or a transaction that kept conflicting
            try:
                results[index] = self._take(counters[index], 1)
            except DependencyUnavailable:
                self._abandon([(list(counters[i]), 1) for i, r in enumerate(results) if r is not None and r[0]])
                raise
        return [result for result in results if result is not None]

    def _transact_update(self, windows: Sequence[Window]) -> dict[str, Any]:
        return {"Update": {**self._update(windows, 1), "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}

    def _read(self, windows: Sequence[Window]) -> Counts:
        read = {"TableName": self.table_name, "Key": {"pk": {"S": windows[0].key}}, "ConsistentRead": True}
        try:
            item = self._call("get_item", read, repeatable=True).get("Item")
        except Exception as exc:
            raise _unavailable(exc) from exc
        return _counts(item or {}, windows)

    def _read_remaining(self, numbers: Mapping[str, list[Window]]) -> dict[str, int]:
        """What is left in each number's tightest window, read back after a transaction."""
        by_key = {windows[0].key: (phone, windows) for phone, windows in numbers.items()}
        attributes = sorted({w.attribute for windows in numbers.values() for w in windows})
        names = {f"#c{i}": a for i, a in enumerate(attributes)} | {"#pk": "pk"}
        left: dict[str, int] = {}
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
                    answer = self._call("batch_get_item", {"RequestItems": request}, repeatable=True)
                except Exception as exc:
                    raise _unavailable(exc) from exc
                for item in answer.get("Responses", {}).get(self.table_name, []):
                    phone, windows = by_key[item["pk"]["S"]]
                    left[phone] = _left(windows, _counts(item, windows))
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                _pause(attempt)
        return left

    def _take_partial(self, window: Window, wanted: int, used: int) -> tuple[int, int]:
        """Take as much of `wanted` as is left, racing other requests for it: (units, used after)."""
        for _ in range(10):
            left = min(wanted, window.limit - used)
            if left <= 0:
                break
            taken, counts = self._take([window], left)
            used = counts[window.attribute]
            if taken:
                return left, used
        return 0, used

    def _give_back(self, items: list[tuple[list[Window], int]]) -> None:
        jobs = [self._pool.submit(self._return, windows, n) for windows, n in items if n > 0 and windows]
        for job in jobs:
            job.result()

    def _abandon(self, items: list[tuple[list[Window], int]]) -> None:
        """Give back what a failing request took, as far as DynamoDB lets: its error is the one told."""
        with contextlib.suppress(DependencyUnavailable):
            self._give_back(items)

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
            self._call("update_item", update, repeatable=False)
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise _unavailable(exc) from exc
        except Exception as exc:
            raise _unavailable(exc) from exc

    def _call(self, operation: str, request: dict[str, Any], *, repeatable: bool) -> dict[str, Any]:
        """One DynamoDB call, made again where that cannot apply it twice: after an answer saying it
        was not carried out or a connection never made, whatever the call; after a lost answer (a
        timeout, a 5xx) only if it is `repeatable` (a read, a transaction with its token)."""
        method = getattr(self.client, operation)
        for attempt in range(CALL_ATTEMPTS):
            last = attempt + 1 == CALL_ATTEMPTS
            try:
                answer: dict[str, Any] = method(**request)
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if last or not (_code(exc) in _NOT_DONE or (repeatable and status >= 500)):
                    raise
            except (EndpointConnectionError, ConnectTimeoutError):
                if last:
                    raise
            except HTTPClientError:  # the request may have been carried out, its answer lost
                if last or not repeatable:
                    raise
            else:
                return answer
            _pause(attempt)
        raise AssertionError("unreachable")  # pragma: no cover


def _pause(attempt: int) -> None:
    """A short, jittered wait before trying again after a conflict or a throttle."""
    time.sleep(random.uniform(0, 0.02 * 2**attempt))  # noqa: S311 - jitter, not a secret


def _unavailable(exc: Exception) -> DependencyUnavailable:
    return DependencyUnavailable(f"DynamoDB is unavailable ({type(exc).__name__})")
