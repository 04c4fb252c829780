"""The gateway's tenants: one API key each, with a usage plan of its own (throttle and daily quota)
on the stack's API stage.

    python scripts/tenants.py create shop-1 --stack sms-gateway --rate 10 --burst 20 --quota 5000
    python scripts/tenants.py list --stack sms-gateway
    python scripts/tenants.py delete shop-1 --stack sms-gateway

The functions know a tenant by its API key id (requestContext.identity.apiKeyId): quotas, idempotency
records and the message log are kept per key id, so a tenant deleted and created again starts afresh.

The API and stage come from the stack's outputs (ApiId, StageName); `--api-id` and `--stage` skip
that lookup. boto3 finds credentials, region and `AWS_ENDPOINT_URL` the usual way.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

# Tags, not names, say which plans and keys are tenants: the stack's default usage plan and key, and
# anything made by hand, stay out of `list` and `delete`.
STACK_TAG = "sms-gateway:stack"
TENANT_TAG = "sms-gateway:tenant"
TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

# The template's own defaults for an API key (ApiThrottleRateLimit, ApiThrottleBurstLimit, ApiDailyQuota).
DEFAULT_RATE = 50.0
DEFAULT_BURST = 100
DEFAULT_QUOTA = 10000


class TenantError(Exception):
    """A request this script refuses, or a stack it cannot read; the message says which."""


@dataclass(frozen=True)
class Target:
    """Where tenants live: the stack that names them, and the API stage their plans are bound to."""

    stack: str
    api_id: str
    stage: str

    def key_name(self, tenant: str) -> str:
        return f"{self.stack}-{tenant}"


@dataclass(frozen=True)
class Tenant:
    name: str
    key_id: str
    plan_id: str
    rate: float
    burst: int
    quota: int
    stages: tuple[str, ...]
    # Only on creation: API Gateway shows a key's value to whoever asks, but this script says it once.
    key_value: str | None = None


# ---------------------------------------------------------------------------------------------
# The stack
# ---------------------------------------------------------------------------------------------


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    """A deployed stack's outputs, by key."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        raise TenantError(f"stack {stack}: {exc.response['Error']['Message']}") from exc
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs") or []}


def find_target(cloudformation: Any, stack: str) -> Target:
    """The API id and stage of a deployed stack, from its outputs (or, on older stacks, its resources)."""
    outputs = stack_outputs(cloudformation, stack)
    api_id, stage = outputs.get("ApiId"), outputs.get("StageName")
    if not api_id or not stage:
        # Stacks deployed before the template had these outputs: SAM's logical ids for the API and stage.
        resources = cloudformation.describe_stack_resources(StackName=stack)["StackResources"]
        physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}
        api_id, stage = api_id or physical.get("GatewayApi"), stage or physical.get("GatewayApiStage")
    if not api_id or not stage:
        raise TenantError(f"stack {stack} has no API (outputs ApiId and StageName); pass --api-id and --stage")
    return Target(stack=stack, api_id=api_id, stage=stage)


# ---------------------------------------------------------------------------------------------
# Tenants
# ---------------------------------------------------------------------------------------------


def _tags(target: Target, name: str) -> dict[str, str]:
    return {STACK_TAG: target.stack, TENANT_TAG: name}


