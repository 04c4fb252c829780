"""What the API answers: one result per phone number, or an error in one documented shape."""

from __future__ import annotations

from pydantic import BaseModel, Field

from smsgw.outcomes import SendResult, Status


class NumberResult(BaseModel):
    phone_number: str
    status: Status
    message_id: str | None = Field(description="The provider's id for the message, when it gave one.")
    provider_code: str | None = Field(description="The provider's own status or error code.")
    provider_message: str | None
    retry_safe: bool = Field(description="Whether sending this number again cannot produce a second SMS.")


class Summary(BaseModel):
    accepted: int
    rejected: int
    rate_limited: int
    retryable: int
    ambiguous: int


class ErrorDetail(BaseModel):
    field: str
    type: str
    message: str


class ErrorInfo(BaseModel):
    code: str = Field(description="A stable, machine-readable error code.", examples=["invalid_request"])
    message: str
    details: list[ErrorDetail] | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo
    request_id: str | None


class SendResponse(BaseModel):
    request_id: str = Field(description="The gateway's id of this request (API Gateway's request id).")
    provider: str
    operation: str
    summary: Summary
    results: list[NumberResult]
    error: ErrorInfo | None = Field(
        default=None, description="Set when the provider failed for every number.", exclude_if=lambda v: v is None
    )

    @classmethod
    def of(cls, request_id: str, result: SendResult) -> SendResponse:
        return cls(
            request_id=request_id,
            provider=result.provider,
            operation=result.operation,
            summary=Summary(**{status.value: result.count(status) for status in Status}),
            results=[
                NumberResult(
                    phone_number=o.phone,
                    status=o.status,
                    message_id=o.message_id,
                    provider_code=o.provider_code,
                    provider_message=o.provider_message,
                    retry_safe=o.retry_safe,
                )
                for o in result.outcomes
            ],
        )
