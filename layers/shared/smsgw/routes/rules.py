"""A tenant's abuse rules and opt-out list, for its admin API key: `PUT/GET /v1/rules`,
`PUT/GET/DELETE /v1/opt-outs/{phone}`."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path

from smsgw.api import canonical_phone
from smsgw.errors import GatewayError
from smsgw.routes.templates import ADMIN_ERRORS, admin_tenant
from smsgw.rules import Rules, RuleStore
from smsgw.unified import router_runtime

router = Router()
PhonePath = Annotated[str, Path(min_length=4, max_length=20, description="Any spelling; kept in E.164.")]


class NotOptedOut(GatewayError):
    status_code = 404
    code = "not_opted_out"


def _admin() -> tuple[str, RuleStore]:
    tenant = admin_tenant(router)
    rules = router_runtime().service.policy.rules
    if rules is None:  # pragma: no cover - the router function always has its configuration table
        raise GatewayError("The rules have no table.")
    return tenant, rules


def _canonical(phone: str) -> str:
    return canonical_phone(phone, "path.phone")


@router.put("/v1/rules", summary="Replace the tenant's rules", responses=ADMIN_ERRORS, tags=["rules"])
def put_rules(rules: Rules) -> dict[str, Any]:
    tenant, store = _admin()
    store.save(tenant, rules)
    return rules.model_dump(mode="json", exclude_none=True)


@router.get(
    "/v1/rules", summary="The tenant's rules (defaults where none are set)", responses=ADMIN_ERRORS, tags=["rules"]
)
def get_rules() -> dict[str, Any]:
    tenant, store = _admin()
    return store.rules(tenant).model_dump(mode="json", exclude_none=True)


@router.put(
    "/v1/opt-outs/<phone>",
    summary="Opt a number out: sends to it answer opted_out",
    responses=ADMIN_ERRORS,
    tags=["rules"],
)
def put_opt_out(phone: PhonePath) -> dict[str, Any]:
    tenant, store = _admin()
    number = _canonical(phone)
    store.opt_out(tenant, number, reason="requested")
    return {"phone_number": number, "opted_out": True}


@router.get("/v1/opt-outs/<phone>", summary="Whether a number is opted out", responses=ADMIN_ERRORS, tags=["rules"])
def get_opt_out(phone: PhonePath) -> dict[str, Any]:
    tenant, store = _admin()
    number = _canonical(phone)
    found = store.opted_out(tenant, number)
    if found is None:
        raise NotOptedOut("This number is not opted out.")
    return {"phone_number": number, "opted_out": True, **found}


@router.delete("/v1/opt-outs/<phone>", summary="Opt a number back in", responses=ADMIN_ERRORS, tags=["rules"])
def delete_opt_out(phone: PhonePath) -> Response[str]:
    tenant, store = _admin()
    if not store.opt_in(tenant, _canonical(phone)):
        raise NotOptedOut("This number is not opted out.")
    return Response(status_code=204, content_type=content_types.APPLICATION_JSON, body="")
