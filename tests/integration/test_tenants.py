"""scripts/tenants.py against API Gateway and CloudFormation in a moto server: a tenant is an API key
with a usage plan of its own on the stack's stage, listed and deleted by name."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from scripts.tenants import (
    STACK_TAG,
    TENANT_TAG,
    Target,
    TenantError,
    create_tenant,
    delete_tenant,
    find_target,
    list_tenants,
    main,
)


def _cli(target: Target) -> list[str]:
    return ["--stack", target.stack, "--api-id", target.api_id, "--stage", target.stage]


def test_create_makes_a_key_bound_to_a_plan_of_its_own(apigateway: Any, target: Target) -> None:
    tenant = create_tenant(apigateway, target, "shop-1", rate=10, burst=20, quota=5000)

    key = apigateway.get_api_key(apiKey=tenant.key_id, includeValue=True)
    assert key["name"] == f"{target.stack}-shop-1"
    assert key["enabled"] is True
    assert key["value"] == tenant.key_value
    assert key["tags"] == {STACK_TAG: target.stack, TENANT_TAG: "shop-1"}
    plan = apigateway.get_usage_plan(usagePlanId=tenant.plan_id)
    assert plan["throttle"] == {"rateLimit": 10.0, "burstLimit": 20}
    assert plan["quota"] == {"limit": 5000, "period": "DAY"}
    assert plan["apiStages"] == [{"apiId": target.api_id, "stage": "prod"}]
    plan_keys = apigateway.get_usage_plan_keys(usagePlanId=tenant.plan_id)["items"]
    assert [(k["id"], k["type"]) for k in plan_keys] == [(tenant.key_id, "API_KEY")]


def test_list_shows_the_stacks_tenants_only(apigateway: Any, target: Target) -> None:
    shop = create_tenant(apigateway, target, "shop-1", rate=10, burst=20, quota=5000)
    create_tenant(apigateway, target, "clinic", rate=1, burst=2, quota=100)
    other_stack = Target(stack=f"{target.stack}-other", api_id=target.api_id, stage=target.stage)
    create_tenant(apigateway, other_stack, "shop-1")
    # A plan made by hand (like the template's default plan) is nobody's tenant.
    apigateway.create_usage_plan(name=f"{target.stack}-default", apiStages=[{"apiId": target.api_id, "stage": "prod"}])

    tenants = list_tenants(apigateway, target)

    assert [t.name for t in tenants] == ["clinic", "shop-1"]
    listed = tenants[1]
    assert (listed.key_id, listed.plan_id) == (shop.key_id, shop.plan_id)
    assert (listed.rate, listed.burst, listed.quota) == (10.0, 20, 5000)
    assert listed.stages == (f"{target.api_id}/prod",)
    assert listed.key_value is None


def test_delete_removes_the_key_and_the_plan(apigateway: Any, target: Target) -> None:
    tenant = create_tenant(apigateway, target, "shop-1")
    neighbour = create_tenant(apigateway, target, "shop-10")

    deleted = delete_tenant(apigateway, target, "shop-1")

    assert deleted == [tenant.key_id]
    with pytest.raises(ClientError, match="NotFound"):
        apigateway.get_api_key(apiKey=tenant.key_id)
    with pytest.raises(ClientError, match="NotFound"):
        apigateway.get_usage_plan(usagePlanId=tenant.plan_id)
    # "shop-1" is a prefix of "shop-10": only the exact tenant goes.
    assert [t.name for t in list_tenants(apigateway, target)] == ["shop-10"]
    assert apigateway.get_api_key(apiKey=neighbour.key_id)["name"] == f"{target.stack}-shop-10"


def test_a_tenant_that_exists_is_not_created_twice(apigateway: Any, target: Target) -> None:
    create_tenant(apigateway, target, "shop-1")

    with pytest.raises(TenantError, match="already exists"):
        create_tenant(apigateway, target, "shop-1")

    assert len(list_tenants(apigateway, target)) == 1


def test_deleting_an_unknown_tenant_says_so(apigateway: Any, target: Target) -> None:
    with pytest.raises(TenantError, match="no tenant ghost"):
        delete_tenant(apigateway, target, "ghost")


@pytest.mark.parametrize(
    ("name", "limits"),
    [("shop 1", {}), ("-shop", {}), ("shop", {"rate": 0}), ("shop", {"quota": 0})],
)
def test_bad_names_and_limits_are_refused_before_anything_is_made(
    apigateway: Any, target: Target, name: str, limits: dict[str, Any]
) -> None:
    with pytest.raises(TenantError):
        create_tenant(apigateway, target, name, **limits)

    assert list_tenants(apigateway, target) == []


class FailingPlanKeys:
    """The real client, except that binding a key to a plan fails."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def create_usage_plan_key(self, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "slow down"}}, "CreateUsagePlanKey")


