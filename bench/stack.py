"""The engines the benchmark runs against, on loopback: DynamoDB Local (Java), moto server (Secrets
Manager, SQS) and the provider sandbox, with the gateway's tables, one secret per provider and a
dead-letter queue. The same parts the integration tests start (tests/integration/conftest.py)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

from local.processes import DynamoDBLocal
from local.sandbox import DEFAULT_ACCOUNTS, ProviderSandbox
from smsgw.admin import AdminKeys
from tests.support import Tables, create_message_log, create_table, dynamodb_client, free_port, secret_values

REPOSITORY = Path(__file__).resolve().parents[1]
PROVIDERS = ("polyv", "aliyun", "ronglian")

# Every quota window switched on, as with the template's defaults, but far out of reach: each
# number costs the same DynamoDB work as in production and no send is ever refused.
HIGH_LIMITS = (
    "phone_per_minute=1000000,phone_per_hour=1000000,phone_per_day=1000000,"
    "account_per_day=1000000000,ip_per_day=1000000000,block_per_hour=1000000"
)
# Mainland China (the deployment's default) and Hong Kong, where aliyun.SendInterSms sends.
ALLOWED_COUNTRIES = "CN,HK"


SDK_AWS = (
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_EC2_METADATA_DISABLED",
    "QUOTA_TABLE_NAME",
)


@dataclass
class Stack:
    dynamodb_url: str
    moto_url: str
    sandbox: ProviderSandbox
    tables: Tables
    secrets: dict[str, str] = field(default_factory=dict)
    """Provider -> secret ARN in moto."""
    dead_letter_queue_url: str = ""
    dynamodb_pid: int | None = None
    config_table: str = ""
    """The configuration table (templates, admin keys, circuits, rules) of the unified route."""
    receipts_queue_url: str = ""
    receipt_token_secret: str = ""

    def environment(self, provider: str, *, quota_limits: str = HIGH_LIMITS) -> dict[str, str]:
        """A provider function's environment against this stack (what template.yaml and the local
        stack give it, with AWS pointed at the local engines)."""
        return {
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_url,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "POWERTOOLS_SERVICE_NAME": "sms-gateway",
            "POWERTOOLS_METRICS_NAMESPACE": "SmsGateway",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "QUOTA_TABLE_NAME": self.tables.quota,
            "IDEMPOTENCY_TABLE_NAME": self.tables.idempotency,
            "MESSAGE_LOG_TABLE_NAME": self.tables.messages,
            "QUOTA_LIMITS": quota_limits,
            "PROVIDER": provider,
            "PROVIDER_SECRET_ID": self.secrets[provider],
            "DEAD_LETTER_QUEUE_URL": self.dead_letter_queue_url,
            "DEFAULT_ALLOWED_COUNTRIES": ALLOWED_COUNTRIES,
        }

    def router_environment(self) -> dict[str, str]:
        """The unified route's function (RouterFunction in template.yaml): every provider's secret,
        the configuration table; a failure threshold out of reach, so that a provider failing on
        purpose is tried on every send and its circuit never opens."""
        values = {k: v for k, v in self.environment("polyv").items() if k not in ("PROVIDER", "PROVIDER_SECRET_ID")}
        return (
            values
            | {f"{p.upper()}_SECRET_ID": self.secrets[p] for p in PROVIDERS}
            | {
                "CONFIG_TABLE_NAME": self.config_table,
                "CIRCUIT_FAILURE_THRESHOLD": "1000000000",
                "CIRCUIT_COOLDOWN_SECONDS": "30",
                "RONGLIAN_CHUNK_SIZE": "100",
            }
        )

    def sdk_environment(self) -> dict[str, str]:
        """The minimal official-SDK handler's (bench/coldstart_child.py): its Aliyun keys, the
        sandbox, and the quota table for its one counter."""
        aliyun = DEFAULT_ACCOUNTS.aliyun
        aws = self.environment("aliyun")
        return {name: aws[name] for name in SDK_AWS} | {
            "ALIYUN_ACCESS_KEY_ID": aliyun.access_key_id,
            "ALIYUN_ACCESS_KEY_SECRET": aliyun.access_key_secret,
            "ALIYUN_ENDPOINT": self.sandbox.url.removeprefix("http://"),
        }

    def receipts_environment(self) -> dict[str, str]:
        """The receipts function (ReceiptsFunction): its token secret and queue."""
        values = self.environment("aliyun")
        return values | {
            "RECEIPT_TOKEN_SECRET_ID": self.receipt_token_secret,
            "RECEIPTS_QUEUE_URL": self.receipts_queue_url,
        }


RECEIPT_TOKENS = {"aliyun": "bench-aliyun-receipt-token-0001", "ronglian": "bench-ronglian-receipt-token-01"}
ADMIN_KEY, TENANT = "bench-admin", "localkey01"
"""The admin API key of the events' tenant (`apiKeyId` in events/*.json)."""


@contextmanager
def running_stack(log_dir: Path) -> Iterator[Stack]:
    """Start everything, yield it, stop everything (also on an error or Ctrl-C)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "dynamodb-local.log").open("wb") as dynamodb_log:
        engine = DynamoDBLocal(output=dynamodb_log)
        moto_port = free_port()
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        sandbox = ProviderSandbox()
        try:
            engine.spawn()
            moto.start()
            sandbox.start()
            engine.wait_ready()
            moto_url = f"http://127.0.0.1:{moto_port}"
            tables = Tables(
                quota=create_table(engine.url, "bench-quota"),
                idempotency=create_table(engine.url, "bench-idempotency", key="id"),
                messages=create_message_log(engine.url),
            )
            pid = engine.process.pid if engine.process else None
            stack = Stack(dynamodb_url=engine.url, moto_url=moto_url, sandbox=sandbox, tables=tables, dynamodb_pid=pid)
            stack.config_table = create_table(engine.url, "bench-config", sort_key="sk")
            AdminKeys(stack.config_table, client=dynamodb_client(engine.url)).grant(ADMIN_KEY, TENANT)
            _provision(stack)
            yield stack
        finally:
            sandbox.stop()
            moto.stop()
            engine.stop()


def _provision(stack: Stack) -> None:
    aws = {
        "endpoint_url": stack.moto_url,
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    secrets = boto3.client("secretsmanager", **aws)
    for provider in PROVIDERS:
        payload = json.dumps(secret_values(provider, stack.sandbox.url))
        name = f"bench-{provider}-{uuid.uuid4().hex[:8]}"
        stack.secrets[provider] = secrets.create_secret(Name=name, SecretString=payload)["ARN"]
    sqs = boto3.client("sqs", **aws)
    stack.dead_letter_queue_url = sqs.create_queue(QueueName=f"bench-dlq-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    stack.receipts_queue_url = sqs.create_queue(QueueName=f"bench-receipts-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    name = f"bench-receipt-tokens-{uuid.uuid4().hex[:8]}"
    stack.receipt_token_secret = secrets.create_secret(Name=name, SecretString=json.dumps(RECEIPT_TOKENS))["ARN"]


def apply_environment(values: Mapping[str, str]) -> None:
    """Point this process's handlers at the stack (what the integration tests' fixtures do)."""
    os.environ.update(values)
