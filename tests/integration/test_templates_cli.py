"""scripts/templates.py against DynamoDB Local (the configuration table) and moto server (the stack's
outputs, API Gateway): a tenant's templates saved, read, listed and deleted as the router function
reads them, and admin API keys made and registered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from scripts.templates import ADMIN_TAG, Table, TemplateError, create_admin_key, latest_templates, main
from scripts.tenants import TENANT_TAG, Target, list_tenants
from smsgw.admin import AdminKeys
from smsgw.templates import TemplateStore
from tests.integration.test_router import LOGIN_CODE
from tests.support import dynamodb_client

ROOT = Path(__file__).parents[2]
TENANT = "a1b2c3d4e5"
# A stack moto accepts; the tests add their outputs after it.
QUEUE_ONLY = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n"


@pytest.fixture
def aws(session: boto3.session.Session, dynamodb_url: str, monkeypatch: pytest.MonkeyPatch) -> boto3.session.Session:
    """moto for CloudFormation and API Gateway, DynamoDB Local for the table."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_url)
    return session


@pytest.fixture
def table(config_table: str, dynamodb_url: str) -> Table:
    return Table(config_table, dynamodb_client(dynamodb_url))


@pytest.fixture
def template_file(tmp_path: Path) -> Path:
    path = tmp_path / "login_code.json"
    path.write_text(json.dumps(LOGIN_CODE))
    return path


def templates(table: Table, *argv: str, session: Any, tenant: str = TENANT) -> int:
    return main([*argv, "--table", table.name, "--tenant", tenant], session)


def test_put_get_list_delete_as_the_router_reads_them(
    aws: boto3.session.Session, table: Table, template_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert templates(table, "put", "login_code", str(template_file), session=aws) == 0
    saved = json.loads(capsys.readouterr().out)
    assert saved == {"name": "login_code", "version": 1, **LOGIN_CODE}
    # What the router function reads: the same store, a fresh cache
    router = TemplateStore(table.name, client=table.client)
    assert router.get(TENANT, "login_code").version == 1

    assert templates(table, "put", "login_code", str(template_file), session=aws) == 0
    assert templates(table, "put", "welcome", str(template_file), session=aws) == 0
    assert templates(table, "put", "welcome", str(template_file), session=aws, tenant="another") == 0
    capsys.readouterr()

    assert templates(table, "get", "login_code", session=aws) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 2
    assert templates(table, "list", session=aws) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in listed[1:]] == [["login_code", "2", "aliyun,"], ["welcome", "1", "aliyun,"]]

    assert templates(table, "delete", "login_code", session=aws) == 0
    assert capsys.readouterr().out == f"deleted template login_code of tenant {TENANT}\n"
    assert [t["name"] for t in latest_templates(table, TENANT)] == ["welcome"]
    assert TemplateStore(table.name, client=table.client).latest(TENANT, "login_code") is None
    # A message already on its way keeps its version
    assert router.get(TENANT, "login_code", 2).version == 2


