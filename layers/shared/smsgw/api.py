"""The HTTP side of the gateway's functions: resolver, error mapping, and the send flow of a route."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast

import boto3
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsgw.config import ProviderSettings, Settings, credentials_model, get_provider_settings, get_settings
from smsgw.credentials import CredentialStore
from smsgw.errors import ConfigurationError, GatewayError, InvalidRequest
from smsgw.idempotency import DYNAMODB_CONFIG, Answer, Idempotency, NothingSent
from smsgw.messages import MessageLog
from smsgw.models import SendRequest
from smsgw.observability import logger, metrics, tracer
from smsgw.outcomes import SendResult, Status
from smsgw.quotas import QUOTA_RETRIES, QuotaLedger
from smsgw.schemas import ErrorDetail, ErrorInfo, ErrorResponse, SendResponse
from smsgw.service import Caller, Delivery, Operation, SendService

if TYPE_CHECKING:
    from smsgw.queue import QueueConsumer, Resolve

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def _json(model: type[Any], description: str) -> OpenAPIResponse:
    return {"description": description, "content": {"application/json": {"model": model}}}


SEND_RESPONSES: dict[int, OpenAPIResponse] = {
    200: _json(SendResponse, "Processed: one result per number, some may be rejected."),
    400: _json(ErrorResponse, "Invalid input; nothing was sent."),
    403: _json(ErrorResponse, "Missing or invalid API key."),
    409: _json(ErrorResponse, "A request with this Idempotency-Key is still in progress."),
    422: _json(ErrorResponse, "This Idempotency-Key was used with another body."),
    413: _json(ErrorResponse, "The body is larger than 256 KiB; nothing was sent."),
    415: _json(ErrorResponse, "The body is not application/json; nothing was sent."),
    429: _json(SendResponse, "No number could be sent: quota exhausted (see Retry-After)."),
    502: _json(SendResponse, "The provider failed for every number."),
    503: _json(ErrorResponse, "A dependency is unavailable; nothing was sent."),
}
PROVIDER_FAILURES = frozenset({Status.RETRYABLE, Status.AMBIGUOUS})
MAX_BODY_BYTES = 256 * 1024
"""The largest request body (SQS's own message limit): a request of 1000 numbers fits with room."""
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_LOG_WRITER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="message-log")


@lru_cache(maxsize=1)
def dynamodb_client() -> Any:
    """One client (and connection pool) for idempotency and the message log."""
    return boto3.client("dynamodb", config=DYNAMODB_CONFIG)


@lru_cache(maxsize=1)
def quota_client() -> Any:
    """The quota ledger's own client: one that never retries by itself (see `smsgw.quotas`)."""
    return boto3.client("dynamodb", config=DYNAMODB_CONFIG.merge(QUOTA_RETRIES))


@lru_cache(maxsize=1)
def message_log() -> MessageLog:
    settings: Settings = get_settings()
    return MessageLog(
        settings.message_log_table_name,
        retention=timedelta(days=settings.message_retention_days),
        client_factory=dynamodb_client,
    )


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: ProviderSettings
    service: SendService
    idempotency: Idempotency


@lru_cache(maxsize=1)
def runtime() -> Runtime:
    """One per function instance, built on first use so that configuration errors answer, not crash."""
    settings = get_provider_settings()
    model = credentials_model(settings.provider)
    store = CredentialStore(settings.provider_secret_id, model, max_age=settings.secret_max_age_seconds)
    ledger = QuotaLedger(settings.quota_table_name, settings.limits, client_factory=quota_client)
    idempotency = Idempotency(
        settings.idempotency_table_name,
        expires_after_seconds=settings.idempotency_expiry_seconds,
        client=dynamodb_client(),
    )
    return Runtime(settings, SendService(settings, store, ledger), idempotency)


def reset() -> None:
    """Forget configuration and clients (for tests that change the environment)."""
    for cached in (
        get_settings,
        get_provider_settings,
        message_log,
        runtime,
        dynamodb_client,
        quota_client,
        queue_consumer,
    ):
        cached.cache_clear()


def tenant_of(event: APIGatewayProxyEvent) -> str:
    """The API key's id: each key is a tenant, with its own quotas and message log."""
    return event.request_context.identity.api_key_id or "default"


def provider_failed_for_every_number(result: SendResult) -> bool:
    tried = [o for o in result.outcomes if o.status is not Status.QUOTA_EXCEEDED]
    return bool(tried) and all(o.status in PROVIDER_FAILURES or o.auth_error for o in tried)


