"""`POST /v1/polyv/messages`: Polyv sms/send."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from smsgw.api import SEND_RESPONSES, dispatch
from smsgw.config import ProviderSettings
from smsgw.models import PolyvSendRequest
from smsgw.providers.base import HttpSettings
from smsgw.providers.polyv import PolyvClient, PolyvCredentials
from smsgw.service import Operation


def _client(credentials: PolyvCredentials, settings: ProviderSettings, http: HttpSettings) -> PolyvClient:
    return PolyvClient(credentials, settings=http)


SEND = Operation("polyv", PolyvClient.operation, PolyvCredentials, _client)
router = Router()


@router.post(
    "/v1/polyv/messages",
    summary="Send a templated SMS through Polyv",
    description="Up to 1000 numbers, sent in calls of 200. One result per number.",
    responses=SEND_RESPONSES,
    tags=["polyv"],
)
def send(request: PolyvSendRequest) -> Response[dict[str, Any]]:
    return dispatch(router, SEND, request)
