"""The local stack as `make run` starts it: engines up, the bootstrap's secrets, tables and queues,
the SQS pollers, the gateway's refusals over HTTP, the receipt routes and the sandbox's inbox on the
API's port, moto going down and coming back, and a clean stop."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

from local.bootstrap import Bootstrap
from local.invoke import prepare
from local.sandbox import DEFAULT_ACCOUNTS
from local.stack import LOCAL_RECEIPT_TOKENS, LOCAL_WEBHOOK_SECRET, STATE_FILE, LocalStack
from local.template import QUEUE_TYPE, TABLE_TYPES, Physical, Template
from tests.support import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
POLYV_SEND = {"phone_numbers": ["13800138000"], "template_param_names": ["code"], "template_param_values": ["123456"]}


def aws(service: str, endpoint_url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="e2e",
        aws_secret_access_key="e2e",
        config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}),
    )


def gone(pid: int, within: float = 10.0) -> bool:
    """Whether the process has exited (a zombie counts as exited)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status")
        try:
            state = next(line for line in status.read_text().splitlines() if line.startswith("State:"))
        except FileNotFoundError:
            return True
        if "zombie" in state:
            return True
        time.sleep(0.1)
    return False


def listening_addresses(port: int) -> set[str]:
    """The local addresses a LISTEN socket on `port` is bound to, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                found.add(address)
    return found


# IPv4 127.0.0.1, and the same as an IPv4-mapped IPv6 address (how Java binds it)
LOOPBACK_HEX = {"0100007F", "0000000000000000FFFF00000100007F"}


def test_every_function_has_a_pool_of_workers_each_its_own_process_with_the_same_environment(
    local_stack: LocalStack,
) -> None:
    assert set(local_stack.workers) == set(local_stack.functions) >= {"PolyvFunction", "AliyunFunction"}
    for function_id, pool in local_stack.workers.items():
        assert len(pool.workers) == local_stack.function_concurrency == 2
        assert len(set(pool.pids)) == len(set(pool.urls)) == 2
        assert all(worker.environment == pool.environment for worker in pool.workers)
        assert pool.environment["AWS_LAMBDA_FUNCTION_NAME"] == function_id


def test_every_part_listens_on_loopback_only(local_stack: LocalStack) -> None:
    assert local_stack.sandbox is not None
    urls = [local_stack.api_url, local_stack.moto_url, local_stack.dynamodb_url]
    urls += [local_stack.sandbox.url, local_stack.sandbox.control_url, *local_stack.sandbox.provider_urls.values()]
    urls += [url for pool in local_stack.workers.values() for url in pool.urls]

    for url in urls:
        addresses = listening_addresses(int(url.rsplit(":", 1)[1]))
        assert addresses, url
        assert addresses <= LOOPBACK_HEX, url


def test_the_bootstrap_put_each_providers_sandbox_account_in_its_secret_pointed_at_its_own_port(
    local_stack: LocalStack,
) -> None:
    assert local_stack.sandbox is not None
    secrets = aws("secretsmanager", local_stack.moto_url)
    accounts, endpoint = DEFAULT_ACCOUNTS, local_stack.sandbox.url_for

    values = {
        name: json.loads(secrets.get_secret_value(SecretId=local_stack.resources[name].ref)["SecretString"])
        for name in ("PolyvSecret", "AliyunSecret", "RonglianSecret")
    }

    assert values["PolyvSecret"] == {
        "app_id": accounts.polyv.app_id,
        "app_secret": accounts.polyv.app_secret,
        "endpoint": endpoint("polyv"),
    }
    assert values["AliyunSecret"] == {
        "access_key_id": accounts.aliyun.access_key_id,
        "access_key_secret": accounts.aliyun.access_key_secret,
        "endpoint": endpoint("aliyun"),
        "region_id": "cn-hangzhou",
    }
    assert values["RonglianSecret"] == {
        "account_sid": accounts.ronglian.account_sid,
        "auth_token": accounts.ronglian.auth_token,
        "app_id": accounts.ronglian.app_id,
        "endpoint": endpoint("ronglian"),
    }
    listed = secrets.list_secrets()["SecretList"]
    tagged = {s["Name"]: {t["Key"]: t["Value"] for t in s.get("Tags", [])} for s in listed}
    assert {name: tags["sms-gateway:provider"] for name, tags in tagged.items() if tags} == {
        "PolyvSecret": "polyv",
        "AliyunSecret": "aliyun",
        "RonglianSecret": "ronglian",
    }


def test_the_bootstrap_gives_the_receipt_tokens_and_every_tenants_webhook_secret_their_local_values(
    local_stack: LocalStack,
) -> None:
    secrets = aws("secretsmanager", local_stack.moto_url)

    def value(name: str) -> Any:
        return json.loads(secrets.get_secret_value(SecretId=local_stack.resources[name].ref)["SecretString"])

    assert value("ReceiptTokenSecret") == LOCAL_RECEIPT_TOKENS
    assert value("WebhookSecret") == {"local": LOCAL_WEBHOOK_SECRET}
    # The sandbox pushes its receipts to the receipt routes, with those tokens
    assert local_stack.sandbox is not None
    assert local_stack.sandbox.receipt_settings.urls == {
        provider: f"{local_stack.api_url}/v1/receipts/{provider}/{token}"
        for provider, token in LOCAL_RECEIPT_TOKENS.items()
    }


def test_the_receipt_routes_take_no_api_key_but_their_token(local_stack: LocalStack) -> None:
    aliyun = f"{local_stack.api_url}/v1/receipts/aliyun"

    checked = requests.get(f"{aliyun}/{LOCAL_RECEIPT_TOKENS['aliyun']}", timeout=10)
    refused = requests.get(f"{aliyun}/not-the-receipt-token", timeout=10)

    assert (checked.status_code, checked.json()) == (200, {"code": 0, "msg": "成功"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "invalid_receipt_token")


def test_the_sandbox_inbox_is_served_on_the_apis_port(local_stack: LocalStack) -> None:
    page = requests.get(local_stack.inbox_url, timeout=10)
    bare = requests.get(local_stack.inbox_url.rstrip("/"), allow_redirects=False, timeout=10)
    messages = requests.get(f"{local_stack.inbox_url}messages", timeout=10)

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Sandbox inbox" in page.text
    assert (bare.status_code, bare.headers["location"]) == (308, "/_sandbox/")
    assert set(messages.json()) == {"phones", "receipts"}


def test_on_the_local_stack_webhooks_may_go_to_loopback_and_hong_kong_is_a_default_country(
    local_stack: LocalStack,
) -> None:
    for function_id in local_stack.functions:
        environment = local_stack.environment(function_id)
        assert environment["WEBHOOK_ALLOW_LOOPBACK"] == "true", function_id
        assert environment["DEFAULT_ALLOWED_COUNTRIES"] == "CN,HK", function_id


def test_each_function_holds_its_secrets_arn_and_reaches_aws_through_the_endpoint_variables(
    local_stack: LocalStack,
) -> None:
    environment = local_stack.environment("PolyvFunction")

    assert environment["PROVIDER_SECRET_ID"] == local_stack.resources["PolyvSecret"].ref
    assert environment["PROVIDER_SECRET_ID"].startswith("arn:aws:secretsmanager:us-east-1:123456789012:secret:")
    assert environment["AWS_ENDPOINT_URL"] == local_stack.moto_url
    assert environment["AWS_ENDPOINT_URL_DYNAMODB"] == local_stack.dynamodb_url
    assert environment["AWS_LAMBDA_FUNCTION_NAME"] == "PolyvFunction"
    assert environment["POWERTOOLS_TRACE_DISABLED"] == "true"


def test_dynamodb_local_answers_with_the_templates_tables(local_stack: LocalStack) -> None:
    tables = local_stack.template.of_type(*TABLE_TYPES)

    listed = aws("dynamodb", local_stack.dynamodb_url).list_tables()["TableNames"]

    assert set(listed) >= {local_stack.resources[name].ref for name in tables}


def test_a_send_without_an_api_key_is_refused_in_the_gateways_error_shape(local_stack: LocalStack) -> None:
    response = requests.post(f"{local_stack.api_url}/v1/polyv/messages", json=POLYV_SEND, timeout=10)

    assert response.status_code == 403
    assert response.json() == {
        "error": {"code": "invalid_api_key", "message": "A valid x-api-key header is required."},
        "request_id": response.headers["x-amzn-RequestId"],
    }


def test_a_send_with_a_wrong_api_key_is_refused(local_stack: LocalStack) -> None:
    response = requests.post(
        f"{local_stack.api_url}/v1/polyv/messages", json=POLYV_SEND, headers={"x-api-key": "nope"}, timeout=10
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_an_unknown_route_is_route_not_found(local_stack: LocalStack) -> None:
    response = requests.post(
        f"{local_stack.api_url}/v1/nowhere/messages", json={}, headers={"x-api-key": local_stack.api_key}, timeout=10
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "route_not_found"


def test_the_state_file_lets_other_commands_find_the_stack(local_stack: LocalStack) -> None:
    assert local_stack.state_dir is not None
    assert local_stack.sandbox is not None
    state = json.loads((local_stack.state_dir / STATE_FILE).read_text())

    _, environment = prepare("AliyunFunction", state)

    assert state["api_url"] == local_stack.api_url
    assert state["api_key"] == local_stack.api_key
    assert state["api_key_id"] == "local"
    assert state["api_keys"] == [{"id": "local", "value": local_stack.api_key}]
    assert {name: [f["pid"] for f in workers] for name, workers in state["functions"].items()} == {
        name: pool.pids for name, pool in local_stack.workers.items()
    }
    assert state["sandbox_url"] == local_stack.sandbox.url
    assert state["sandbox_control_url"] == local_stack.sandbox.control_url
    assert state["sandbox_provider_urls"] == local_stack.sandbox.provider_urls
    assert state["config_table"] == local_stack.resources["ConfigTable"].ref
    assert state["admin_api_key"] is None
    assert state["moto_url"] == local_stack.moto_url
    assert state["dynamodb_url"] == local_stack.dynamodb_url
    assert state["queues"] == local_stack.queues
    assert state["sqs_polling"] is True
    assert state["inbox_url"] == local_stack.inbox_url
    assert state["receipt_tokens"] == LOCAL_RECEIPT_TOKENS
    assert state["receipt_urls"] == local_stack.receipt_urls()
    assert state["webhook_secret"] == LOCAL_WEBHOOK_SECRET
    assert environment["PROVIDER_SECRET_ID"] == local_stack.resources["AliyunSecret"].ref
    assert environment["AWS_ENDPOINT_URL"] == local_stack.moto_url
    # What a handler run by `make invoke` gets, as the stack's workers do
    assert environment["WEBHOOK_ALLOW_LOOPBACK"] == "true"


# Each sending function's queue (each provider's and the unified route's), the receipts' and the webhooks'.
POLLED_QUEUES = ("PolyvQueue", "AliyunQueue", "RonglianQueue", "RouterQueue", "ReceiptsQueue", "WebhookQueue")


def test_every_queue_has_its_url_and_each_sending_functions_queue_is_polled_into_it(local_stack: LocalStack) -> None:
    sqs = aws("sqs", local_stack.moto_url)
    queues = local_stack.queues

    assert set(queues) == set(local_stack.template.of_type(QUEUE_TYPE))
    assert set(queues) >= {*POLLED_QUEUES, *(name.replace("Queue", "DeadLetterQueue") for name in POLLED_QUEUES)}
    for name in POLLED_QUEUES:
        attributes = sqs.get_queue_attributes(QueueUrl=queues[name], AttributeNames=["All"])["Attributes"]
        dead_letters = sqs.get_queue_attributes(
            QueueUrl=queues[name.replace("Queue", "DeadLetterQueue")], AttributeNames=["QueueArn"]
        )["Attributes"]
        assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"] == dead_letters["QueueArn"]
    assert {t.queue_id: t.function_id for t in local_stack.queue_triggers()} == {
        "PolyvQueue": "PolyvFunction",
        "AliyunQueue": "AliyunFunction",
        "RonglianQueue": "RonglianFunction",
        "RouterQueue": "RouterFunction",
        "ReceiptsQueue": "ReceiptsFunction",
        "WebhookQueue": "WebhookFunction",
    }
    assert set(local_stack.poller_stats()) == set(POLLED_QUEUES)


def test_drain_returns_once_the_polled_queues_are_empty(local_stack: LocalStack) -> None:
    sqs = aws("sqs", local_stack.moto_url)

    local_stack.drain(timeout=30)

    for name in POLLED_QUEUES:
        attributes = sqs.get_queue_attributes(QueueUrl=local_stack.queues[name], AttributeNames=["All"])["Attributes"]
        assert attributes["ApproximateNumberOfMessages"] == attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_secrets_manager_goes_down_and_comes_back_with_the_same_arns(local_stack: LocalStack) -> None:
    arn = local_stack.resources["PolyvSecret"].ref
    moto_pid = local_stack.pids()["moto"]
    worker_pids = {name: pool.pids for name, pool in local_stack.workers.items()}

    local_stack.stop_moto()
    try:
        assert gone(moto_pid)
        with pytest.raises(EndpointConnectionError):
            aws("secretsmanager", local_stack.moto_url).get_secret_value(SecretId=arn)
    finally:
        local_stack.start_moto()

    value = json.loads(aws("secretsmanager", local_stack.moto_url).get_secret_value(SecretId=arn)["SecretString"])
    assert value["app_id"] == DEFAULT_ACCOUNTS.polyv.app_id
    assert local_stack.resources["PolyvSecret"].ref == arn
    # Same ARNs: the functions kept running (and kept whatever they had cached).
    assert {name: pool.pids for name, pool in local_stack.workers.items()} == worker_pids


# What the next template version adds, provisioned in the running stack's engines.
NEXT_VERSION: dict[str, Any] = {
    "Resources": {
        "SmokeLedger": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                "AttributeDefinitions": [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                    {"AttributeName": "phone", "AttributeType": "S"},
                ],
                "GlobalSecondaryIndexes": [
                    {
                        "IndexName": "by-phone",
                        "KeySchema": [{"AttributeName": "phone", "KeyType": "HASH"}],
                        "Projection": {"ProjectionType": "KEYS_ONLY"},
                    }
                ],
                "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            },
        },
        "SmokeIdempotency": {"Type": "AWS::Serverless::SimpleTable"},
        "SmokeDeadLetters": {"Type": "AWS::SQS::Queue", "Properties": {"MessageRetentionPeriod": 1209600}},
        "SmokeQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "VisibilityTimeout": 180,
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": ["SmokeDeadLetters", "Arn"]},
                    "maxReceiveCount": 3,
                },
            },
        },
    }
}


@pytest.fixture
def next_version(local_stack: LocalStack) -> Iterator[dict[str, Physical]]:
    assert local_stack.sandbox is not None
    template = Template(NEXT_VERSION, ROOT)
    bootstrap = Bootstrap(
        template,
        moto_url=local_stack.moto_url,
        dynamodb_url=local_stack.dynamodb_url,
        sandbox_url=local_stack.sandbox.url,
    )
    provisioned = bootstrap.run()
    yield provisioned
    dynamodb, sqs = aws("dynamodb", local_stack.dynamodb_url), aws("sqs", local_stack.moto_url)
    for name in ("SmokeLedger", "SmokeIdempotency"):
        dynamodb.delete_table(TableName=provisioned[name].ref)
    for name in ("SmokeQueue", "SmokeDeadLetters"):
        sqs.delete_queue(QueueUrl=provisioned[name].ref)


def test_the_bootstrap_creates_tables_with_ttl_and_queues_with_their_dead_letter_queue(
    local_stack: LocalStack, next_version: dict[str, Physical]
) -> None:
    dynamodb, sqs = aws("dynamodb", local_stack.dynamodb_url), aws("sqs", local_stack.moto_url)

    ledger = dynamodb.describe_table(TableName="SmokeLedger")["Table"]
    ttl = dynamodb.describe_time_to_live(TableName="SmokeLedger")["TimeToLiveDescription"]
    simple = dynamodb.describe_table(TableName="SmokeIdempotency")["Table"]
    redrive = sqs.get_queue_attributes(QueueUrl=next_version["SmokeQueue"].ref, AttributeNames=["All"])["Attributes"]

    assert ledger["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert [k["AttributeName"] for k in ledger["KeySchema"]] == ["pk", "sk"]
    assert [i["IndexName"] for i in ledger["GlobalSecondaryIndexes"]] == ["by-phone"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    assert simple["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert next_version["SmokeLedger"].attributes["Arn"] == ledger["TableArn"]
    assert json.loads(redrive["RedrivePolicy"]) == {
        "deadLetterTargetArn": next_version["SmokeDeadLetters"].attributes["Arn"],
        "maxReceiveCount": 3,
    }
    assert redrive["VisibilityTimeout"] == "180"


def enqueue_command(log: str) -> str:
    """The banner's ready-to-paste command that sends a message to a local queue."""
    return next(line.strip() for line in log.splitlines() if "send_message(" in line)