def answer_of(request_id: str, delivery: Delivery) -> Answer:
    result = delivery.result
    response = SendResponse.of(request_id, result, delivery.reservation)
    status, headers = HTTPStatus.OK, {}
    if result.count(Status.QUOTA_EXCEEDED) == len(result.outcomes):
        status = HTTPStatus.TOO_MANY_REQUESTS
        headers["Retry-After"] = str(delivery.reservation.retry_after)
        response.error = ErrorInfo(code="quota_exceeded", message="No number could be sent: its quota is used up.")
    elif provider_failed_for_every_number(result):
        status = HTTPStatus.BAD_GATEWAY
        response.error = ErrorInfo(code="provider_failed", message="The provider failed for every number.")
    return {"status": int(status), "headers": headers, "body": response.model_dump(mode="json")}


def nothing_sent(answer: Answer, result: SendResult) -> bool:
    """A 429, or a 502 where no number may have gone out: worth a real retry with the same key."""
    if answer["status"] == HTTPStatus.TOO_MANY_REQUESTS:
        return True
    return answer["status"] == HTTPStatus.BAD_GATEWAY and result.count(Status.AMBIGUOUS) == 0


def dispatch(router: Router, operation: Operation, request: SendRequest) -> Response[dict[str, Any]]:
    """The send flow every route shares: idempotency, quotas, send, message log."""
    event = cast(APIGatewayProxyEvent, router.current_event)
    caller = Caller(
        request_id=event.request_context.request_id,
        tenant=tenant_of(event),
        source_ip=event.request_context.identity.source_ip or "unknown",
        received_at=datetime.now(UTC),
    )
    rt = runtime()
    key = event.headers.get("idempotency-key")

    def send() -> Answer:
        delivery = rt.service.send(operation, request, caller)
        answer = answer_of(caller.request_id, delivery)
        # The record is written while the log line and metrics are made; it is in before the answer.
        writing = _LOG_WRITER.submit(store, caller, answer)
        record(delivery.result, caller)
        writing.result()
        if nothing_sent(answer, delivery.result):
            raise NothingSent(answer)
        return answer

    if key is None:
        try:
            answer = send()
        except NothingSent as signal:
            answer = signal.answer
    else:
        if not IDEMPOTENCY_KEY.fullmatch(key):
            raise InvalidRequest("Idempotency-Key must be 1 to 255 printable ASCII characters.")
        rt.idempotency.register(router.lambda_context)
        answer = rt.idempotency(
            tenant=caller.tenant,
            route=f"{operation.provider}.{operation.name}",
            key=key,
            body=request.model_dump(mode="json"),
            send=send,
        )
    headers = dict(answer["headers"])
    if answer["body"]["request_id"] != caller.request_id:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        status_code=answer["status"], content_type=content_types.APPLICATION_JSON, body=answer["body"], headers=headers
    )


def queue_send(operation: Operation, request: SendRequest, caller: Caller) -> Answer:
    delivery = runtime().service.send(operation, request, caller)
    record(delivery.result, caller)
    return answer_of(caller.request_id, delivery)


def queue_idempotent(**kwargs: Any) -> Answer:
    return runtime().idempotency(**kwargs)


def record_strictly(caller: Caller, answer: Answer) -> None:
    # On the queue path a lost record fails the message, so that SQS delivers it again.
    message_log().record(caller.tenant, caller.request_id, answer["body"], received_at=caller.received_at)


@lru_cache(maxsize=4)
def queue_consumer(resolve: Resolve) -> QueueConsumer:
    # Imported here: API invocations never load the batch utilities.
    from smsgw.queue import QueueConsumer, send_to_dead_letter_queue

    settings = get_provider_settings()
    if not settings.dead_letter_queue_url:
        raise ConfigurationError("invalid or missing environment variables: DEAD_LETTER_QUEUE_URL")
    return QueueConsumer(
        resolve=resolve,
        send=queue_send,
        idempotent=queue_idempotent,
        find=lambda tenant, request_id: message_log().find(tenant, request_id),
        store=record_strictly,
        dead_letter=send_to_dead_letter_queue(settings.dead_letter_queue_url),
    )


def is_sqs(event: dict[str, Any]) -> bool:
    records = event.get("Records")
    return isinstance(records, list) and bool(records) and records[0].get("eventSource") == "aws:sqs"


def store(caller: Caller, answer: Answer) -> None:
    # The SMS are out (or definitely not): a lost log record must not turn the answer into an error.
    try:
        message_log().record(caller.tenant, caller.request_id, answer["body"], received_at=caller.received_at)
    except GatewayError as exc:
        logger.error("message log write failed", extra={"error": exc.message})