def test_a_half_made_tenant_is_taken_back(apigateway: Any, target: Target) -> None:
    with pytest.raises(ClientError, match="TooManyRequests"):
        create_tenant(FailingPlanKeys(apigateway), target, "shop-1")

    assert list_tenants(apigateway, target) == []
    keys = apigateway.get_api_keys(nameQuery=f"{target.stack}-shop-1")["items"]
    assert keys == []


def test_the_stage_comes_from_the_stacks_outputs(session: boto3.session.Session, target: Target) -> None:
    cloudformation = session.client("cloudformation")
    cloudformation.create_stack(
        StackName=target.stack,
        TemplateBody=(
            "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n"
            f"Outputs:\n  ApiId:\n    Value: {target.api_id}\n  StageName:\n    Value: {target.stage}\n"
        ),
    )

    assert find_target(cloudformation, target.stack) == target


def test_a_stack_without_an_api_is_reported(session: boto3.session.Session) -> None:
    cloudformation = session.client("cloudformation")
    stack = f"no-api-{uuid.uuid4().hex[:8]}"
    cloudformation.create_stack(StackName=stack, TemplateBody="Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n")

    with pytest.raises(TenantError, match="pass --api-id and --stage"):
        find_target(cloudformation, stack)
    with pytest.raises(TenantError, match="does not exist"):
        find_target(cloudformation, f"{stack}-missing")


def test_the_command_line_creates_lists_and_deletes(
    session: boto3.session.Session, apigateway: Any, target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["create", "shop-1", *_cli(target), "--rate", "5", "--burst", "10", "--quota", "700"], session) == 0
    created = capsys.readouterr().out
    (tenant,) = list_tenants(apigateway, target)
    value = apigateway.get_api_key(apiKey=tenant.key_id, includeValue=True)["value"]
    assert f"api key id  {tenant.key_id}\n" in created
    assert f"api key     {value}\n" in created
    assert "5 req/s, burst 10, 700/day" in created

    assert main(["list", *_cli(target)], session) == 0
    listed = capsys.readouterr().out
    assert tenant.key_id in listed
    assert "shop-1" in listed
    assert value not in listed

    assert main(["delete", "shop-1", *_cli(target)], session) == 0
    assert f"deleted api key id {tenant.key_id}" in capsys.readouterr().out
    assert list_tenants(apigateway, target) == []


def test_the_command_line_reads_the_stack_and_reports_errors(
    session: boto3.session.Session, apigateway: Any, target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    session.client("cloudformation").create_stack(
        StackName=target.stack,
        TemplateBody=(
            "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n"
            f"Outputs:\n  ApiId:\n    Value: {target.api_id}\n  StageName:\n    Value: {target.stage}\n"
        ),
    )

    assert main(["create", "shop-1", "--stack", target.stack], session) == 0
    assert [t.stages for t in list_tenants(apigateway, target)] == [(f"{target.api_id}/prod",)]
    capsys.readouterr()

    assert main(["create", "shop-1", "--stack", target.stack], session) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["list", "--stack", target.stack, "--api-id", target.api_id], session) == 2
    assert "--api-id and --stage go together" in capsys.readouterr().err
