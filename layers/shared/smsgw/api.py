"""The REST face of the gateway's functions: the resolver, the body check, the error answers, a
route's dispatch to the send flow, and the handler each function exports."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Any, cast

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Header
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsgw import bodies, phones, snapshot
from smsgw.errors import GatewayError, InvalidRequest
from smsgw.models import SendRequest
from smsgw.observability import logger, metrics, traced
from smsgw.phones import PhoneError
from smsgw.runtime import RuntimeOf, queue_consumer, runtime
from smsgw.schemas import ErrorDetail, ErrorInfo, ErrorResponse, SendResponse
from smsgw.sender import Key, resend_if_nothing_sent
from smsgw.service import Caller, Operation

if TYPE_CHECKING:
    from smsgw.queue import Resolve

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def json_response(model: type[Any], description: str) -> OpenAPIResponse:
    return {"description": description, "content": {"application/json": {"model": model}}}


SEND_RESPONSES: dict[int, OpenAPIResponse] = {
    200: json_response(SendResponse, "Processed: one result per number, some may be rejected."),
    400: json_response(ErrorResponse, "Invalid input; nothing was sent."),
    403: json_response(ErrorResponse, "Missing or invalid API key."),
    409: json_response(ErrorResponse, "A request with this Idempotency-Key is still in progress."),
    413: json_response(ErrorResponse, "The body is larger than 256 KiB; nothing was sent."),
    415: json_response(ErrorResponse, "The body is not application/json; nothing was sent."),
    422: json_response(ErrorResponse, "This Idempotency-Key was used with another body."),
    429: json_response(SendResponse, "No number could be sent: quota exhausted (see Retry-After)."),
    500: json_response(ErrorResponse, "An error of the gateway's own (configuration, credentials); nothing was sent."),
    502: json_response(SendResponse, "No number was confirmed sent by the provider; see each number's status."),
    503: json_response(ErrorResponse, "A dependency is unavailable or the request ran out of time; nothing was sent."),
}
MAX_BODY_BYTES = 256 * 1024
"""The largest request body (SQS's own message limit): a request of 1000 numbers fits with room."""
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        pattern=r"^[\x21-\x7e]{1,255}$",
        max_length=255,
        description=(
            "Makes the request safe to retry: for 24 hours the same key with the same body answers what the first "
            "request answered, and never sends again (docs/delivery.md)."
        ),
    ),
]
JSON_TYPES = frozenset({"application/json", "text/json"})
XML_TYPES = frozenset({"application/xml", "text/xml"})


def tenant_of(event: APIGatewayProxyEvent) -> str:
    """The API key's id: each key is a tenant, with its own quotas and message log."""
    return event.request_context.identity.api_key_id or "default"


def dispatch(
    router: Router,
    operation: Operation,
    request: SendRequest,
    idempotency_key: str | None,
    *,
    runtime: RuntimeOf = runtime,
) -> Response[dict[str, Any]]:
    """The send flow every route shares: idempotency, quotas, send, message log."""
    event = cast(APIGatewayProxyEvent, router.current_event)
    caller = Caller(
        request_id=event.request_context.request_id,
        tenant=tenant_of(event),
        source_ip=event.request_context.identity.source_ip or "unknown",
        received_at=datetime.now(UTC),
    )
    key = None
    if idempotency_key is not None:
        key = Key(route=operation.route, value=idempotency_key, resend=resend_if_nothing_sent)
    rt = runtime()
    budget = rt.budget(router.lambda_context.get_remaining_time_in_millis())
    sent = rt.sender.send(operation, request, caller, budget, key)
    status, headers = sent.response.http_status()
    if sent.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=sent.response.model_dump(mode="json"),
        headers=headers,
    )


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


def proxy_error(status: int, error: GatewayError | ErrorInfo, event: dict[str, Any]) -> dict[str, Any]:
    """An error answered before routing, in the proxy integration's own shape."""
    request_id = (event.get("requestContext") or {}).get("requestId")
    info = (
        error
        if isinstance(error, ErrorInfo)
        else ErrorInfo(code=error.code, message=error.message, details=error.details)
    )
    body = ErrorResponse(error=info, request_id=request_id)
    return {
        "statusCode": status,
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "body": body.model_dump_json(exclude_none=True),
        "isBase64Encoded": False,
    }


def check_body(event: dict[str, Any], accepts: frozenset[str] = JSON_TYPES) -> dict[str, Any] | None:
    """A request body the API will not read is answered here, before routing; nothing is sent:
    too large, of a media type the function does not take, not UTF-8, JSON that is not parseable
    (a 5,000-digit number, nesting 50,000 deep) or gives a key twice. A base64-encoded body that
    passes is handed on decoded."""
    body = event.get("body")
    if not isinstance(body, str) or not body or "httpMethod" not in event:
        return None
    if len(body) > MAX_BODY_BYTES // 4 and len(body.encode()) > MAX_BODY_BYTES:
        message = f"The request body is larger than {MAX_BODY_BYTES} bytes; nothing was sent."
        return proxy_error(413, ErrorInfo(code="payload_too_large", message=message), event)
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    media_type = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media_type not in accepts:
        message = "Send the request as application/json."
        return proxy_error(415, ErrorInfo(code="unsupported_media_type", message=message), event)
    try:
        text = bodies.text_of(body, base64_encoded=event.get("isBase64Encoded") is True)
        if media_type in JSON_TYPES:
            bodies.loads(text)
    except InvalidRequest as exc:
        return proxy_error(400, exc, event)
    if text is not body:
        event["body"], event["isBase64Encoded"] = text, False
    return None


