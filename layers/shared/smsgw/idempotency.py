"""Idempotency records: one per (tenant, route, key), in DynamoDB, so that a send is never repeated.

A record is claimed before anything is counted or sent, and from that moment it says "this
attempt may send these numbers". An attempt that ends writes what it answered (`done`) in the same
transaction as the message log record. An attempt that cannot write its end (DynamoDB went away
after the provider answered; the function was stopped) leaves its claim behind: once the claim's
lock has passed (the attempt's own deadline, after which it can no longer be running), the next
attempt with the key finds numbers that may have been sent and settles them as `ambiguous`,
without calling the provider again. Only an attempt that provably sent nothing gives its claim back.

Powertools' idempotency utility expires an unfinished record with the invocation and then runs
the function again: for an SMS that was accepted and then not recorded, that is a second SMS.
Hence this store of the gateway's own.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from smsgw import gathering
from smsgw.bodies import restored, stored
from smsgw.errors import DependencyUnavailable, GatewayError
from smsgw.quota_calls import TRANSACTION_ATTEMPTS, TRANSACTION_ITEMS

Answer = dict[str, Any]
"""An answer's body as stored and replayed (the API's JSON answer to the request)."""
State = Literal["pending", "done"]


class IdempotencyInProgress(GatewayError):
    status_code = 409
    code = "idempotency_in_progress"


class IdempotencyKeyReused(GatewayError):
    status_code = 422
    code = "idempotency_key_reused"


def fingerprint(body: Any) -> str:
    """What identifies a request's content: the same key with another body is refused."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Claim:
    """This attempt holds the key: it may send `numbers` until `lock_until` (epoch seconds)."""

    scope: str
    owner: str
    request_id: str
    numbers: tuple[str, ...]
    lock_until: int
    previous: Answer | None = None
    """What earlier attempts with the key answered, when this one sends again what they did not."""


@dataclass(frozen=True, slots=True)
class Prior:
    """The record another attempt left."""

    scope: str
    state: State
    fingerprint: str
    owner: str
    request_id: str
    numbers: tuple[str, ...]
    lock_until: int
    answer: Answer | None

    def running(self, now: float) -> bool:
        """Whether the attempt that claimed it may still be running."""
        return self.state == "pending" and now < self.lock_until


