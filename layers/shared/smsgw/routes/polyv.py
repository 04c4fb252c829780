"""`POST /v1/polyv/messages`: Polyv sms/send."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from smsgw.api import SEND_RESPONSES, IdempotencyKeyHeader, dispatch
from smsgw.config import SendSettings
from smsgw.models import PolyvSendRequest, SendRequest
from smsgw.providers.base import HttpSettings
from smsgw.providers.polyv import PolyvClient, PolyvCredentials
from smsgw.service import Operation


def _client(credentials: PolyvCredentials, settings: SendSettings, http: HttpSettings) -> PolyvClient:
    return PolyvClient(credentials, settings=http)


SEND = Operation("polyv", PolyvClient.operation, _client)
router = Router()
# Built at import rather than by the first request: smsgw.models defers each model to its function.
PolyvSendRequest.model_rebuild()


@router.post(
    "/v1/polyv/messages",
    summary="Send a templated SMS through Polyv",
    description="Up to 1000 numbers, sent in calls of 200. One result per number.",
    responses=SEND_RESPONSES,
    tags=["polyv"],
)
def send(request: PolyvSendRequest, idempotency_key: IdempotencyKeyHeader = None) -> Response[dict[str, Any]]:
    return dispatch(router, SEND, request, idempotency_key)


def queue_operation(body: dict[str, Any], named: str | None) -> tuple[Operation, type[SendRequest]]:
    """What a queued message is for: this provider has one operation."""
    if named not in (None, SEND.name):
        raise ValueError(f"operation must be {SEND.name}")
    return SEND, PolyvSendRequest
