"""What the API answers: one result per phone number, or an error in one documented shape."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from http import HTTPStatus
from typing import Self

from pydantic import BaseModel, Field

from smsgw.outcomes import GATEWAY_REFUSALS, WAIT_REFUSALS, SendResult, Status
from smsgw.quota_windows import Reservation

PROVIDER_FAILURES = frozenset({Status.RETRYABLE, Status.AMBIGUOUS})
UNRECORDED = "The outcome of an earlier attempt with this key was not recorded: the SMS may have been sent."


def _unset(value: object) -> bool:
    return value is None


class NumberQuota(BaseModel):
    remaining: int | None = Field(
        default=None,
        description="Sends left for this number in its tightest window, after this one.",
        exclude_if=_unset,
    )
    scope: str | None = Field(default=None, description="For quota_exceeded: phone, account or ip.", exclude_if=_unset)
    period: str | None = Field(default=None, description="For quota_exceeded: minute, hour or day.", exclude_if=_unset)
    retry_after: int | None = Field(
        default=None, description="For quota_exceeded: seconds until the window ends.", exclude_if=_unset
    )


class AttemptResult(BaseModel):
    provider: str
    operation: str
    status: Status
    provider_code: str | None


class NumberResult(BaseModel):
    phone_number: str = Field(description="The number in E.164, whatever spelling the request used.")
    status: Status
    message_id: str | None = Field(description="The provider's id for the message, when it gave one.")
    provider_code: str | None = Field(description="The provider's own status or error code.")
    provider_message: str | None
    retry_safe: bool = Field(description="Whether sending this number again cannot produce a second SMS.")
    quota: NumberQuota | None = Field(default=None, exclude_if=_unset)
    provider: str | None = Field(
        default=None, description="POST /v1/messages: the provider that answered last.", exclude_if=_unset
    )
    attempts: list[AttemptResult] | None = Field(
        default=None, description="POST /v1/messages: every provider tried, in order.", exclude_if=_unset
    )


class Summary(BaseModel):
    accepted: int
    rejected: int
    rate_limited: int
    retryable: int
    ambiguous: int
    quota_exceeded: int
    budget_exceeded: int
    blocked_by_guard: int
    opted_out: int
    country_not_allowed: int

    @classmethod
    def of(cls, statuses: Iterable[Status]) -> Summary:
        counted = list(statuses)
        return cls(**{status.value: counted.count(status) for status in Status})


class ErrorDetail(BaseModel):
    field: str
    type: str
    message: str


class ErrorInfo(BaseModel):
    code: str = Field(description="A stable, machine-readable error code.", examples=["invalid_request"])
    message: str
    details: list[ErrorDetail] | None = Field(default=None, exclude_if=_unset)


class ErrorResponse(BaseModel):
    error: ErrorInfo
    request_id: str | None


QUOTA_EXCEEDED = ErrorInfo(code="quota_exceeded", message="No number could be sent: its quota is used up.")
WAITS = {
    Status.QUOTA_EXCEEDED: QUOTA_EXCEEDED,
    Status.BUDGET_EXCEEDED: ErrorInfo(
        code="budget_exceeded", message="No number could be sent: the day's budget is spent."
    ),
    Status.BLOCKED_BY_GUARD: ErrorInfo(
        code="blocked_by_guard", message="No number could be sent: their number block or country is sent to too fast."
    ),
}
"""The 429 answers: no number could go, and time will change that (see Retry-After)."""
PROVIDER_FAILED = ErrorInfo(
    code="provider_failed",
    message="No number was confirmed sent: `ambiguous` numbers may have been sent and must not be sent again.",
)
RECORD_INCOMPLETE = ErrorInfo(
    code="record_incomplete",
    message=(
        "The results are what the provider answered, but they could not be recorded: the message log "
        "does not have this request, and the numbers that may have been sent will not be sent again."
    ),
)


class SendResponse(BaseModel):
    request_id: str = Field(description="The gateway's id of this request (API Gateway's request id).")
    provider: str
    operation: str
    summary: Summary
    results: list[NumberResult] = Field(description="One result per number given, in the order given.")
    quota_remaining: dict[str, int] = Field(
        default_factory=dict, description="What is left today of the account's and the source IP's quota."
    )
    error: ErrorInfo | None = Field(
        default=None,
        description="Set when no number was sent: quota_exceeded (429) or provider_failed (502).",
        exclude_if=_unset,
    )
    warning: ErrorInfo | None = Field(
        default=None,
        description="Set when the answer could not be recorded (record_incomplete): the results still hold.",
        exclude_if=_unset,
    )

    @classmethod
    def of(cls, request_id: str, result: SendResult, reservation: Reservation | None = None) -> SendResponse:
        results = []
        for o in result.outcomes:
            quota = None
            if reservation is not None and o.phone in reservation.denied:
                denial = reservation.denied[o.phone]
                quota = NumberQuota(scope=denial.scope, period=denial.period, retry_after=denial.retry_after)
            elif reservation is not None and reservation.remaining.get(o.phone, -1) >= 0:
                quota = NumberQuota(remaining=reservation.remaining[o.phone])
            results.append(
                NumberResult(
                    phone_number=o.phone,
                    status=o.status,
                    message_id=o.message_id,
                    provider_code=o.provider_code,
                    provider_message=o.provider_message,
                    retry_safe=o.retry_safe,
                    quota=quota,
                    provider=o.provider,
                    attempts=[
                        AttemptResult(
                            provider=a.provider, operation=a.operation, status=a.status, provider_code=a.provider_code
                        )
                        for a in o.attempts
                    ]
                    or None,
                )
            )
        shared = dict(reservation.shared_remaining) if reservation else {}
        refused = frozenset(o.phone for o in result.outcomes if o.auth_error)
        return cls._judged(request_id, result.provider, result.operation, results, shared, refused)

    @classmethod
    def unrecorded(cls, request_id: str, provider: str, operation: str, numbers: Sequence[str]) -> SendResponse:
        """The answer for numbers an attempt may have sent, when it did not live to record it."""
        results = [
            NumberResult(
                phone_number=phone,
                status=Status.AMBIGUOUS,
                message_id=None,
                provider_code=None,
                provider_message=UNRECORDED,
                retry_safe=False,
            )
            for phone in numbers
        ]
        return cls._judged(request_id, provider, operation, results, {})

    def merged(self, later: SendResponse) -> SendResponse:
        """This answer with the numbers a later attempt sent again replaced by what it answered."""
        replaced = {r.phone_number: r for r in later.results}
        results = [replaced.get(r.phone_number, r) for r in self.results]
        return self._judged(later.request_id, self.provider, self.operation, results, later.quota_remaining)

    @classmethod
    def _judged(
        cls,
        request_id: str,
        provider: str,
        operation: str,
        results: list[NumberResult],
        shared: dict[str, int],
        auth_refused: frozenset[str] = frozenset(),
    ) -> Self:
        statuses = [r.status for r in results]
        # Every number the provider was asked to send failed there; a refused credential counts:
        # the gateway's operators, not the caller, must fix it.
        tried = [r for r in results if r.status not in GATEWAY_REFUSALS]
        waiting = [r.status for r in results if r.status in WAIT_REFUSALS]
        error = None
        if not tried and waiting:
            error = WAITS[waiting[0]]
        elif tried and all(r.status in PROVIDER_FAILURES or r.phone_number in auth_refused for r in tried):
            error = PROVIDER_FAILED
        return cls(
            request_id=request_id,
            provider=provider,
            operation=operation,
            summary=Summary.of(statuses),
            results=results,
            quota_remaining=shared,
            error=error,
        )

    def numbers(self, *statuses: Status) -> list[str]:
        """The distinct numbers with one of these statuses, in the order given."""
        return list(dict.fromkeys(r.phone_number for r in self.results if r.status in statuses))

    @property
    def nothing_sent(self) -> bool:
        """No number was or may have been sent: a 429, or a 502 without `ambiguous` numbers."""
        return not self.numbers(Status.ACCEPTED, Status.AMBIGUOUS)

    def http_status(self) -> tuple[int, dict[str, str]]:
        """The HTTP status this answer goes out with, and its own headers."""
        if self.error is not None and self.error.code in {e.code for e in WAITS.values()}:
            waits = [r.quota.retry_after for r in self.results if r.quota and r.quota.retry_after is not None]
            return HTTPStatus.TOO_MANY_REQUESTS, {"Retry-After": str(min(waits, default=1))}
        if self.error is not None and self.error.code == PROVIDER_FAILED.code:
            return HTTPStatus.BAD_GATEWAY, {}
        return HTTPStatus.OK, {}
