"""scripts/rules.py against DynamoDB Local (the configuration table): a tenant's rules put and read,
numbers opted out and back in, as the functions read them; scripts/webhooks.py against moto server:
a tenant's webhook signing secret set and removed in WebhookSecret, the other tenants' left alone."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from standardwebhooks import Webhook

from scripts.rules import main as rules
from scripts.templates import Table
from scripts.webhooks import main as webhooks
from smsgw.rules import RuleStore
from tests.support import dynamodb_client

TENANT = "a1b2c3d4e5"


@pytest.fixture
def table(config_table: str, dynamodb_url: str) -> Table:
    return Table(config_table, dynamodb_client(dynamodb_url))


@pytest.fixture
def aws(session: boto3.session.Session, dynamodb_url: str, monkeypatch: pytest.MonkeyPatch) -> boto3.session.Session:
    """moto for Secrets Manager, DynamoDB Local for the table."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_url)
    return session


def on(table: Table, *argv: str, session: Any) -> int:
    return rules([*argv, "--table", table.name, "--tenant", TENANT], session)


def test_rules_put_and_read_as_the_functions_read_them(
    aws: boto3.session.Session, table: Table, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "rules.json"
    file.write_text(json.dumps({"allowed_countries": ["CN", "HK"], "guard": {"block_per_hour": 5}}))

    assert on(table, "put", str(file), session=aws) == 0
    assert on(table, "get", session=aws) == 0

    put, got = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert put == got
    assert got["allowed_countries"] == ["CN", "HK"]
    applied = RuleStore(table.name, client=table.client, default_countries=frozenset({"CN"})).applied(TENANT)
    assert (applied.countries, applied.guard.block_per_hour) == (frozenset({"CN", "HK"}), 5)


def test_wrong_rules_are_refused_naming_the_field(
    aws: boto3.session.Session, table: Table, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "rules.json"
    file.write_text(json.dumps({"allowed_countries": ["china"]}))

    assert on(table, "put", str(file), session=aws) == 2
    assert "allowed_countries.0" in capsys.readouterr().err


def test_a_number_opted_out_and_back_in_in_any_spelling(
    aws: boto3.session.Session, table: Table, capsys: pytest.CaptureFixture[str]
) -> None:
    store = RuleStore(table.name, client=table.client, default_countries=frozenset({"CN"}))

    assert on(table, "opt-out", "13800138000", session=aws) == 0
    assert store.opted_out(TENANT, "+8613800138000") is not None
    assert on(table, "opted-out", "+8613800138000", session=aws) == 0
    assert on(table, "opt-in", "008613800138000", session=aws) == 0
    assert store.opted_out(TENANT, "+8613800138000") is None
    assert on(table, "opt-in", "13800138000", session=aws) == 2

    out, err = capsys.readouterr()
    assert out.splitlines()[0] == f"+8613800138000 opted out for tenant {TENANT}"
    assert json.loads(out.splitlines()[1])["reason"] == "requested"
    assert "is not opted out" in err


def test_a_tenants_signing_secret_is_set_and_removed_the_others_left_alone(
    session: boto3.session.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = session.client("secretsmanager")
    other = "whsec_" + base64.b64encode(b"another tenant's signing key!").decode()
    arn = secrets.create_secret(Name="WebhookSecret-cli", SecretString=json.dumps({"other": other}))["ARN"]

    def stored() -> dict[str, str]:
        value: dict[str, str] = json.loads(secrets.get_secret_value(SecretId=arn)["SecretString"])
        return value

    assert webhooks(["set", "--secret-id", arn, "--tenant", TENANT], session) == 0
    printed = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines()[:2])
    assert stored() == {"other": other, TENANT: printed["secret"]}
    # A secret the receiver's library takes: it verifies what the gateway signs with it
    signed = Webhook(printed["secret"]).sign("msg_1", datetime.now(UTC), "{}")
    assert signed.startswith("v1,")

    assert webhooks(["set", "--secret-id", arn, "--tenant", TENANT, "--secret", other], session) == 0
    assert stored()[TENANT] == other
    assert webhooks(["remove", "--secret-id", arn, "--tenant", TENANT], session) == 0
    assert stored() == {"other": other}
    assert webhooks(["remove", "--secret-id", arn, "--tenant", TENANT], session) == 2
    with pytest.raises(SystemExit):
        webhooks(["set", "--secret-id", arn, "--tenant", TENANT, "--secret", "not-a-secret"], session)
