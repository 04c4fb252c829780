"""The DynamoDB calls of one quota reservation, with its deadline (smsgw.quotas has the rules they
follow: which calls are made again, and when)."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.config import Config
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, HTTPClientError

from smsgw.clock import Deadline
from smsgw.errors import DependencyUnavailable
from smsgw.quota_windows import (
    Counts,
    Own,
    Took,
    Window,
    counts_of,
    left,
)

if TYPE_CHECKING:
    from smsgw.quotas import QuotaLedger

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
RETRYABLE_CANCELLATIONS = {"None", "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
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


class Calls:
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
            raise unavailable(exc) from exc
        except Exception as exc:
            raise unavailable(exc) from exc
        return Took(True, counts_of(answer["Attributes"], windows))

    def take_each(self, owns: Sequence[Own], lead: dict[str, Any] | None = None) -> dict[str, Took]:
        """One unit from each number's item, and its checks, in one transaction: a transaction does
        not tell the counts it left (None); a refusal tells the counts, or the check, that refused.
        A `lead` action (an idempotency claim) goes first in it: refused, nothing is taken."""
        if lead is None and len(owns) == 1 and not owns[0].checks:
            return {owns[0].phone: self.take(owns[0].windows, 1)}
        results: dict[int, Took] = {}
        pending = list(range(len(owns)))
        for attempt in range(TRANSACTION_ATTEMPTS):
            if not pending or (lead is None and len(pending) == 1 and not owns[pending[0]].checks):
                break
            refused, pending, lead = self.transact(owns, pending, attempt, lead=lead)
            results.update(refused)
        if lead is not None:  # every number refused, or the transactions kept conflicting
            self.lead_alone(lead)
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

    def actions(self, own: Own, units: int = 1) -> list[dict[str, Any]]:
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

    def lead_alone(self, lead: dict[str, Any]) -> None:
        """A lead action with no number to take beside it."""
        transaction = {"TransactItems": [lead], "ClientRequestToken": str(uuid.uuid4())}
        try:
            self.call("transact_write_items", transaction, repeatable=True)
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                raise LeadRefused(reasons[0].get("Item") or {}) from None
            raise unavailable(exc) from exc
        except Exception as exc:
            raise unavailable(exc) from exc

    def transact(
        self,
        owns: Sequence[Own],
        pending: list[int],
        attempt: int,
        units: Mapping[str, int] | None = None,
        lead: dict[str, Any] | None = None,
    ) -> tuple[dict[int, Took], list[int], dict[str, Any] | None]:
        """One transaction over the pending items (after the lead, if any): what it settled, what is
        to be tried again, and the lead if it is still to be written."""
        actions = {index: self.actions(owns[index], (units or {}).get(owns[index].phone, 1)) for index in pending}
        leading = [lead] if lead is not None else []
        transaction = {
            "TransactItems": [*leading, *(action for index in pending for action in actions[index])],
            # The same token on a call made again after a lost answer: DynamoDB applies it once.
            "ClientRequestToken": str(uuid.uuid4()),
        }
        try:
            self.call("transact_write_items", transaction, repeatable=True)
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if _code(exc) != "TransactionCanceledException" or len(reasons) != len(transaction["TransactItems"]):
                raise unavailable(exc) from exc
            if leading and reasons[0].get("Code") == "ConditionalCheckFailed":
                raise LeadRefused(reasons[0].get("Item") or {}) from None
            settled: dict[int, Took] = {}
            again = []
            position = len(leading)
            for index in pending:
                own, count = owns[index], len(actions[index])
                mine = reasons[position : position + count]
                position += count
                verdict = self.verdict(own, mine, exc)
                if verdict is None:
                    again.append(index)
                else:
                    settled[index] = verdict
            if len(again) == len(pending):
                pause(attempt)  # nothing refused: another writer was in the way
            return settled, again, lead
        except Exception as exc:
            raise unavailable(exc) from exc
        return dict.fromkeys(pending, Took(True, None)), [], None

    @staticmethod
    def verdict(own: Own, reasons: Sequence[dict[str, Any]], exc: ClientError) -> Took | None:
        """A number's share of a cancellation: refused (by a check, or by its windows), or None to try again."""
        codes = [reason.get("Code") for reason in reasons]
        checks = codes[1:] if own.windows else codes
        for check, code in zip(own.checks, checks, strict=True):
            if code == "ConditionalCheckFailed":
                return Took(False, None, check.scope)
        if own.windows and codes[0] == "ConditionalCheckFailed":
            item = reasons[0].get("Item") or {}
            return Took(False, counts_of(item, own.windows), closed_until=closed_until(item))
        if all(code in RETRYABLE_CANCELLATIONS for code in codes):
            return None
        raise unavailable(exc)

    def read(self, windows: Sequence[Window]) -> Counts:
        read = {"TableName": self.table_name, "Key": {"pk": {"S": windows[0].key}}, "ConsistentRead": True}
        try:
            item = self.call("get_item", read, repeatable=True).get("Item")
        except Exception as exc:
            raise unavailable(exc) from exc
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
                    raise unavailable(exc) from exc
                for item in answer.get("Responses", {}).get(self.table_name, []):
                    phone, windows = by_key[item["pk"]["S"]]
                    found[phone] = left(windows, counts_of(item, windows))
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                pause(attempt)
        return found

    def give_back(self, items: list[tuple[list[Window], int]]) -> list[bool]:
        """Give back each item's units, all at once: whether each is back (a failed one stays counted)."""
        jobs = [self.ledger.submit(self._return, windows, n) if n > 0 and windows else None for windows, n in items]
        return [job is None or job.exception() is None for job in jobs]

    def abandon(self, items: list[tuple[list[Window], int]]) -> None:
        """Give back what a failing request took, as far as DynamoDB lets: its error is the one told.
        Past the deadline, nothing is tried: the units stay counted (one request too many)."""
        if self.deadline.allows(CALL_SECONDS):
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
                raise unavailable(exc) from exc
        except Exception as exc:
            raise unavailable(exc) from exc

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
            pause(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _last(self, attempt: int) -> bool:
        """Whether a failed call is not to be made again: attempts used up, or no time for one more."""
        return attempt + 1 == CALL_ATTEMPTS or not self.deadline.allows(CALL_SECONDS)


class LeadRefused(Exception):
    """A lead action's condition failed: nothing of the reservation was taken. `item` is the item
    as it is (what holds the idempotency key)."""

    def __init__(self, item: dict[str, Any]) -> None:
        super().__init__("the lead action was refused")
        self.item = item


def closed_until(item: dict[str, Any]) -> int | None:
    """A guard item's cool-down end, when one is set and not over."""
    value = item.get("closed_until", {}).get("N")
    return int(value) if value is not None and int(value) >= time.time() else None


def pause(attempt: int) -> None:
    """A short, jittered wait before trying again after a conflict or a throttle."""
    time.sleep(random.uniform(0, 0.02 * 2**attempt))  # noqa: S311 - jitter, not a secret


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def unavailable(exc: Exception) -> DependencyUnavailable:
    return DependencyUnavailable(f"DynamoDB is unavailable ({type(exc).__name__})")