class IdempotencyStore:
    def __init__(
        self, table_name: str, *, expires_after_seconds: int, client: Any, now: Callable[[], float] = time.time
    ) -> None:
        self.table_name = table_name
        self.expires_after = expires_after_seconds
        self.client = client
        self.now = now
        """The wall clock, in epoch seconds: locks and expiry are read against it."""

    # -- claiming ----------------------------------------------------------------------------------

    def claim_lead(
        self,
        scope: str,
        digest: str,
        *,
        request_id: str,
        numbers: Sequence[str],
        lock_until: int,
        keep_seconds: int | None = None,
    ) -> tuple[Claim, dict[str, Any]]:
        """A claim as a transaction's first action: written in the same round as the quota take
        (smsgw.quotas, `lead`); refused, the quota's `LeadRefused` carries what holds the key."""
        owner = uuid.uuid4().hex
        now = int(self.now())
        item = {
            "id": {"S": scope},
            "state": {"S": "pending"},
            "fingerprint": {"S": digest},
            "owner": {"S": owner},
            "request_id": {"S": request_id},
            "numbers": {"S": json.dumps(list(numbers))},
            "lock_until": {"N": str(lock_until)},
            "expiration": {"N": str(now + (keep_seconds or self.expires_after))},
        }
        put = {
            "TableName": self.table_name,
            "Item": item,
            # TTL deletes lazily: a record past its time counts as gone.
            "ConditionExpression": "attribute_not_exists(id) OR expiration < :now",
            "ExpressionAttributeValues": {":now": {"N": str(now)}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        return Claim(scope, owner, request_id, tuple(numbers), lock_until), {"Put": put}

    @staticmethod
    def prior_of(claim: Claim, item: dict[str, Any]) -> Prior | None:
        """What holds the key, from the item a refused claim met; None if it is this claim itself
        (carried out, then tried again after its answer was lost)."""
        prior = _prior(claim.scope, item)
        return None if prior.owner == claim.owner else prior

    def take_over(self, prior: Prior, *, numbers: Sequence[str], lock_until: int, request_id: str) -> Claim:
        """Claim a finished record again, to send the numbers it left provably unsent."""
        owner = uuid.uuid4().hex
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"id": {"S": prior.scope}},
                UpdateExpression=(
                    "SET #state = :pending, #owner = :owner, numbers = :numbers, lock_until = :lock, request_id = :rid"
                ),
                ConditionExpression="#owner = :prior AND #state = :state",
                ExpressionAttributeNames={"#state": "state", "#owner": "owner"},
                ExpressionAttributeValues={
                    ":pending": {"S": "pending"},
                    ":owner": {"S": owner},
                    ":numbers": {"S": json.dumps(list(numbers))},
                    ":lock": {"N": str(lock_until)},
                    ":rid": {"S": request_id},
                    ":prior": {"S": prior.owner},
                    ":state": {"S": prior.state},
                },
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise IdempotencyInProgress("Another request with this Idempotency-Key is being processed.") from None
            raise _unavailable(exc) from exc
        except Exception as exc:
            raise _unavailable(exc) from exc
        return Claim(prior.scope, owner, request_id, tuple(numbers), lock_until, previous=prior.answer)

    # -- ending ------------------------------------------------------------------------------------

    def complete(self, claim: Claim, answer: Answer, *, puts: Sequence[dict[str, Any]] = ()) -> None:
        """Record what the attempt answered, with other puts (the message log's record), in one transaction."""
        try:
            self._finish(claim.scope, claim.owner, "pending", answer, puts)
        except _LostRace:
            # Only past its lock can another attempt have taken the record: this one ran too long.
            raise DependencyUnavailable("the idempotency record was taken over by a later attempt") from None

    def settle(self, prior: Prior, answer: Answer, *, puts: Sequence[dict[str, Any]] = ()) -> None:
        """Record the answer of an attempt that ended without writing it."""
        try:
            self._finish(prior.scope, prior.owner, prior.state, answer, puts)
        except _LostRace:
            raise IdempotencyInProgress("Another request with this Idempotency-Key is being processed.") from None

    def release(self, claim: Claim) -> bool:
        """Give the key back after an attempt that provably sent nothing; False if DynamoDB did not
        answer (the claim then stays, and a later attempt reads its numbers as possibly sent)."""
        try:
            self.client.delete_item(
                TableName=self.table_name,
                Key={"id": {"S": claim.scope}},
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": claim.owner}},
            )
        except ClientError as exc:
            return _code(exc) == "ConditionalCheckFailedException"  # already gone
        except Exception:
            return False
        return True

    def _finish(self, scope: str, owner: str, state: State, answer: Answer, puts: Sequence[dict[str, Any]]) -> None:
        update = {
            "TableName": self.table_name,
            "Key": {"id": {"S": scope}},
            "UpdateExpression": "SET #state = :done, answer = :answer REMOVE lock_until, numbers",
            "ConditionExpression": "#owner = :owner AND #state = :state",
            "ExpressionAttributeNames": {"#state": "state", "#owner": "owner"},
            "ExpressionAttributeValues": {
                ":done": {"S": "done"},
                ":answer": stored(answer),
                ":owner": {"S": owner},
                ":state": {"S": state},
            },
        }
        items: list[dict[str, Any]] = [{"Update": update}]
        items += [{"Put": put} for put in puts]
        try:
            member = gathering.current()
            if member is None:
                self._transact(items)
            else:  # a batch's records end in one transaction
                member.gather("idempotency.finish", self._together, items)
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                raise _LostRace from None
            raise _unavailable(exc) from exc
        except Exception as exc:
            raise _unavailable(exc) from exc

    def _transact(self, items: list[dict[str, Any]]) -> None:
        # One token for the call and botocore's own retries of it: DynamoDB applies it once.
        self.client.transact_write_items(TransactItems=items, ClientRequestToken=uuid.uuid4().hex)

    def _together(self, transactions: list[list[dict[str, Any]]]) -> list[BaseException | None]:
        """Several records' ends in as few transactions as hold them: each gets what its own
        transaction would have (its own cancellation reasons, or nothing); a record not at fault in a
        cancelled transaction is written again without the one that was."""
        results: list[BaseException | None] = [None] * len(transactions)
        pending = list(range(len(transactions)))
        for _ in range(TRANSACTION_ATTEMPTS):
            again: list[int] = []
            for group in _packed(pending, [len(t) for t in transactions]):
                again += self._group(group, transactions, results)
            pending = again
            if not pending:
                return results
        for index in pending:  # kept conflicting: one by one
            results[index] = self._alone(transactions[index])
        return results

    def _alone(self, items: list[dict[str, Any]]) -> BaseException | None:
        try:
            self._transact(items)
        except Exception as exc:  # its own call's error
            return exc
        return None

    def _group(
        self, group: list[int], transactions: list[list[dict[str, Any]]], results: list[BaseException | None]
    ) -> list[int]:
        """One transaction for a group: the records to write again (not at fault in a cancellation)."""
        items = [item for index in group for item in transactions[index]]
        try:
            self._transact(items)
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if len(group) > 1 and _code(exc) == "ValidationException":  # two records on one item
                for index in group:
                    results[index] = self._alone(transactions[index])
                return []
            if len(reasons) != len(items):
                for index in group:
                    results[index] = exc
                return []
            again, position = [], 0
            for index in group:
                mine = reasons[position : position + len(transactions[index])]
                position += len(mine)
                if all(reason.get("Code") == "None" for reason in mine):
                    again.append(index)
                else:
                    results[index] = _cancelled(mine)
            return again
        except Exception as exc:  # the outcome is unknown to every record in it
            for index in group:
                results[index] = exc
        return []


def _packed(indexes: list[int], sizes: list[int]) -> list[list[int]]:
    """Consecutive groups of at most 100 actions (DynamoDB's ceiling for a transaction)."""
    groups: list[list[int]] = []
    used = 0
    for index in indexes:
        if not groups or used + sizes[index] > TRANSACTION_ITEMS:
            groups.append([])
            used = 0
        groups[-1].append(index)
        used += sizes[index]
    return groups


def _cancelled(reasons: list[dict[str, Any]]) -> ClientError:
    """The cancellation a record's own transaction would have met."""
    error = {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"}
    return ClientError({"Error": error, "CancellationReasons": reasons}, "TransactWriteItems")


class _LostRace(Exception):
    """The record is no longer the one this attempt held."""


def _prior(scope: str, item: dict[str, Any]) -> Prior:
    answer = restored(item["answer"]) if "answer" in item else None
    return Prior(
        scope=scope,
        state="done" if item.get("state", {}).get("S") == "done" else "pending",
        fingerprint=item.get("fingerprint", {}).get("S", ""),
        owner=item.get("owner", {}).get("S", ""),
        request_id=item.get("request_id", {}).get("S", ""),
        numbers=tuple(json.loads(item.get("numbers", {}).get("S", "[]"))),
        lock_until=int(item.get("lock_until", {}).get("N", "0")),
        answer=answer,
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unavailable(exc: Exception) -> DependencyUnavailable:
    return DependencyUnavailable(f"DynamoDB is unavailable ({type(exc).__name__})")
