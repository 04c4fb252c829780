"""The HTTP side of a provider function: resolver, error mapping, and the send flow of a route."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from http import HTTPStatus
from typing import Any, cast

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsgw.config import get_settings
from smsgw.credentials import CredentialStore
from smsgw.errors import GatewayError
from smsgw.models import SendRequest
from smsgw.observability import logger, metrics, tracer
from smsgw.outcomes import SendResult, Status
from smsgw.schemas import ErrorDetail, ErrorInfo, ErrorResponse, SendResponse
from smsgw.service import Operation, SendService

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]

ERROR_RESPONSES: dict[int, OpenAPIResponse] = {
    400: {"description": "Invalid input; nothing was sent.", "content": {"application/json": {"model": ErrorResponse}}},
    403: {"description": "Missing or invalid API key.", "content": {"application/json": {"model": ErrorResponse}}},
    502: {
        "description": "The provider failed for every number.",
        "content": {"application/json": {"model": SendResponse}},
    },
    503: {"description": "A dependency is unavailable.", "content": {"application/json": {"model": ErrorResponse}}},
}
PROVIDER_FAILURES = frozenset({Status.RETRYABLE, Status.AMBIGUOUS})


@lru_cache(maxsize=1)
def service(credentials_model: type[Any]) -> SendService:
    """One per function instance, built on first use so that configuration errors answer, not crash."""
    settings = get_settings()
    store = CredentialStore(settings.provider_secret_id, credentials_model, max_age=settings.secret_max_age_seconds)
    return SendService(settings, store)


def provider_failed_for_every_number(result: SendResult) -> bool:
    return all(o.status in PROVIDER_FAILURES or o.auth_error for o in result.outcomes)


def error_response(status: int, code: str, message: str, request_id: str | None, **extra: Any) -> Response[str]:
    body = ErrorResponse(error=ErrorInfo(code=code, message=message, **extra), request_id=request_id)
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=body.model_dump_json(exclude_none=True)
    )


def dispatch(router: Router, operation: Operation, request: SendRequest) -> Response[SendResponse]:
    """The send flow every route shares."""
    request_id = cast(APIGatewayProxyEvent, router.current_event).request_context.request_id
    result = service(operation.credentials_model).send(operation, request)
    record(result)
    response = SendResponse.of(request_id, result)
    status = HTTPStatus.OK
    if provider_failed_for_every_number(result):
        status = HTTPStatus.BAD_GATEWAY
        response.error = ErrorInfo(code="provider_failed", message="The provider failed for every number.")
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=response)


def record(result: SendResult) -> None:
    counts = {status.value: result.count(status) for status in Status}
    logger.info(
        "send finished",
        extra={"provider": result.provider, "operation": result.operation, "calls": result.calls, **counts},
    )
    metrics.add_dimension(name="provider", value=result.provider)
    metrics.add_dimension(name="operation", value=result.operation)
    for status, count in counts.items():
        metrics.add_metric(name=f"numbers_{status}", unit=MetricUnit.Count, value=count)


def build_handler(provider: str, router: Router) -> Handler:
    app = APIGatewayRestResolver(enable_validation=True)
    app.include_router(router)
    app.enable_swagger(path=f"/v1/{provider}/docs", title=f"SMS gateway: {provider}", version="1.0.0")

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
        return error_response(exc.status_code, exc.code, exc.message, request_id())

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
        return app.resolve(event, context)

    return cast(Handler, handler)
