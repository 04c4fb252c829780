"""`GET /v1/messages/{requestId}`: a request's record, to the tenant that made it and no other."""

from __future__ import annotations

from typing import Annotated, Any, cast

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from smsgw.api import tenant_of
from smsgw.deliveries import RECEIPT_PROVIDERS
from smsgw.errors import GatewayError
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


def delivery_of(result: dict[str, Any], provider: str | None, known: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An accepted number's delivery: what receipts and reconciliation settled, else `accepted`;
    Polyv reports no delivery at all, and says so."""
    if (result.get("provider") or provider) not in RECEIPT_PROVIDERS:
        return {"status": "accepted", "receipt": "unavailable"}
    return known.get(result["phone_number"], {"status": "accepted"})
