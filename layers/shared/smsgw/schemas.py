"""What the API answers: one result per phone number, or an error in one documented shape."""

from __future__ import annotations

from pydantic import BaseModel, Field

from smsgw.outcomes import SendResult, Status
from smsgw.quotas import Reservation


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


class NumberResult(BaseModel):
    phone_number: str
    status: Status
    message_id: str | None = Field(description="The provider's id for the message, when it gave one.")
    provider_code: str | None = Field(description="The provider's own status or error code.")
    provider_message: str | None
    retry_safe: bool = Field(description="Whether sending this number again cannot produce a second SMS.")
    quota: NumberQuota | None = Field(default=None, exclude_if=_unset)


class Summary(BaseModel):
    accepted: int
    rejected: int
    rate_limited: int
    retryable: int
    ambiguous: int
    quota_exceeded: int


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


class SendResponse(BaseModel):
    request_id: str = Field(description="The gateway's id of this request (API Gateway's request id).")
    provider: str
    operation: str
    summary: Summary
    results: list[NumberResult]
    quota_remaining: dict[str, int] = Field(
        default_factory=dict, description="What is left today of the account's and the source IP's quota."
    )
    error: ErrorInfo | None = Field(
        default=None,
        description="Set when no number was sent: quota_exceeded (429) or provider_failed (502).",
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
                )
            )
        return cls(
            request_id=request_id,
            provider=result.provider,
            operation=result.operation,
            summary=Summary(**{status.value: result.count(status) for status in Status}),
            results=results,
            quota_remaining=dict(reservation.shared_remaining) if reservation else {},
        )