def test_an_invalid_template_is_refused_and_nothing_is_written(
    aws: boto3.session.Session, table: Table, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**LOGIN_CODE, "ronglian": {"template_id": "1", "datas": ["code"]}}))

    assert templates(table, "put", "login_code", str(bad), session=aws) == 2

    assert "ronglian must map every parameter of params" in capsys.readouterr().err
    assert latest_templates(table, TENANT) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["get", "nope", "--table", "t", "--tenant", TENANT], "no template 'nope' of tenant"),
        (["delete", "nope", "--table", "t", "--tenant", TENANT], "no template 'nope' of tenant"),
        (["list", "--table", "t"], "--tenant"),
        (["list", "--tenant", TENANT], "--stack"),
        (["list", "--local", "--stack", "s"], "--local goes without"),
        (["admin-key", "shop-admin", "--table", "t", "--tenant", TENANT], "admin-key makes an API key"),
    ],
)
def test_what_cannot_be_done_is_said(
    aws: boto3.session.Session,
    table: Table,
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [table.name if word == "t" else word for word in argv]

    assert main(argv, aws) == 2

    assert message in capsys.readouterr().err


def test_the_table_comes_from_the_stacks_outputs(
    aws: boto3.session.Session, table: Table, template_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cloudformation = aws.client("cloudformation")
    cloudformation.create_stack(
        StackName="with-config",
        TemplateBody=f"{QUEUE_ONLY}Outputs:\n  ConfigTableName:\n    Value: {table.name}\n",
    )
    cloudformation.create_stack(StackName="without", TemplateBody=QUEUE_ONLY)

    assert main(["put", "login_code", str(template_file), "--stack", "with-config", "--tenant", TENANT], aws) == 0
    assert [t["name"] for t in latest_templates(table, TENANT)] == ["login_code"]
    assert main(["list", "--stack", "without", "--tenant", TENANT], aws) == 2
    assert "no configuration table (output ConfigTableName)" in capsys.readouterr().err


def test_local_reads_the_running_stacks_state_and_defaults_to_its_first_tenant(
    table: Table, dynamodb_url: str, template_file: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    running = {"pid": os.getpid(), "dynamodb_url": dynamodb_url, "config_table": table.name, "api_key_id": "local"}
    state.write_text(json.dumps(running))

    # As `make template` runs it: the script as a file, its own interpreter
    done = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "scripts/templates.py", "put", "login_code", "-", "--local", "--state", str(state)],
        cwd=ROOT,
        input=template_file.read_text(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert TemplateStore(table.name, client=table.client).get("local", "login_code").version == 1
    assert main(["list", "--local", "--state", str(tmp_path / "none.json")]) == 2


def test_an_admin_key_is_an_api_key_of_its_own_registered_as_the_tenants_admin(
    aws: boto3.session.Session, apigateway: Any, target: Target, table: Table
) -> None:
    tenant = apigateway.create_api_key(name="shop-1", enabled=True)["id"]

    key_id, value = create_admin_key(apigateway, target, table, "shop-1-admin", tenant)

    key = apigateway.get_api_key(apiKey=key_id, includeValue=True)
    assert key["value"] == value
    assert key["tags"][ADMIN_TAG] == tenant
    assert key["tags"][TENANT_TAG] == "shop-1-admin"
    [plan] = [t for t in list_tenants(apigateway, target) if t.key_id == key_id]
    assert plan.stages == (f"{target.api_id}/prod",)
    assert AdminKeys(table.name, client=table.client).tenant(key_id) == tenant


def test_an_admin_key_for_no_tenant_is_not_made(apigateway: Any, target: Target, table: Table) -> None:
    with pytest.raises(TemplateError, match="no API key with the id nope"):
        create_admin_key(apigateway, target, table, "shop-1-admin", "nope")

    assert list_tenants(apigateway, target) == []


class FailingTable:
    """DynamoDB that refuses every write."""

    def put_item(self, **_: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "PutItem")


def test_a_key_that_could_not_be_registered_is_taken_back(apigateway: Any, target: Target) -> None:
    tenant = apigateway.create_api_key(name="shop-1", enabled=True)["id"]

    with pytest.raises(ClientError, match="AccessDenied"):
        create_admin_key(apigateway, target, Table("config", FailingTable()), "shop-1-admin", tenant)

    assert list_tenants(apigateway, target) == []
    assert apigateway.get_api_keys(nameQuery=f"{target.stack}-shop-1-admin")["items"] == []


def test_the_command_line_makes_an_admin_key_from_the_stacks_outputs(
    aws: boto3.session.Session, apigateway: Any, target: Target, table: Table, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant = apigateway.create_api_key(name="shop-1", enabled=True)["id"]
    outputs = {"ApiId": target.api_id, "StageName": target.stage, "ConfigTableName": table.name}
    aws.client("cloudformation").create_stack(
        StackName=target.stack,
        TemplateBody=f"{QUEUE_ONLY}Outputs:\n"
        + "".join(f"  {name}:\n    Value: {value}\n" for name, value in outputs.items()),
    )

    assert main(["admin-key", "shop-1-admin", "--stack", target.stack, "--tenant", tenant], aws) == 0

    key_id, value = (line.split()[-1] for line in capsys.readouterr().out.splitlines()[:2])
    assert AdminKeys(table.name, client=table.client).tenant(key_id) == tenant
    assert apigateway.get_api_key(apiKey=key_id, includeValue=True)["value"] == value