def is_sqs(event: dict[str, Any]) -> bool:
    records = event.get("Records")
    return isinstance(records, list) and bool(records) and records[0].get("eventSource") == "aws:sqs"


def _resolver(routers: Sequence[Router]) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)
    for router in routers:
        app.include_router(router)

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
        headers = (
            {"Retry-After": "1"} if exc.status_code in (HTTPStatus.CONFLICT, HTTPStatus.SERVICE_UNAVAILABLE) else None
        )
        return error_response(exc.status_code, exc.code, exc.message, request_id(), headers=headers)

    @app.not_found
    def not_found(exc: NotFoundError) -> Response[str]:
        return error_response(404, "route_not_found", "No such route.", request_id())

    @app.exception_handler(Exception)
    def unexpected(exc: Exception) -> Response[str]:
        logger.exception("unexpected error")
        return error_response(500, "internal_error", "An unexpected error occurred.", request_id())

    return app


def refused_event(request: str) -> dict[str, Any]:
    """`METHOD /path` as API Gateway would hand it over, with the body `{}`."""
    method, _, path = request.partition(" ")
    return {
        "httpMethod": method,
        "path": path,
        "resource": path,
        "headers": {"content-type": "application/json"},
        "multiValueHeaders": {"content-type": ["application/json"]},
        "requestContext": {"requestId": "snapshot", "identity": {}},
        "body": "{}",
        "isBase64Encoded": False,
    }


def warm(app: APIGatewayRestResolver, requests: Sequence[str]) -> None:
    """Each request through the resolver, refused by validation before its route runs: the first
    real request finds route matching, validation and the error answer built (smsgw.snapshot)."""
    for request in requests:
        answer = app.resolve(refused_event(request), LambdaContext())
        if answer["statusCode"] != HTTPStatus.BAD_REQUEST:
            raise RuntimeError(f"{request} was not refused ({answer['statusCode']}): it must not reach its route")


def build_handler(
    name: str,
    routers: Router | Sequence[Router],
    *,
    docs: bool = True,
    queue: Resolve | None = None,
    runtime: RuntimeOf = runtime,
    accepts: frozenset[str] = JSON_TYPES,
    consume: Callable[[dict[str, Any], LambdaContext], Mapping[str, Any]] | None = None,
    refused: Sequence[str] = (),
) -> Handler:
    """A function's handler: API Gateway events go to its routers, SQS batches (if `queue`
    says how to read their messages) to the queue consumer. `refused` are requests (`POST /path`,
    with the body `{}`) its validation refuses, resolved once before a SnapStart snapshot."""
    app = _resolver([routers] if isinstance(routers, Router) else routers)
    if refused:
        snapshot.on_snapshot(lambda: warm(app, refused))
    docs_path = f"/v1/{name}/docs" if docs else None
    docs_enabled = threading.Event()
    docs_lock = threading.Lock()

    def enable_docs() -> None:
        # Swagger UI and the OpenAPI models cost ~60 ms of imports: paid by the first docs request,
        # not by every cold start.
        with docs_lock:
            if not docs_enabled.is_set():
                from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

                # "Authorize" in Swagger UI takes the API key; "Try it out" then sends it.
                app.enable_swagger(
                    path=str(docs_path),
                    title=f"SMS gateway: {name}",
                    version="1.0.0",
                    security_schemes={"apiKey": APIKey(name="x-api-key", in_=APIKeyIn.header)},
                    security=[{"apiKey": []}],
                )
                docs_enabled.set()

    cold = threading.Event()
    consumer = consume
    if consumer is None and queue is not None:
        resolve = queue

        def consumer(event: dict[str, Any], context: LambdaContext) -> Mapping[str, Any]:
            return queue_consumer(resolve, runtime).handle(event, context)

    # Sends emit their own metrics (smsgw.observability.report_send); the invocation adds only
    # its cold start, so an invocation that sends nothing has nothing to flush or warn about.
    @logger.inject_lambda_context
    @traced
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        if not cold.is_set():
            cold.set()
            metrics.provider.add_cold_start_metric(context)
        if consumer is not None and is_sqs(event):
            # Each record's lines carry its own message id (see smsgw.queue).
            logger.set_correlation_id(None)
            return dict(consumer(event, context))
        logger.set_correlation_id((event.get("requestContext") or {}).get("requestId"))
        refused = check_body(event, accepts)
        if refused is not None:
            return refused
        if docs_path is not None and event.get("path") == docs_path and not docs_enabled.is_set():
            enable_docs()
        return app.resolve(event, context)

    return cast(Handler, handler)


def canonical_phone(text: str, field: str) -> str:
    """A number a route reads outside a request model, in E.164; 400 naming `field` if it is none."""
    try:
        return phones.international(text)
    except PhoneError as exc:
        raise InvalidRequest(
            "The phone number is invalid.", details=[{"field": field, "type": "phone", "message": str(exc)}]
        ) from None
