"""`POST /v1/ronglian/messages`: Ronglian (Cloopen) TemplateSMS."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from smsgw.api import SEND_RESPONSES, dispatch
from smsgw.config import ProviderSettings
from smsgw.models import RonglianTemplateSmsRequest
from smsgw.providers.base import HttpSettings
from smsgw.providers.ronglian import RonglianClient, RonglianCredentials
from smsgw.service import Operation


def _client(credentials: RonglianCredentials, settings: ProviderSettings, http: HttpSettings) -> RonglianClient:
    return RonglianClient(credentials, settings=http, chunk_size=settings.ronglian_chunk_size)


SEND = Operation("ronglian", RonglianClient.operation, RonglianCredentials, _client)
router = Router()


@router.post(
    "/v1/ronglian/messages",
    summary="Send a templated SMS through Ronglian TemplateSMS",
    description="Positional template data; calls of 100 numbers by default (up to 200).",
    responses=SEND_RESPONSES,
    tags=["ronglian"],
)
def send(request: RonglianTemplateSmsRequest) -> Response[dict[str, Any]]:
    return dispatch(router, SEND, request)