def visible_messages(moto_url: str, queue_url: str) -> int:
    attributes = aws("sqs", moto_url).get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


@pytest.mark.parametrize(
    ("signum", "polling"), [(signal.SIGINT, True), (signal.SIGTERM, False)], ids=["ctrl-c", "sigterm-no-polling"]
)
def test_stopping_make_run_leaves_no_process_behind(tmp_path: Path, signum: signal.Signals, polling: bool) -> None:
    # Given `python -m local.stack` running on a free port, with two tenants' keys and an admin key
    output = (tmp_path / "output.log").open("wb")
    arguments = ["--port", str(free_port()), "--state-dir", str(tmp_path), "--function-concurrency", "1"]
    arguments += ["--api-key", "local-dev-key", "--api-key", "tenant-b=tenant-b-key"]
    arguments += ["--admin-api-key", "the-admin-key"]
    arguments += [] if polling else ["--no-sqs-polling"]
    stack = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "local.stack", *arguments],
        cwd=ROOT,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    try:
        state_file = tmp_path / STATE_FILE
        deadline = time.monotonic() + 60
        while not state_file.exists():
            assert stack.poll() is None, (tmp_path / "output.log").read_text()
            assert time.monotonic() < deadline, "the stack did not start within 60s"
            time.sleep(0.2)
        state = json.loads(state_file.read_text())
        children = state["processes"]
        functions = Template.load(ROOT / "template.yaml").functions()
        assert set(children) == {"dynamodb", "moto", *(f"{name}#1" for name in functions)}
        assert state["api_keys"] == [
            {"id": "local", "value": "local-dev-key"},
            {"id": "tenant-b", "value": "tenant-b-key"},
        ]
        assert state["admin_api_key"] == {"id": "local-admin", "value": "the-admin-key", "tenant": "local"}
        assert requests.get(state["api_url"] + "/nowhere", timeout=10).status_code == 404
        assert state["sqs_polling"] is polling
        # A second `make run` from the same folder is refused, naming this one, and leaves its state alone
        second = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "-m", "local.stack", "--port", str(free_port()), "--state-dir", str(tmp_path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 1
        assert f"(pid {stack.pid}, API on {state['api_url']})" in second.stderr
        assert json.loads(state_file.read_text()) == state
        # And the banner's command to enqueue a message works as pasted
        while "send_message(" not in (tmp_path / "output.log").read_text():
            assert time.monotonic() < deadline, "the stack printed no banner within 60s"
            time.sleep(0.2)
        banner = (tmp_path / "output.log").read_text()
        assert all(url in banner for url in state["queues"].values())
        sent = subprocess.run(  # noqa: S603 - the banner's own command
            ["/bin/sh", "-c", enqueue_command(banner)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert sent.returncode == 0, sent.stderr
        queue_url = state["queues"]["PolyvQueue"]
        assert f'QueueUrl="{queue_url}"' in enqueue_command(banner)
        if polling:
            # The poller takes it from the queue (whatever the function then makes of it)
            while visible_messages(state["moto_url"], queue_url) != 0:
                assert time.monotonic() < deadline + 30, "the poller did not receive the message"
                time.sleep(0.2)
        else:
            assert visible_messages(state["moto_url"], queue_url) == 1

        # When it is told to stop
        stack.send_signal(signum)
        returncode = stack.wait(timeout=30)
    finally:
        if stack.poll() is None:
            stack.kill()
        output.close()

    # Then it stops cleanly, with every child process, and says so
    log = (tmp_path / "output.log").read_text()
    assert returncode == 0, log
    assert "Stopped." in log
    assert [name for name, pid in children.items() if not gone(pid)] == []
    assert not state_file.exists()