def _pages(apigateway: Any, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    for page in apigateway.get_paginator(operation).paginate(**kwargs):
        yield from page.get("items") or []


def _tenant_plans(apigateway: Any, target: Target, name: str | None = None) -> list[dict[str, Any]]:
    plans = []
    for plan in _pages(apigateway, "get_usage_plans"):
        tags = plan.get("tags") or {}
        if tags.get(STACK_TAG) == target.stack and TENANT_TAG in tags and name in (None, tags[TENANT_TAG]):
            plans.append(plan)
    return plans


def _tenant_keys(apigateway: Any, target: Target, name: str) -> list[dict[str, Any]]:
    # nameQuery matches a prefix: keep the exact name, and only keys this script made.
    key_name = target.key_name(name)
    return [
        key
        for key in _pages(apigateway, "get_api_keys", nameQuery=key_name)
        if key.get("name") == key_name and (key.get("tags") or {}).get(TENANT_TAG) == name
    ]


def _describe(plan: dict[str, Any], key_id: str, key_value: str | None = None) -> Tenant:
    throttle, quota = plan.get("throttle") or {}, plan.get("quota") or {}
    return Tenant(
        name=plan["tags"][TENANT_TAG],
        key_id=key_id,
        plan_id=plan["id"],
        rate=float(throttle.get("rateLimit", 0)),
        burst=int(throttle.get("burstLimit", 0)),
        quota=int(quota.get("limit", 0)),
        stages=tuple(f"{s['apiId']}/{s['stage']}" for s in plan.get("apiStages") or []),
        key_value=key_value,
    )


def _delete_plan(apigateway: Any, plan: dict[str, Any]) -> None:
    for key in _pages(apigateway, "get_usage_plan_keys", usagePlanId=plan["id"]):
        apigateway.delete_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"])
    # API Gateway refuses to delete a plan that is still bound to a stage.
    stages = plan.get("apiStages") or []
    unbind = [{"op": "remove", "path": "/apiStages", "value": f"{s['apiId']}:{s['stage']}"} for s in stages]
    if unbind:
        apigateway.update_usage_plan(usagePlanId=plan["id"], patchOperations=unbind)
    apigateway.delete_usage_plan(usagePlanId=plan["id"])


def create_tenant(
    apigateway: Any,
    target: Target,
    name: str,
    *,
    rate: float = DEFAULT_RATE,
    burst: int = DEFAULT_BURST,
    quota: int = DEFAULT_QUOTA,
    tags: Mapping[str, str] | None = None,
) -> Tenant:
    """An enabled API key and a usage plan bound to the target stage, holding only that key;
    `tags` adds to the ones that mark it as the stack's tenant."""
    if not TENANT_NAME.match(name):
        raise TenantError(f"tenant name {name!r}: up to 64 letters, digits, '.', '_' or '-', not starting with '.-_'")
    if rate <= 0 or burst < 1 or quota < 1:
        raise TenantError("--rate must be above 0, --burst and --quota at least 1")
    if _tenant_plans(apigateway, target, name) or _tenant_keys(apigateway, target, name):
        raise TenantError(f"tenant {name} already exists in stack {target.stack}")

    tags = {**(tags or {}), **_tags(target, name)}
    key = apigateway.create_api_key(
        name=target.key_name(name), description=f"Tenant {name} of {target.stack}.", enabled=True, tags=tags
    )
    plan: dict[str, Any] | None = None
    try:
        plan = apigateway.create_usage_plan(
            name=target.key_name(name),
            description=f"Throttle and daily quota of tenant {name}.",
            apiStages=[{"apiId": target.api_id, "stage": target.stage}],
            throttle={"rateLimit": float(rate), "burstLimit": int(burst)},
            quota={"limit": int(quota), "period": "DAY"},
            tags=tags,
        )
        apigateway.create_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY")
    except (ClientError, BotoCoreError):
        # Half a tenant is a key that works with no limits of its own, or a plan nobody can delete by
        # name: take back what was made, then report the original failure.
        if plan is not None:
            _delete_plan(apigateway, plan)
        apigateway.delete_api_key(apiKey=key["id"])
        raise
    return _describe(plan, key["id"], key.get("value"))


def list_tenants(apigateway: Any, target: Target) -> list[Tenant]:
    tenants = []
    for plan in _tenant_plans(apigateway, target):
        keys = list(_pages(apigateway, "get_usage_plan_keys", usagePlanId=plan["id"]))
        tenants.append(_describe(plan, ", ".join(k["id"] for k in keys) or "-"))
    return sorted(tenants, key=lambda t: t.name)


def delete_tenant(apigateway: Any, target: Target, name: str) -> list[str]:
    """Deletes the tenant's plan and key; returns the key ids deleted (their records stay in DynamoDB)."""
    plans = _tenant_plans(apigateway, target, name)
    key_ids = {k["id"] for k in _tenant_keys(apigateway, target, name)}
    if not plans and not key_ids:
        raise TenantError(f"no tenant {name} in stack {target.stack}")
    for plan in plans:
        key_ids |= {k["id"] for k in _pages(apigateway, "get_usage_plan_keys", usagePlanId=plan["id"])}
        _delete_plan(apigateway, plan)
    for key_id in sorted(key_ids):
        apigateway.delete_api_key(apiKey=key_id)
    return sorted(key_ids)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _say(line: str = "") -> None:
    print(line)


def add_session_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", help="AWS region (default: boto3's)")
    parser.add_argument("--profile", help="AWS profile (default: boto3's)")


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    """A new key's usage plan: the template's defaults unless told otherwise."""
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="steady requests per second")
    parser.add_argument("--burst", type=int, default=DEFAULT_BURST, help="burst of requests")
    parser.add_argument("--quota", type=int, default=DEFAULT_QUOTA, help="requests per day")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--stack", required=True, help="the gateway's CloudFormation stack; names the tenants")
    common.add_argument("--api-id", help="the REST API id (skips reading the stack's outputs)")
    common.add_argument("--stage", help="the API stage (with --api-id)")
    add_session_arguments(common)

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", parents=[common], help="a new tenant: API key and usage plan")
    create.add_argument("name")
    add_plan_arguments(create)
    commands.add_parser("list", parents=[common], help="the stack's tenants")
    delete = commands.add_parser("delete", parents=[common], help="a tenant's API key and usage plan")
    delete.add_argument("name")
    return parser


def run(args: argparse.Namespace, session: Any) -> None:
    if bool(args.api_id) != bool(args.stage):
        raise TenantError("--api-id and --stage go together")
    if args.api_id:
        target = Target(stack=args.stack, api_id=args.api_id, stage=args.stage)
    else:
        target = find_target(session.client("cloudformation"), args.stack)
    apigateway = session.client("apigateway")

    if args.command == "create":
        tenant = create_tenant(apigateway, target, args.name, rate=args.rate, burst=args.burst, quota=args.quota)
        _say(f"tenant      {tenant.name}")
        _say(f"api key id  {tenant.key_id}")
        _say(f"api key     {tenant.key_value}")
        _say(f"usage plan  {tenant.plan_id}: {tenant.rate:g} req/s, burst {tenant.burst}, {tenant.quota}/day")
        _say(f"            on {', '.join(tenant.stages)}")
        _say("The key's value is shown this once: hand it to the tenant, who sends it as x-api-key.")
    elif args.command == "list":
        tenants = list_tenants(apigateway, target)
        _say(f"{'TENANT':<24} {'API KEY ID':<12} {'PLAN':<10} {'RATE':>8} {'BURST':>6} {'QUOTA/DAY':>10}  STAGES")
        for t in tenants:
            stages = ", ".join(t.stages)
            _say(f"{t.name:<24} {t.key_id:<12} {t.plan_id:<10} {t.rate:>8g} {t.burst:>6} {t.quota:>10}  {stages}")
    else:
        for key_id in delete_tenant(apigateway, target, args.name):
            _say(f"deleted api key id {key_id} of tenant {args.name}")


def run_command(
    run: Callable[[argparse.Namespace, Any], None],
    args: argparse.Namespace,
    session: Any,
    refused: tuple[type[Exception], ...] = (TenantError,),
) -> int:
    """A command's exit status: 2 for what the script refuses, 1 for what AWS refuses."""
    try:
        run(args, session or boto3.session.Session(profile_name=args.profile, region_name=args.region))
    except refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None, session: Any = None) -> int:
    return run_command(run, _parser().parse_args(argv), session)


if __name__ == "__main__":
    sys.exit(main())
