"""The local stack's reading of the real template.yaml: functions, routes and their API keys,
environments with intrinsics resolved, and the gateway responses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from local.template import Physical, Template, TemplateError

ROOT = Path(__file__).parents[2]
TEMPLATE = ROOT / "template.yaml"
SECRET_ARNS = {
    "PolyvSecret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:PolyvSecret-AbCdEf",
    "AliyunSecret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:AliyunSecret-GhIjKl",
    "RonglianSecret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:RonglianSecret-MnOpQr",
    "ReceiptTokenSecret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:ReceiptTokenSecret-StUvWx",
    "RonglianReceiptToken": "arn:aws:secretsmanager:us-east-1:123456789012:secret:RonglianReceiptToken-YzAbCd",
    "WebhookSecret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:WebhookSecret-EfGhIj",
}
TABLES = {
    "QuotaTable": "quota-local",
    "IdempotencyTable": "idempotency-local",
    "MessageLogTable": "messages-local",
    "ConfigTable": "config-local",
}
QUEUES = {
    f"{sender}{kind}": f"http://127.0.0.1:4566/123456789012/{sender}{kind}"
    for sender in ("Polyv", "Aliyun", "Ronglian", "Router", "Receipts", "Webhook")
    for kind in ("Queue", "DeadLetterQueue")
}
PROVISIONED = (
    {name: Physical(ref=arn) for name, arn in SECRET_ARNS.items()}
    | {name: Physical(ref=table) for name, table in TABLES.items()}
    | {
        name: Physical(
            ref=url,
            attributes={"Arn": f"arn:aws:sqs:us-east-1:123456789012:{name}", "QueueName": name},
        )
        for name, url in QUEUES.items()
    }
)


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.load(TEMPLATE)


def test_every_function_runs_its_code_with_the_shared_layer(template: Template) -> None:
    functions = template.functions()

    assert set(functions) == {
        "PolyvFunction",
        "AliyunFunction",
        "RonglianFunction",
        "RouterFunction",
        "MessagesFunction",
        "ReceiptsFunction",
        "WebhookFunction",
        "ReconcileFunction",
    }
    for folder, spec in [
        ("polyv", functions["PolyvFunction"]),
        ("ronglian", functions["RonglianFunction"]),
        ("router", functions["RouterFunction"]),
        ("receipts", functions["ReceiptsFunction"]),
        ("webhooks", functions["WebhookFunction"]),
    ]:
        assert spec.code_uri == ROOT / "functions" / folder
        assert spec.handler == "app.handler"
        assert spec.layers == (ROOT / "layers" / "shared",)
        # From Globals.Function
        assert spec.runtime == "python3.13"
        assert spec.timeout == 29
        assert spec.memory_size == 512


def test_routes_and_which_need_an_api_key(template: Template) -> None:
    routes = {(r.method, r.path): (r.function_id, r.api_key_required) for r in template.api_routes()}

    assert routes == {
        ("POST", "/v1/polyv/messages"): ("PolyvFunction", True),
        ("GET", "/v1/polyv/docs"): ("PolyvFunction", False),
        ("POST", "/v1/aliyun/messages"): ("AliyunFunction", True),
        ("POST", "/v1/aliyun/batch-messages"): ("AliyunFunction", True),
        ("GET", "/v1/aliyun/docs"): ("AliyunFunction", False),
        ("POST", "/v1/ronglian/messages"): ("RonglianFunction", True),
        ("GET", "/v1/ronglian/docs"): ("RonglianFunction", False),
        ("POST", "/v1/messages"): ("RouterFunction", True),
        ("PUT", "/v1/templates/{name}"): ("RouterFunction", True),
        ("GET", "/v1/templates/{name}"): ("RouterFunction", True),
        ("DELETE", "/v1/templates/{name}"): ("RouterFunction", True),
        ("PUT", "/v1/rules"): ("RouterFunction", True),
        ("GET", "/v1/rules"): ("RouterFunction", True),
        ("PUT", "/v1/opt-outs/{phone}"): ("RouterFunction", True),
        ("GET", "/v1/opt-outs/{phone}"): ("RouterFunction", True),
        ("DELETE", "/v1/opt-outs/{phone}"): ("RouterFunction", True),
        ("GET", "/v1/router/docs"): ("RouterFunction", False),
        ("GET", "/v1/messages/{requestId}"): ("MessagesFunction", True),
        ("POST", "/v1/messages/{requestId}/feedback"): ("MessagesFunction", True),
        ("GET", "/v1/messages/docs"): ("MessagesFunction", False),
        # The providers cannot send an API key: a token in the path instead.
        ("GET", "/v1/receipts/aliyun/{token}"): ("ReceiptsFunction", False),
        ("POST", "/v1/receipts/aliyun/{token}"): ("ReceiptsFunction", False),
        ("POST", "/v1/receipts/ronglian/{token}"): ("ReceiptsFunction", False),
    }
    assert {r.api_id for r in template.api_routes()} == {"GatewayApi"}


def test_the_api_stage_and_default_key_requirement(template: Template) -> None:
    api = template.apis()["GatewayApi"]

    assert api.stage_name == "prod"
    assert api.api_key_required is True


# Every function's, from Globals.Function.
GLOBAL_VARIABLES = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_LOG_LEVEL",
    "POWERTOOLS_METRICS_NAMESPACE",
    "PROVIDER_CONNECT_TIMEOUT",
    "PROVIDER_READ_TIMEOUT",
    "PROVIDER_MAX_CONCURRENCY",
    "SECRET_MAX_AGE_SECONDS",
    "SEND_BUDGET_SECONDS",
    "REQUEST_BUDGET_SECONDS",
    "QUOTA_TABLE_NAME",
    "QUOTA_TIMEZONE",
    "IDEMPOTENCY_TABLE_NAME",
    "IDEMPOTENCY_EXPIRY_SECONDS",
    "MESSAGE_LOG_TABLE_NAME",
    "MESSAGE_RETENTION_DAYS",
    "WEBHOOK_QUEUE_URL",
    "CONFIG_TABLE_NAME",
    "DEFAULT_ALLOWED_COUNTRIES",
}
DEFAULT_QUOTAS = (
    "phone_per_minute=1,phone_per_hour=5,phone_per_day=10,account_per_day=2000,ip_per_day=2000,"
    "block_per_hour=20,country_per_hour=0"
)


def test_environment_resolves_parameters_globals_and_the_secrets_arn(template: Template) -> None:
    environment = template.environment("RonglianFunction", PROVISIONED)

    assert environment == {
        "POWERTOOLS_SERVICE_NAME": "sms-gateway",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "POWERTOOLS_METRICS_NAMESPACE": "SmsGateway",
        "PROVIDER_CONNECT_TIMEOUT": "3",
        "PROVIDER_READ_TIMEOUT": "10",
        "PROVIDER_MAX_CONCURRENCY": "32",
        "SECRET_MAX_AGE_SECONDS": "300",
        "SEND_BUDGET_SECONDS": "8",
        "REQUEST_BUDGET_SECONDS": "25",
        "QUOTA_TABLE_NAME": "quota-local",
        "QUOTA_TIMEZONE": "Asia/Shanghai",
        "IDEMPOTENCY_TABLE_NAME": "idempotency-local",
        "IDEMPOTENCY_EXPIRY_SECONDS": "86400",
        "MESSAGE_LOG_TABLE_NAME": "messages-local",
        "MESSAGE_RETENTION_DAYS": "30",
        "WEBHOOK_QUEUE_URL": QUEUES["WebhookQueue"],
        "CONFIG_TABLE_NAME": "config-local",
        "DEFAULT_ALLOWED_COUNTRIES": "CN",
        "PROVIDER": "ronglian",
        "PROVIDER_SECRET_ID": SECRET_ARNS["RonglianSecret"],
        "QUOTA_LIMITS": DEFAULT_QUOTAS,
        "DEAD_LETTER_QUEUE_URL": QUEUES["RonglianDeadLetterQueue"],
        "RONGLIAN_CHUNK_SIZE": "100",
    }


def test_the_unified_route_reads_every_providers_secret_and_the_configuration_table(template: Template) -> None:
    environment = template.environment("RouterFunction", PROVISIONED)

    assert {name: value for name, value in environment.items() if name not in GLOBAL_VARIABLES} == {
        "POLYV_SECRET_ID": SECRET_ARNS["PolyvSecret"],
        "ALIYUN_SECRET_ID": SECRET_ARNS["AliyunSecret"],
        "RONGLIAN_SECRET_ID": SECRET_ARNS["RonglianSecret"],
        "CIRCUIT_FAILURE_THRESHOLD": "5",
        "CIRCUIT_COOLDOWN_SECONDS": "30",
        "QUOTA_LIMITS": DEFAULT_QUOTAS,
        "DEAD_LETTER_QUEUE_URL": QUEUES["RouterDeadLetterQueue"],
        "RONGLIAN_CHUNK_SIZE": "100",
    }
    # One function for every provider: none of a provider function's variables
    assert "PROVIDER" not in environment
    assert "PROVIDER_SECRET_ID" not in environment


@pytest.mark.parametrize(
    ("function_id", "own"),
    [
        (
            "ReceiptsFunction",
            {
                "RECEIPT_TOKEN_SECRET_ID": SECRET_ARNS["ReceiptTokenSecret"],
                "RECEIPTS_QUEUE_URL": QUEUES["ReceiptsQueue"],
            },
        ),
        (
            "WebhookFunction",
            {
                "WEBHOOK_SECRET_ID": SECRET_ARNS["WebhookSecret"],
                "WEBHOOK_DEAD_LETTER_QUEUE_URL": QUEUES["WebhookDeadLetterQueue"],
            },
        ),
        ("ReconcileFunction", {"ALIYUN_SECRET_ID": SECRET_ARNS["AliyunSecret"]}),
    ],
)
def test_the_delivery_functions_read_their_own_secret_and_queues(
    template: Template, function_id: str, own: dict[str, str]
) -> None:
    environment = template.environment(function_id, PROVISIONED)

    assert {name: value for name, value in environment.items() if name not in GLOBAL_VARIABLES} == own
    # Where every status change's webhook events go: the webhook function's own queue.
    assert environment["WEBHOOK_QUEUE_URL"] == QUEUES["WebhookQueue"]


def test_reconciliation_runs_on_its_schedule_for_up_to_four_minutes(template: Template) -> None:
    properties = template.function_properties("ReconcileFunction")
    resolver = template.resolver(PROVISIONED)

    assert resolver.resolve(properties["Events"]["Schedule"]["Properties"]["Schedule"]) == "rate(5 minutes)"
    assert template.functions()["ReconcileFunction"].timeout == 240


def test_the_default_countries_reach_every_function_as_one_list() -> None:
    template = Template.load(TEMPLATE, {"DefaultAllowedCountries": "CN,HK"})

    for function_id in ("AliyunFunction", "RouterFunction", "ReceiptsFunction"):
        assert template.environment(function_id, PROVISIONED)["DEFAULT_ALLOWED_COUNTRIES"] == "CN,HK"
    # One conversion-rate alarm per default country
    assert {"CNConversionRateAlarm", "HKConversionRateAlarm"} <= set(template.resources)


def test_the_router_parameters_reach_its_environment() -> None:
    overrides = {"CircuitFailureThreshold": "3", "CircuitCooldownSeconds": "2", "RouterQuotaLimits": "phone_per_day=3"}
    environment = Template.load(TEMPLATE, overrides).environment("RouterFunction", PROVISIONED)

    assert (environment["CIRCUIT_FAILURE_THRESHOLD"], environment["CIRCUIT_COOLDOWN_SECONDS"]) == ("3", "2")
    assert environment["QUOTA_LIMITS"] == "phone_per_day=3"


@pytest.mark.parametrize(
    ("function_id", "provider", "secret"),
    [("PolyvFunction", "polyv", "PolyvSecret"), ("AliyunFunction", "aliyun", "AliyunSecret")],
)
def test_each_function_reads_only_its_own_secret(
    template: Template, function_id: str, provider: str, secret: str
) -> None:
    environment = template.environment(function_id, PROVISIONED)

    assert environment["PROVIDER"] == provider
    assert environment["PROVIDER_SECRET_ID"] == SECRET_ARNS[secret]


def test_parameter_overrides_replace_defaults() -> None:
    template = Template.load(TEMPLATE, {"LogLevel": "DEBUG", "RonglianChunkSize": "200"})

    environment = template.environment("RonglianFunction", PROVISIONED)

    assert environment["POWERTOOLS_LOG_LEVEL"] == "DEBUG"
    assert environment["RONGLIAN_CHUNK_SIZE"] == "200"


def test_an_unknown_parameter_override_is_refused() -> None:
    with pytest.raises(TemplateError, match="NoSuchParameter"):
        Template.load(TEMPLATE, {"NoSuchParameter": "x"})


def test_a_secret_the_stack_did_not_provision_cannot_be_resolved(template: Template) -> None:
    without_secrets = {name: physical for name, physical in PROVISIONED.items() if name not in SECRET_ARNS}
    with pytest.raises(TemplateError, match="PolyvSecret"):
        template.environment("PolyvFunction", without_secrets)


@pytest.mark.parametrize(
    ("response_type", "status", "code"),
    [
        ("INVALID_API_KEY", 403, "invalid_api_key"),
        ("MISSING_AUTHENTICATION_TOKEN", 404, "route_not_found"),
        ("THROTTLED", 429, "throttled"),
        ("QUOTA_EXCEEDED", 429, "api_quota_exceeded"),
    ],
)
def test_gateway_responses_render_in_the_gateways_error_shape(
    template: Template, response_type: str, status: int, code: str
) -> None:
    response, _ = template.apis()["GatewayApi"].gateway_response(response_type)

    body = json.loads(response.render({"requestId": "req-1"}))

    assert response.status_code == status
    assert body["error"]["code"] == code
    assert body["request_id"] == "req-1"


def test_a_response_type_the_template_leaves_alone_is_api_gateways_own(template: Template) -> None:
    response, message = template.apis()["GatewayApi"].gateway_response("DEFAULT_5XX")

    body = json.loads(response.render({"error.messageString": json.dumps(message)}))

    assert response.status_code == 502
    assert body == {"message": "Internal server error"}


def test_secrets_name_their_provider_in_a_tag(template: Template) -> None:
    secrets = template.of_type("AWS::SecretsManager::Secret")

    assert {name: template.secret_provider(name) for name in secrets} == {
        "PolyvSecret": "polyv",
        "AliyunSecret": "aliyun",
        "RonglianSecret": "ronglian",
        "ReceiptTokenSecret": None,
        "RonglianReceiptToken": None,
        "WebhookSecret": None,
    }


def test_the_api_url_output_resolves_with_pseudo_parameters(template: Template) -> None:
    url = template.resolver(PROVISIONED).resolve(template.document["Outputs"]["ApiUrl"]["Value"])

    assert url == "https://local.execute-api.us-east-1.amazonaws.com/prod"


# What the next template versions add: tables, queues with a DLQ, SQS triggers, conditions.
NEXT_VERSION: dict[str, Any] = {
    "Parameters": {"Env": {"Type": "String", "Default": "dev"}, "BatchSize": {"Type": "Number", "Default": 5}},
    "Conditions": {"IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]}},
    "Resources": {
        "Table": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            },
        },
        "DeadLetters": {"Type": "AWS::SQS::Queue"},
        "Queue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetters", "Arn"]}, "maxReceiveCount": 3}
            },
        },
        "Worker": {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "CodeUri": "functions/polyv/",
                "Handler": "app.handler",
                "Environment": {
                    "Variables": {
                        "TABLE": {"Ref": "Table"},
                        "TABLE_ARN": {"Fn::GetAtt": ["Table", "Arn"]},
                        "QUEUE_URL": {"Ref": "Queue"},
                        "LEVEL": {"Fn::If": ["IsProd", "WARNING", "DEBUG"]},
                        "DASHBOARD": {"Fn::Sub": "https://${AWS::Region}.console.aws.${AWS::URLSuffix}/${Table}"},
                        "OPTIONAL": {"Fn::If": ["IsProd", "x", {"Ref": "AWS::NoValue"}]},
                    }
                },
                "Events": {
                    "FromQueue": {
                        "Type": "SQS",
                        "Properties": {
                            "Queue": {"Fn::GetAtt": ["Queue", "Arn"]},
                            "BatchSize": {"Ref": "BatchSize"},
                            "FunctionResponseTypes": ["ReportBatchItemFailures"],
                            "ScalingConfig": {"MaximumConcurrency": 2},
                        },
                    }
                },
            },
        },
    },
}


def test_tables_queues_and_sqs_triggers_resolve() -> None:
    template = Template(NEXT_VERSION, ROOT)
    provisioned = {
        "Table": Physical("Table", {"Arn": "arn:aws:dynamodb:ddblocal:000000000000:table/Table"}),
        "DeadLetters": Physical("http://q/DeadLetters", {"Arn": "arn:aws:sqs:us-east-1:123456789012:DeadLetters"}),
        "Queue": Physical("http://q/Queue", {"Arn": "arn:aws:sqs:us-east-1:123456789012:Queue"}),
    }

    environment = template.environment("Worker", provisioned)
    (source,) = template.sqs_event_sources()

    assert environment == {
        "TABLE": "Table",
        "TABLE_ARN": "arn:aws:dynamodb:ddblocal:000000000000:table/Table",
        "QUEUE_URL": "http://q/Queue",
        "LEVEL": "DEBUG",
        "DASHBOARD": "https://us-east-1.console.aws.amazonaws.com/Table",
    }
    assert template.creation_order(["Queue", "DeadLetters", "Table"]) == ["DeadLetters", "Queue", "Table"]
    assert source.function_id == "Worker"
    assert source.queue_id == "Queue"
    assert source.batch_size == 5
    assert source.reports_batch_item_failures
    assert source.maximum_concurrency == 2
    assert template.resolver(provisioned).resolve(source.queue) == "arn:aws:sqs:us-east-1:123456789012:Queue"


def test_the_queue_mappings_feed_each_function_from_its_own_queue(template: Template) -> None:
    sources = {s.function_id: s for s in template.sqs_event_sources()}
    resolver = template.resolver(PROVISIONED)

    assert set(sources) == {
        "PolyvFunction",
        "AliyunFunction",
        "RonglianFunction",
        "RouterFunction",
        "ReceiptsFunction",
        "WebhookFunction",
    }
    for function_id, source in sources.items():
        sender = function_id.removesuffix("Function")
        assert source.event_id == f"{sender}QueueMapping"
        assert source.queue_id == f"{sender}Queue"
        assert resolver.resolve(source.queue) == f"arn:aws:sqs:us-east-1:123456789012:{sender}Queue"
        assert source.reports_batch_item_failures
        # The parameters' defaults
        assert source.batch_size == 10
        assert source.maximum_concurrency == 5
        assert source.enabled


def test_an_event_source_mapping_resource_is_a_trigger_like_an_sqs_event() -> None:
    document = json.loads(json.dumps(NEXT_VERSION))
    worker = document["Resources"]["Worker"]["Properties"]
    event = worker.pop("Events")["FromQueue"]["Properties"]
    document["Resources"]["WorkerMapping"] = {
        "Type": "AWS::Lambda::EventSourceMapping",
        "Properties": {
            "FunctionName": {"Ref": "Worker"},
            "EventSourceArn": event["Queue"],
            "BatchSize": event["BatchSize"],
            "FunctionResponseTypes": event["FunctionResponseTypes"],
            "ScalingConfig": event["ScalingConfig"],
            "MaximumBatchingWindowInSeconds": 2,
        },
    }
    # A mapping from outside the template's queues (a stream, say) is not an SQS trigger
    document["Resources"]["StreamMapping"] = {
        "Type": "AWS::Lambda::EventSourceMapping",
        "Properties": {
            "FunctionName": {"Fn::GetAtt": ["Worker", "Arn"]},
            "EventSourceArn": "arn:aws:kinesis:us-east-1:123456789012:stream/elsewhere",
        },
    }

    (source,) = Template(document, ROOT).sqs_event_sources()

    assert (source.function_id, source.event_id, source.queue_id) == ("Worker", "WorkerMapping", "Queue")
    assert source.batch_size == 5
    assert source.maximum_batching_window_seconds == 2
    assert source.maximum_concurrency == 2
    assert source.reports_batch_item_failures
