"""Fixtures for tests that talk to DynamoDB Local (the real engine) and moto server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from local.processes import DynamoDBLocal
from local.sandbox import ProviderSandbox
from scripts.tenants import Target
from smsgw import runtime
from smsgw.admin import AdminKeys
from tests.support import (
    NO_QUOTAS,
    ROUTER_ADMIN,
    ROUTER_TENANT,
    FakeContext,
    Tables,
    create_message_log,
    create_table,
    dynamodb_client,
    free_port,
    secret_values,
)


@pytest.fixture(scope="session")
def dynamodb_url() -> Iterator[str]:
    engine = DynamoDBLocal()
    engine.spawn()
    engine.wait_ready()
    yield engine.url
    engine.stop()


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def tables(dynamodb_url: str) -> Tables:
    """Fresh gateway tables for one test, shaped as template.yaml declares them."""
    return Tables(
        quota=create_table(dynamodb_url, "quota"),
        idempotency=create_table(dynamodb_url, "idempotency", key="id"),
        messages=create_message_log(dynamodb_url),
    )


@pytest.fixture
def aws(moto_url: str, dynamodb_url: str, tables: Tables, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in {
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
        "QUOTA_TABLE_NAME": tables.quota,
        "IDEMPOTENCY_TABLE_NAME": tables.idempotency,
        "MESSAGE_LOG_TABLE_NAME": tables.messages,
        "QUOTA_LIMITS": NO_QUOTAS,
        # Hong Kong and the others some tests send to, beside the deployment's default (mainland China)
        "DEFAULT_ALLOWED_COUNTRIES": "CN,HK,MO,TW,SG,GB,US,JP,FR,DE,AU",
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_SERVICE_NAME": "sms-gateway",
        "POWERTOOLS_METRICS_NAMESPACE": "SmsGateway",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PROVIDER_READ_TIMEOUT": "0.5",
    }.items():
        monkeypatch.setenv(name, value)
    return moto_url


@pytest.fixture
def deploy(aws: str, sandbox: ProviderSandbox, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Any:
    """Put a provider's secret in moto and configure the function's environment for it."""
    secrets = boto3.client("secretsmanager")

    def _deploy(provider: str, values: dict[str, str] | str | None = None) -> str:
        name = f"{provider}-{uuid.uuid4().hex[:12]}"
        payload = values if isinstance(values, str) else json.dumps(values or secret_values(provider, sandbox.url))
        arn: str = secrets.create_secret(Name=name, SecretString=payload)["ARN"]
        monkeypatch.setenv("PROVIDER", provider)
        monkeypatch.setenv("PROVIDER_SECRET_ID", arn)
        runtime.reset()
        return arn

    yield _deploy
    runtime.reset()


@pytest.fixture
def config_table(dynamodb_url: str) -> str:
    """A fresh configuration table, shaped as template.yaml's ConfigTable."""
    return create_table(dynamodb_url, "config", sort_key="sk")


@pytest.fixture
def router(
    aws: str, sandbox: ProviderSandbox, config_table: str, dynamodb_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ProviderSandbox]:
    """The router function with every provider's secret, the admin key registered, quotas off
    unless a test sets them."""
    secrets = boto3.client("secretsmanager")
    for provider in ("polyv", "aliyun", "ronglian"):
        arn = secrets.create_secret(
            Name=f"{provider}-{uuid.uuid4().hex[:8]}", SecretString=json.dumps(secret_values(provider, sandbox.url))
        )["ARN"]
        monkeypatch.setenv(f"{provider.upper()}_SECRET_ID", arn)
    monkeypatch.setenv("CONFIG_TABLE_NAME", config_table)
    monkeypatch.setenv("CIRCUIT_FAILURE_THRESHOLD", "3")
    monkeypatch.setenv("CIRCUIT_COOLDOWN_SECONDS", "2")
    monkeypatch.delenv("PROVIDER", raising=False)
    AdminKeys(config_table, client=dynamodb_client(dynamodb_url)).grant(ROUTER_ADMIN, ROUTER_TENANT)
    runtime.reset()
    yield sandbox
    runtime.reset()


# -- API Gateway and CloudFormation in moto: the stack the command lines work on -------------------


@pytest.fixture
def session(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> boto3.session.Session:
    """A boto3 session whose clients reach moto server."""
    for name, value in {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    return boto3.session.Session()


@pytest.fixture
def apigateway(session: boto3.session.Session) -> Any:
    return session.client("apigateway")


@pytest.fixture
def target(apigateway: Any) -> Target:
    """A deployed REST API with a `prod` stage, and a stack name no other test uses."""
    api_id = apigateway.create_rest_api(name=f"gateway-{uuid.uuid4().hex[:8]}")["id"]
    root = apigateway.get_resources(restApiId=api_id)["items"][0]["id"]
    apigateway.put_method(
        restApiId=api_id, resourceId=root, httpMethod="GET", authorizationType="NONE", apiKeyRequired=True
    )
    apigateway.put_integration(restApiId=api_id, resourceId=root, httpMethod="GET", type="MOCK")
    apigateway.create_deployment(restApiId=api_id, stageName="prod")
    return Target(stack=f"sms-gateway-{uuid.uuid4().hex[:8]}", api_id=api_id, stage="prod")


@pytest.fixture
def dead_letter_queue(aws: str, monkeypatch: pytest.MonkeyPatch) -> str:
    url: str = boto3.client("sqs").create_queue(QueueName=f"dlq-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", url)
    return url


@pytest.fixture
def polyv_queue(deploy: Any, dead_letter_queue: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The Polyv function fed SQS batches: the ids of the records it reports as failed."""
    monkeypatch.setenv("QUOTA_LIMITS", "phone_per_minute=0,phone_per_hour=0")
    deploy("polyv")

    def handle(event: dict[str, Any]) -> list[str]:
        module = __import__("polyv.app", fromlist=["handler"])
        answer = module.handler(event, FakeContext())
        return [failure["itemIdentifier"] for failure in answer["batchItemFailures"]]

    return handle
