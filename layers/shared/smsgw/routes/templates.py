"""`PUT/GET/DELETE /v1/templates/{name}`: a tenant's logical templates, for its admin API key."""

from __future__ import annotations

from typing import Annotated, Any, cast

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from smsgw.api import json_response
from smsgw.schemas import ErrorResponse
from smsgw.templates import TemplateNotFound, TemplateSpec
from smsgw.unified import router_runtime

router = Router()
Name = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", description="The template's name.")]
NOT_FOUND = json_response(ErrorResponse, "No such template (template_not_found).")
ADMIN_ERRORS = {
    403: json_response(ErrorResponse, "Not an admin API key (admin_key_required)."),
    503: json_response(ErrorResponse, "DynamoDB is unavailable."),
}


def admin_tenant(routes: Router) -> str:
    """The tenant whose admin key made the request a route of `routes` is serving; 403 for any other key."""
    event = cast(APIGatewayProxyEvent, routes.current_event)
    return router_runtime().admin.tenant(event.request_context.identity.api_key_id)


def _tenant() -> str:
    return admin_tenant(router)


@router.put(
    "/v1/templates/<name>",
    summary="Save a template (a new version)",
    responses={
        200: {"description": "The saved version."},
        400: json_response(ErrorResponse, "Invalid."),
        **ADMIN_ERRORS,
    },
    tags=["templates"],
)
def put_template(name: Name, spec: TemplateSpec) -> dict[str, Any]:
    return router_runtime().templates.save(_tenant(), name, spec).describe()


@router.get(
    "/v1/templates/<name>",
    summary="A template's latest version",
    responses={
        200: {"description": "The template."},
        404: json_response(ErrorResponse, "No such template."),
        **ADMIN_ERRORS,
    },
    tags=["templates"],
)
def get_template(name: Name) -> dict[str, Any]:
    return router_runtime().templates.get(_tenant(), name).describe()


@router.delete(
    "/v1/templates/<name>",
    summary="Delete a template (messages in flight keep their version)",
    responses={
        204: {"description": "Deleted."},
        404: json_response(ErrorResponse, "No such template."),
        **ADMIN_ERRORS,
    },
    tags=["templates"],
)
def delete_template(name: Name) -> Response[str]:
    if not router_runtime().templates.delete(_tenant(), name):
        raise TemplateNotFound(f"No template {name!r} for this API key.")
    return Response(status_code=204, content_type=content_types.APPLICATION_JSON, body="")
