"""`POST /v1/aliyun/messages` (SendInterSms) and `POST /v1/aliyun/batch-messages` (SendBatchSms)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from smsgw.api import SEND_RESPONSES, IdempotencyKeyHeader, dispatch
from smsgw.config import SendSettings
from smsgw.models import AliyunBatchSmsRequest, AliyunInterSmsRequest, SendRequest
from smsgw.providers.aliyun import AliyunBatchSmsClient, AliyunCredentials, AliyunInterSmsClient
from smsgw.providers.base import HttpSettings
from smsgw.service import Operation


def _inter(credentials: AliyunCredentials, settings: SendSettings, http: HttpSettings) -> AliyunInterSmsClient:
    return AliyunInterSmsClient(credentials, settings=http)


def _batch(credentials: AliyunCredentials, settings: SendSettings, http: HttpSettings) -> AliyunBatchSmsClient:
    return AliyunBatchSmsClient(credentials, settings=http)


SEND_INTER = Operation("aliyun", AliyunInterSmsClient.operation, _inter)
SEND_BATCH = Operation("aliyun", AliyunBatchSmsClient.operation, _batch)
router = Router()
# Built at import rather than by the first request: smsgw.models defers each model to its function.
AliyunInterSmsRequest.model_rebuild()
AliyunBatchSmsRequest.model_rebuild()


@router.post(
    "/v1/aliyun/messages",
    summary="Send an international SMS through Aliyun SendInterSms",
    description="One provider call per number, made concurrently. One result per number.",
    responses=SEND_RESPONSES,
    tags=["aliyun"],
)
def send_inter(
    request: AliyunInterSmsRequest, idempotency_key: IdempotencyKeyHeader = None
) -> Response[dict[str, Any]]:
    return dispatch(router, SEND_INTER, request, idempotency_key)


@router.post(
    "/v1/aliyun/batch-messages",
    summary="Send SMS in batches through Aliyun SendBatchSms",
    description="One sign name and parameter object per number, sent in calls of 100.",
    responses=SEND_RESPONSES,
    tags=["aliyun"],
)
def send_batch(
    request: AliyunBatchSmsRequest, idempotency_key: IdempotencyKeyHeader = None
) -> Response[dict[str, Any]]:
    return dispatch(router, SEND_BATCH, request, idempotency_key)


def queue_operation(body: dict[str, Any], named: str | None) -> tuple[Operation, type[SendRequest]]:
    """What a queued message is for: its `operation`, or else its shape (`messages` is a batch)."""
    if named is None:
        named = SEND_BATCH.name if "messages" in body else SEND_INTER.name
    if named == SEND_INTER.name:
        return SEND_INTER, AliyunInterSmsRequest
    if named == SEND_BATCH.name:
        return SEND_BATCH, AliyunBatchSmsRequest
    raise ValueError(f"operation must be {SEND_INTER.name} or {SEND_BATCH.name}")
