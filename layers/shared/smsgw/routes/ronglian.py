"""`POST /v1/ronglian/messages`: Ronglian (Cloopen) TemplateSMS."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from smsgw.api import SEND_RESPONSES, IdempotencyKeyHeader, dispatch
from smsgw.config import SendSettings
from smsgw.models import RonglianTemplateSmsRequest, SendRequest
from smsgw.providers.base import HttpSettings
from smsgw.providers.ronglian import RonglianClient, RonglianCredentials
from smsgw.service import Operation


def _client(credentials: RonglianCredentials, settings: SendSettings, http: HttpSettings) -> RonglianClient:
    return RonglianClient(credentials, settings=http, chunk_size=settings.ronglian_chunk_size)


SEND = Operation("ronglian", RonglianClient.operation, _client)
router = Router()
# Built at import rather than by the first request: smsgw.models defers each model to its function.
RonglianTemplateSmsRequest.model_rebuild()


@router.post(
    "/v1/ronglian/messages",
    summary="Send a templated SMS through Ronglian TemplateSMS",
    description="Positional template data; calls of 100 numbers by default (up to 200).",
    responses=SEND_RESPONSES,
    tags=["ronglian"],
)
def send(request: RonglianTemplateSmsRequest, idempotency_key: IdempotencyKeyHeader = None) -> Response[dict[str, Any]]:
    return dispatch(router, SEND, request, idempotency_key)


def queue_operation(body: dict[str, Any], named: str | None) -> tuple[Operation, type[SendRequest]]:
    """What a queued message is for: this provider has one operation."""
    if named not in (None, SEND.name):
        raise ValueError(f"operation must be {SEND.name}")
    return SEND, RonglianTemplateSmsRequest
