"""`/v1/receipts/aliyun/{token}` and `/v1/receipts/ronglian/{token}`: providers' delivery receipts.

Public (no API key: providers cannot send one) but unguessable: the path's token is checked in
constant time against a secret. The body is read strictly, its receipts are queued, and the
answer is what the provider expects; the matching is the consumer's (smsgw.receiving).
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from smsgw.api import json_response
from smsgw.receipts import parse_aliyun, parse_ronglian
from smsgw.schemas import ErrorResponse
from smsgw.workers import receipts_runtime

router = Router()
Token = Annotated[str, Path(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]
ERRORS = {
    400: json_response(ErrorResponse, "Not a receipt in the provider's format; nothing was queued."),
    403: json_response(ErrorResponse, "Not this gateway's receipt URL (invalid_receipt_token)."),
    503: json_response(ErrorResponse, "The receipts queue is unavailable; the provider pushes again."),
}


def _body() -> str:
    return cast(APIGatewayProxyEvent, router.current_event).body or ""


@router.get("/v1/receipts/aliyun/<token>", summary="Aliyun's check of the receipt URL", tags=["receipts"])
def check_aliyun(token: Token) -> dict[str, Any]:
    receipts_runtime().tokens.check("aliyun", token)
    return {"code": 0, "msg": "成功"}


@router.post(
    "/v1/receipts/aliyun/<token>",
    summary="Aliyun's SmsReport push (a JSON array of reports)",
    responses={200: {"description": '{"code": 0, "msg": "接收成功"}'}, **ERRORS},
    tags=["receipts"],
)
def receive_aliyun(token: Token) -> dict[str, Any]:
    rt = receipts_runtime()
    rt.tokens.check("aliyun", token)
    rt.queue.put(parse_aliyun(_body()))
    return {"code": 0, "msg": "接收成功"}


@router.post(
    "/v1/receipts/ronglian/<token>",
    summary="Ronglian's status report (a Request envelope, JSON or XML)",
    responses={200: {"description": '{"statusCode": "000000"}'}, **ERRORS},
    tags=["receipts"],
)
def receive_ronglian(token: Token) -> dict[str, Any]:
    rt = receipts_runtime()
    rt.tokens.check("ronglian", token)
    event = cast(APIGatewayProxyEvent, router.current_event)
    receipts = parse_ronglian(_body(), event.headers.get("content-type", ""))
    if receipts:
        rt.queue.put(receipts)
    return {"statusCode": "000000", "statusMsg": "成功"}
