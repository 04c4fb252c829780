"""`GET /v1/messages/{requestId}`: a request's record, to the tenant that made it and no other."""

from __future__ import annotations

from typing import Annotated, Any, cast

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from pydantic import BaseModel, ConfigDict, Field

from smsgw import phones
from smsgw.api import canonical_phone, json_response, tenant_of
from smsgw.deliveries import RECEIPT_PROVIDERS
from smsgw.errors import GatewayError
from smsgw.observability import report_destinations
from smsgw.rules import block_of
from smsgw.runtime import deliveries, message_log
from smsgw.schemas import ErrorResponse

router = Router()


class MessageNotFound(GatewayError):
    status_code = 404
    code = "message_not_found"


@router.get(
    "/v1/messages/<requestId>",
    summary="A request's record in the message log",
    description=(
        "The answer the request was given, with when it was received and finished, and each accepted number's "
        "delivery status (accepted, delivered, undelivered with the provider's reason, expired); to its API key only."
    ),
    responses={
        200: {"description": "The request's record."},
        403: {"description": "Missing or invalid API key.", "content": {"application/json": {"model": ErrorResponse}}},
        404: {
            "description": "No request with this id for this API key (message_not_found).",
            "content": {"application/json": {"model": ErrorResponse}},
        },
        503: {
            "description": "DynamoDB is unavailable (dependency_unavailable).",
            "content": {"application/json": {"model": ErrorResponse}},
        },
    },
    tags=["messages"],
)
def get_message(requestId: Annotated[str, Path(min_length=1, max_length=128)]) -> dict[str, Any]:
    tenant = tenant_of(cast(APIGatewayProxyEvent, router.current_event))
    record = message_log().find(tenant, requestId)
    if record is None:
        # Another tenant's request id is answered exactly like one that never existed.
        raise MessageNotFound("No request with this id for this API key.")
    results = record.get("results") or []
    accepted = [r["phone_number"] for r in results if r.get("status") == "accepted"]
    known = deliveries().statuses(tenant, requestId, accepted) if accepted else {}
    for result in results:
        if result.get("status") == "accepted":
            result["delivery"] = delivery_of(result, record.get("provider"), known)
    return record


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone_number: str = Field(min_length=4, max_length=20, description="Any spelling of a number of the request.")
    converted: bool = Field(description="Whether the code sent to it was used (a sign the number is real).")


class NotInRequest(GatewayError):
    status_code = 404
    code = "number_not_in_request"


@router.post(
    "/v1/messages/<requestId>/feedback",
    summary="Say whether a sent code was used (conversion feedback)",
    description="Once per number; feeds the conversion-rate metrics by country and number block.",
    responses={
        404: json_response(
            ErrorResponse, "No such request (message_not_found), or number in it (number_not_in_request)."
        ),
        503: json_response(ErrorResponse, "DynamoDB is unavailable."),
    },
    tags=["messages"],
)
def post_feedback(requestId: Annotated[str, Path(min_length=1, max_length=128)], feedback: Feedback) -> dict[str, Any]:
    tenant = tenant_of(cast(APIGatewayProxyEvent, router.current_event))
    record = message_log().find(tenant, requestId)
    if record is None:
        raise MessageNotFound("No request with this id for this API key.")
    number = canonical_phone(feedback.phone_number, "body.phone_number")
    if not any(r.get("phone_number") == number and r.get("status") == "accepted" for r in record.get("results") or []):
        raise NotInRequest("No accepted number of this request is that one.")
    first = deliveries().record_feedback(tenant, requestId, number, converted=feedback.converted)
    if first and feedback.converted:
        report_destinations([(phones.region_of(number), block_of(number))], "converted")
    return {"phone_number": number, "converted": feedback.converted, "recorded": first}


def delivery_of(result: dict[str, Any], provider: str | None, known: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An accepted number's delivery: what receipts and reconciliation settled, else `accepted`;
    Polyv reports no delivery at all, and says so."""
    if (result.get("provider") or provider) not in RECEIPT_PROVIDERS:
        return {"status": "accepted", "receipt": "unavailable"}
    return known.get(result["phone_number"], {"status": "accepted"})