def record(result: SendResult, caller: Caller) -> None:
    counts = {status.value: result.count(status) for status in Status}
    logger.info(
        "send finished",
        extra={
            "provider": result.provider,
            "operation": result.operation,
            "tenant": caller.tenant,
            "request_id": caller.request_id,
            "calls": result.calls,
            **counts,
            **({"correlation_id": caller.correlation_id} if caller.correlation_id else {}),
        },
    )
    metrics.add_dimension(name="provider", value=result.provider)
    metrics.add_dimension(name="operation", value=result.operation)
    for status, count in counts.items():
        metrics.add_metric(name=f"numbers_{status}", unit=MetricUnit.Count, value=count)


def error_response(
    status: int, code: str, message: str, request_id: str | None, *, headers: dict[str, str] | None = None, **extra: Any
) -> Response[str]:
    body = ErrorResponse(error=ErrorInfo(code=code, message=message, **extra), request_id=request_id)
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body.model_dump_json(exclude_none=True),
        headers=headers,
    )


JSON_TYPES = frozenset({"application/json", "text/json"})


def proxy_error(status: int, code: str, message: str, event: dict[str, Any], **extra: Any) -> dict[str, Any]:
    request_id = (event.get("requestContext") or {}).get("requestId")
    body = ErrorResponse(error=ErrorInfo(code=code, message=message, **extra), request_id=request_id)
    return {
        "statusCode": status,
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "body": body.model_dump_json(exclude_none=True),
        "isBase64Encoded": False,
    }


def refuse_unreadable_body(event: dict[str, Any]) -> dict[str, Any] | None:
    """A request body the API will not read: too large, not JSON, or JSON the parser chokes on
    (a 5,000-digit number, nesting 50,000 deep). Answered before routing; nothing is sent."""
    body = event.get("body")
    if not isinstance(body, str) or not body or "httpMethod" not in event:
        return None
    if len(body) > MAX_BODY_BYTES // 4 and len(body.encode()) > MAX_BODY_BYTES:
        message = f"The request body is larger than {MAX_BODY_BYTES} bytes; nothing was sent."
        return proxy_error(413, "payload_too_large", message, event)
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    media_type = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media_type not in JSON_TYPES:
        return proxy_error(415, "unsupported_media_type", "Send the request as application/json.", event)
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        details = [{"field": "body", "type": "json_invalid", "message": "The body is not valid JSON."}]
        return proxy_error(400, "invalid_request", "The request is invalid; nothing was sent.", event, details=details)
    return None


def build_handler(name: str, router: Router, *, docs: bool = True, queue: Resolve | None = None) -> Handler:
    """A function's handler: API Gateway events go to the router, SQS batches (if `queue`
    says how to read their messages) to the queue consumer."""
    app = APIGatewayRestResolver(enable_validation=True)
    app.include_router(router)
    docs_path = f"/v1/{name}/docs" if docs else None
    docs_enabled = threading.Event()
    docs_lock = threading.Lock()

    def enable_docs() -> None:
        # Swagger UI and the OpenAPI models cost ~60 ms of imports: paid by the first docs request,
        # not by every cold start.
        with docs_lock:
            if not docs_enabled.is_set():
                app.enable_swagger(path=str(docs_path), title=f"SMS gateway: {name}", version="1.0.0")
                docs_enabled.set()

    def request_id() -> str | None:
        return app.current_event.request_context.request_id if app.current_event else None

    @app.exception_handler(RequestValidationError)
    def invalid_request(exc: RequestValidationError) -> Response[str]:
        # Pydantic's messages name the rule, never the rejected value.
        details = [
            ErrorDetail(field=".".join(str(p) for p in e["loc"]), type=e["type"], message=e["msg"])
            for e in exc.errors()
        ]
        return error_response(
            400, "invalid_request", "The request is invalid; nothing was sent.", request_id(), details=details
        )

    @app.exception_handler(GatewayError)
    def gateway_error(exc: GatewayError) -> Response[str]:
        logger.warning("request failed", extra={"error_code": exc.code, "error": exc.message})
        headers = {"Retry-After": "1"} if exc.status_code in (409, 503) else None
        return error_response(exc.status_code, exc.code, exc.message, request_id(), headers=headers)

    @app.not_found
    def not_found(exc: NotFoundError) -> Response[str]:
        return error_response(404, "route_not_found", "No such route.", request_id())

    @app.exception_handler(Exception)
    def unexpected(exc: Exception) -> Response[str]:
        logger.exception("unexpected error")
        return error_response(500, "internal_error", "An unexpected error occurred.", request_id())

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics(capture_cold_start_metric=True)
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        refused = refuse_unreadable_body(event)
        if refused is not None:
            return refused
        if queue is not None and is_sqs(event):
            consumer = queue_consumer(queue)
            runtime().idempotency.register(context)
            return dict(consumer.handle(event, context))
        if docs_path is not None and event.get("path") == docs_path and not docs_enabled.is_set():
            enable_docs()
        return app.resolve(event, context)

    return cast(Handler, handler)
