"""`POST /v1/messages`: one send API for every provider, by logical template."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from smsgw.api import SEND_RESPONSES, IdempotencyKeyHeader, dispatch, json_response
from smsgw.models import MessageRequest, SendRequest
from smsgw.router import ANY_PROVIDER
from smsgw.schemas import ErrorResponse
from smsgw.service import Operation
from smsgw.unified import router_runtime


def _no_client(*_: Any) -> Any:
    raise TypeError("the unified route sends through the providers' own operations")


SEND = Operation(ANY_PROVIDER, "messages", _no_client)
router = Router()
# Built at import rather than by the first request: smsgw.models defers each model to its function.
MessageRequest.model_rebuild()


@router.post(
    "/v1/messages",
    summary="Send a logical template through whichever provider can (failover only when provably unsent)",
    description=(
        "Each number is routed by the template's routing (or `providers`), and moves to the next provider only "
        "when the one before provably did not send it. Every result names its provider and lists each attempt."
    ),
    responses={**SEND_RESPONSES, 404: json_response(ErrorResponse, "No such template for this API key.")},
    tags=["messages"],
)
def send(request: MessageRequest, idempotency_key: IdempotencyKeyHeader = None) -> Response[dict[str, Any]]:
    return dispatch(router, SEND, request, idempotency_key, runtime=router_runtime)


def queue_operation(body: dict[str, Any], named: str | None) -> tuple[Operation, type[SendRequest]]:
    """A queued message on the router's queue is a `POST /v1/messages` body."""
    if named not in (None, SEND.name):
        raise ValueError(f"operation must be {SEND.name}")
    return SEND, MessageRequest
