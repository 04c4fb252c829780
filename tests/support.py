"""Small helpers for tests of every tier."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from local.sandbox import DEFAULT_ACCOUNTS

EVENTS = Path(__file__).parents[1] / "events"


def free_port() -> int:
    """A port nothing listens on right now (for connection-refused cases and servers)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


Post = Callable[[str, Mapping[str, str], bytes], int]
"""A POST's path, headers and body → the HTTP status to answer."""


class LoopbackEndpoint:
    """An HTTP endpoint on loopback (a receipt URL, a client's webhook URL): every POST is handed
    to `handle`, whose status is the answer; `close()` stops it."""

    def __init__(self, handle: Post) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status = handle(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # as a web server's: the default 5 drops concurrent connections
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def dynamodb_client(url: str, config: Config | None = None) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=config or Config(max_pool_connections=50, retries={"max_attempts": 2}),
    )


def create_table(url: str, prefix: str, key: str = "pk", sort_key: str | None = None) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    keys = [(key, "HASH"), *([(sort_key, "RANGE")] if sort_key else [])]
    dynamodb_client(url).create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
        KeySchema=[{"AttributeName": k, "KeyType": kind} for k, kind in keys],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def create_message_log(url: str) -> str:
    """The message log as template.yaml declares it: with the `open` index of receipt-awaiting calls."""
    name = f"messages-{uuid.uuid4().hex[:8]}"
    dynamodb_client(url).create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "open_day", "AttributeType": "S"},
            {"AttributeName": "accepted_at", "AttributeType": "N"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "open",
                "KeySchema": [
                    {"AttributeName": "open_day", "KeyType": "HASH"},
                    {"AttributeName": "accepted_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@dataclass(frozen=True)
class Tables:
    quota: str
    idempotency: str
    messages: str


class FakeContext:
    function_name = "PolyvFunction"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:PolyvFunction"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


# The unified route's tenant in process, and the API key id registered as its admin.
ROUTER_ADMIN, ROUTER_TENANT = "admin-of-shop", "shop"

# Quotas off unless a test sets them: these tests send to the same numbers over and over.
NO_QUOTAS = "phone_per_minute=0,phone_per_hour=0,phone_per_day=0,account_per_day=0,ip_per_day=0,block_per_hour=0"


def secret_values(provider: str, endpoint: str) -> dict[str, str]:
    accounts = DEFAULT_ACCOUNTS
    if provider == "polyv":
        return {"app_id": accounts.polyv.app_id, "app_secret": accounts.polyv.app_secret, "endpoint": endpoint}
    if provider == "aliyun":
        return {
            "access_key_id": accounts.aliyun.access_key_id,
            "access_key_secret": accounts.aliyun.access_key_secret,
            "endpoint": endpoint,
        }
    return {
        "account_sid": accounts.ronglian.account_sid,
        "auth_token": accounts.ronglian.auth_token,
        "app_id": accounts.ronglian.app_id,
        "endpoint": endpoint,
    }


def event(name: str, body: Any = None, raw_body: str | None = None) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    loaded["requestContext"]["requestId"] = str(uuid.uuid4())
    if body is not None:
        loaded["body"] = json.dumps(body)
    if raw_body is not None:
        loaded["body"] = raw_body
    return loaded


def with_header(evt: dict[str, Any], name: str, value: str) -> dict[str, Any]:
    """A header added as API Gateway sends it: in `headers` and in `multiValueHeaders`."""
    evt["headers"][name] = value
    evt.setdefault("multiValueHeaders", {})[name] = [value]
    return evt


def call(function: str, evt: dict[str, Any]) -> dict[str, Any]:
    """Invoke a function's handler (`functions/<function>/app.py`) in process: its raw answer."""
    module = __import__(f"{function}.app", fromlist=["handler"])
    answer: dict[str, Any] = module.handler(evt, FakeContext())
    return answer


def invoke(function: str, evt: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    answer = call(function, evt)
    return answer["statusCode"], json.loads(answer["body"])


def header(answer: dict[str, Any], name: str) -> str | None:
    """A header of a handler's proxy answer (Powertools' REST resolver answers in multiValueHeaders)."""
    for source in (answer.get("multiValueHeaders") or {}, answer.get("headers") or {}):
        for key, value in source.items():
            if key.lower() == name.lower():
                return str(value[0] if isinstance(value, list) else value)
    return None


def sqs_event(*records: tuple[str, Any], queue: str = "PolyvQueue", receive_count: int = 1) -> dict[str, Any]:
    """An SQS batch as Lambda delivers it: (message id, body) pairs, a body given as JSON-able data
    or as the raw string; a redelivery has a `receive_count` above 1."""
    template: dict[str, Any] = json.loads((EVENTS / "polyv-queue.json").read_text())["Records"][0]
    batch = []
    for message_id, body in records:
        record = json.loads(json.dumps(template))
        record["messageId"] = message_id
        record["body"] = body if isinstance(body, str) else json.dumps(body)
        record["eventSourceARN"] = f"arn:aws:sqs:us-east-1:123456789012:{queue}"
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
        batch.append(record)
    return {"Records": batch}


def polyv_message(*phones: str, **envelope: Any) -> dict[str, Any]:
    """A Polyv send as a queued message's body, with envelope fields (`idempotencyKey`, `tenant`)."""
    return {
        "phone_numbers": list(phones),
        "template_param_names": ["code"],
        "template_param_values": ["1234"],
        **envelope,
    }


def log_record(tenant: str, request_id: str) -> tuple[int, dict[str, Any]]:
    """A tenant's message log record, as the status route answers it."""
    event = json.loads((EVENTS / "polyv-send.json").read_text())
    event.update(httpMethod="GET", resource="/v1/messages/{requestId}", path=f"/v1/messages/{request_id}", body=None)
    event["pathParameters"] = {"requestId": request_id}
    event["requestContext"]["identity"]["apiKeyId"] = tenant
    return invoke("messages", event)


def dead_letters(url: str) -> list[dict[str, Any]]:
    """What a queue holds, taken out of it."""
    found: list[dict[str, Any]] = []
    while (
        batch := boto3.client("sqs")
        .receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0)
        .get("Messages", [])
    ):
        found.extend(batch)
        for message in batch:
            boto3.client("sqs").delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found
