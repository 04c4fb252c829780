"""Least privilege, read from template.yaml itself: what each function may touch and how, and the
table and queue settings the functions rely on.

The expected grants are spelled out below on purpose: widening a policy (a new action, a `*`, another
function's secret or queue) fails here and names what was widened. The checker is tested too, on
copies of the template widened in memory, so that it cannot quietly stop seeing anything.

Queues feed the functions through explicit `AWS::Lambda::EventSourceMapping` resources: a function's
`Type: SQS` event would make SAM attach the AWS managed policy AWSLambdaSQSQueueExecutionRole
(receive and delete on every queue of the account), so such an event fails here. Each provider
function instead may consume its own queue, and only that one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from local.template import load_document, references

TEMPLATE = Path(__file__).parents[2] / "template.yaml"
PROVIDERS = ("Polyv", "Aliyun", "Ronglian")

QUOTA_ACTIONS = {"dynamodb:UpdateItem", "dynamodb:GetItem"}
IDEMPOTENCY_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
MESSAGE_LOG_WRITE_ACTIONS = {"dynamodb:PutItem", "dynamodb:GetItem"}
# SQSSendMessagePolicy grants `sqs:SendMessage*`, which matches exactly these two.
SEND_ACTIONS = {"sqs:SendMessage*", "sqs:SendMessage", "sqs:SendMessageBatch"}
# What Lambda's event source mapping needs from the function's role to poll a queue, and no more.
CONSUME_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}

# Function → resource logical id → the actions it may have on it. Anything else fails.
ALLOWED: dict[str, dict[str, set[str]]] = {
    **{
        f"{provider}Function": {
            f"{provider}Secret": {"secretsmanager:GetSecretValue"},
            f"{provider}DeadLetterQueue": SEND_ACTIONS,
            f"{provider}Queue": CONSUME_ACTIONS,
            "QuotaTable": QUOTA_ACTIONS,
            "IdempotencyTable": IDEMPOTENCY_ACTIONS,
            "MessageLogTable": MESSAGE_LOG_WRITE_ACTIONS,
        }
        for provider in PROVIDERS
    },
    "MessagesFunction": {"MessageLogTable": {"dynamodb:GetItem"}},
}
# Function → the queues its event source mappings may read.
QUEUES_READ: dict[str, set[str]] = {
    **{f"{provider}Function": {f"{provider}Queue"} for provider in PROVIDERS},
    "MessagesFunction": set(),
}

# The SAM policy templates this test understands: the parameter naming the resource, and the actions
# SAM writes for it (from samtranslator's policy_templates.json). An unknown template fails the test
# rather than pass unread.
POLICY_TEMPLATES: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "AWSSecretsManagerGetSecretValuePolicy": ("SecretArn", ("secretsmanager:GetSecretValue",)),
    "SQSSendMessagePolicy": ("QueueName", ("sqs:SendMessage*",)),
    "SQSPollerPolicy": (
        "QueueName",
        (
            "sqs:ChangeMessageVisibility",
            "sqs:ChangeMessageVisibilityBatch",
            "sqs:DeleteMessage",
            "sqs:DeleteMessageBatch",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
        ),
    ),
    "DynamoDBReadPolicy": (
        "TableName",
        (
            "dynamodb:GetItem",
            "dynamodb:Scan",
            "dynamodb:Query",
            "dynamodb:BatchGetItem",
            "dynamodb:DescribeTable",
        ),
    ),
    "DynamoDBWritePolicy": ("TableName", ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem")),
    "DynamoDBCrudPolicy": (
        "TableName",
        (
            "dynamodb:GetItem",
            "dynamodb:DeleteItem",
            "dynamodb:PutItem",
            "dynamodb:Scan",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:BatchGetItem",
            "dynamodb:DescribeTable",
            "dynamodb:ConditionCheckItem",
        ),
    ),
}
# Ways to grant a function's role something besides its Policies.
GRANTING_TYPES = {
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::RolePolicy",
    "AWS::Serverless::Connector",
}
# Event types whose permissions this test reads; any other would grant access it does not check.
CHECKED_EVENT_TYPES = {"Api"}
FUNCTION_TYPE = "AWS::Serverless::Function"
MAPPING_TYPE = "AWS::Lambda::EventSourceMapping"
DEFAULT_LAMBDA_TIMEOUT = 3
DEFAULT_VISIBILITY_TIMEOUT = 30


# ---------------------------------------------------------------------------------------------
# Reading grants out of the template
# ---------------------------------------------------------------------------------------------


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _resources_named(document: Mapping[str, Any], expression: Any, where: str) -> tuple[set[str], list[str]]:
    """The template resources an ARN or name expression points at, and what is wrong with it."""
    problems = []
    if any("*" in text for text in _strings(expression)):
        problems.append(f"{where}: wildcard resource {expression!r}")
    named: set[str] = set()
    for item in _as_list(expression):
        if isinstance(item, str):
            if "*" not in item:
                problems.append(f"{where}: {item!r} names no resource of this template")
            continue
        found = {name for name in references(item) if not name.startswith("AWS::")}
        if not found:
            problems.append(f"{where}: {item!r} names no resource of this template")
        for name in sorted(found - set(document["Resources"])):
            problems.append(f"{where}: {item!r} depends on {name}, which is not a resource of this template")
        named |= found & set(document["Resources"])
    return named, problems


def grants(document: Mapping[str, Any], function_id: str) -> tuple[dict[str, set[str]], list[str]]:
    """What a function's Policies allow, as resource logical id → actions, and the problems found."""
    properties = document["Resources"][function_id].get("Properties") or {}
    granted: dict[str, set[str]] = {}
    problems: list[str] = []

    def allow(resources: set[str], actions: list[Any], where: str) -> None:
        for action in actions:
            if not isinstance(action, str):
                problems.append(f"{where}: action {action!r} is not a plain action name")
                continue
            for resource in resources:
                granted.setdefault(resource, set()).add(action)

    for index, policy in enumerate(_as_list(properties.get("Policies") or [])):
        where = f"{function_id}.Policies[{index}]"
        if isinstance(policy, str):
            problems.append(f"{where}: managed policy {policy!r} is not scoped to this template's resources")
            continue
        if not isinstance(policy, dict):
            problems.append(f"{where}: {policy!r} is neither a policy template nor a policy document")
            continue
        if "Statement" in policy:
            for number, statement in enumerate(_as_list(policy["Statement"])):
                here = f"{where}.Statement[{number}]"
                if statement.get("Effect") == "Deny":
                    continue  # only ever narrows
                for widening in ("NotAction", "NotResource"):
                    if widening in statement:
                        problems.append(f"{here}: {widening} grants everything it does not name")
                if "Resource" not in statement:
                    problems.append(f"{here}: names no Resource")
                    continue
                resources, found = _resources_named(document, statement["Resource"], here)
                problems += found
                allow(resources, _as_list(statement.get("Action") or []), here)
            continue
        for name, parameters in policy.items():
            here = f"{where}.{name}"
            if name not in POLICY_TEMPLATES:
                problems.append(f"{here}: unknown policy template; teach POLICY_TEMPLATES what it grants")
                continue
            parameter, actions = POLICY_TEMPLATES[name]
            if not isinstance(parameters, dict) or parameter not in parameters:
                problems.append(f"{here}: {parameter} is missing")
                continue
            resources, found = _resources_named(document, parameters[parameter], here)
            problems += found
            allow(resources, list(actions), here)
    return granted, problems


def mappings(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in document["Resources"].items() if r.get("Type") == MAPPING_TYPE}


def queues_read(document: Mapping[str, Any], function_id: str) -> tuple[set[str], list[str]]:
    """The queues the event source mappings feeding a function read, and the problems found."""
    properties = document["Resources"][function_id].get("Properties") or {}
    read: set[str] = set()
    problems = []
    for event_id, event in (properties.get("Events") or {}).items():
        kind = event.get("Type")
        where = f"{function_id}.Events.{event_id}"
        if kind == "SQS":
            problems.append(
                f"{where}: an SQS event attaches the managed AWSLambdaSQSQueueExecutionRole (every queue);"
                " use an AWS::Lambda::EventSourceMapping"
            )
        elif kind not in CHECKED_EVENT_TYPES:
            problems.append(f"{where}: a {kind} event grants access this test does not check")
    for mapping_id, mapping in mappings(document).items():
        mapping_properties = mapping.get("Properties") or {}
        if function_id not in references(mapping_properties.get("FunctionName")):
            continue
        queues, found = _resources_named(document, mapping_properties.get("EventSourceArn"), mapping_id)
        read |= queues
        problems += found
    return read, problems


def function_violations(document: Mapping[str, Any], function_id: str) -> list[str]:
    """Everything a function is granted beyond ALLOWED and QUEUES_READ (and grants it lost)."""
    if function_id not in ALLOWED:
        return [f"{function_id}: a function this test does not know; add its grants to ALLOWED and QUEUES_READ"]
    properties = document["Resources"][function_id].get("Properties") or {}
    problems = []
    if "Role" in properties:
        problems.append(f"{function_id}: Role replaces the Policies this test reads")
    granted, found = grants(document, function_id)
    problems += found
    allowed = ALLOWED[function_id]
    for resource, actions in sorted(granted.items()):
        if resource not in allowed:
            problems.append(f"{function_id}: {sorted(actions)} on {resource}, which it must not touch")
            continue
        permitted = {a.lower() for a in allowed[resource]}
        extra = sorted(a for a in actions if a.lower() not in permitted)
        if extra:
            problems.append(f"{function_id}: {extra} on {resource}; allowed only {sorted(allowed[resource])}")
    # A stale ALLOWED would let a grant move unnoticed: every allowed resource must be in use.
    for resource in sorted(set(allowed) - set(granted)):
        problems.append(f"{function_id}: nothing granted on {resource}; update ALLOWED if that is intended")
    read, found = queues_read(document, function_id)
    problems += found
    if read != QUEUES_READ[function_id]:
        problems.append(
            f"{function_id}: its queue mappings read {sorted(read)}, expected {sorted(QUEUES_READ[function_id])}"
        )
    return problems


def template_violations(document: Mapping[str, Any]) -> list[str]:
    """Grants that would bypass the functions' Policies."""
    problems = []
    function_globals = (document.get("Globals") or {}).get("Function") or {}
    for key in ("Policies", "Role"):
        if key in function_globals:
            problems.append(f"Globals.Function.{key} grants every function the same")
    for name, resource in document["Resources"].items():
        if resource.get("Type") in GRANTING_TYPES:
            problems.append(f"{name}: a {resource['Type']} grants outside the functions' Policies")
    known = set(document["Resources"])
    functions = {name for name, r in document["Resources"].items() if r.get("Type") == FUNCTION_TYPE}
    for name, mapping in mappings(document).items():
        targets = references((mapping.get("Properties") or {}).get("FunctionName")) & functions
        if len(targets) != 1:
            problems.append(f"{name}: feeds no single function of this template, so no test reads its grants")
    problems += [f"{name}: expected in the template" for name in sorted(set(ALLOWED) - known)]
    return problems


# ---------------------------------------------------------------------------------------------
# The template as it is
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return load_document(TEMPLATE)


def _of_type(document: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in document["Resources"].items() if r.get("Type") == kind}


def test_the_functions_are_the_ones_this_test_knows(document: dict[str, Any]) -> None:
    assert set(_of_type(document, FUNCTION_TYPE)) == set(ALLOWED)


@pytest.mark.parametrize("function_id", sorted(ALLOWED))
def test_each_function_is_granted_only_what_it_needs(document: dict[str, Any], function_id: str) -> None:
    problems = function_violations(document, function_id)

    assert not problems, "\n".join(problems)


def test_nothing_grants_around_the_functions_policies(document: dict[str, Any]) -> None:
    problems = template_violations(document)

    assert not problems, "\n".join(problems)


def test_every_table_is_on_demand_and_expires_its_items(document: dict[str, Any]) -> None:
    tables = _of_type(document, "AWS::DynamoDB::Table")

    assert set(tables) == {"QuotaTable", "IdempotencyTable", "MessageLogTable"}
    for name, table in tables.items():
        properties = table["Properties"]
        assert properties.get("BillingMode") == "PAY_PER_REQUEST", name
        ttl = properties.get("TimeToLiveSpecification") or {}
        assert ttl.get("Enabled") is True, name
        assert ttl.get("AttributeName"), name


def test_the_message_log_can_be_restored_to_a_point_in_time(document: dict[str, Any]) -> None:
    properties = document["Resources"]["MessageLogTable"]["Properties"]

    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def _number(document: Mapping[str, Any], value: Any) -> int:
    """A literal, or a parameter's default (what a deploy without overrides gets)."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return int(document["Parameters"][value["Ref"]]["Default"])
    return int(value)


def _dead_letter_target(queue: Mapping[str, Any]) -> str | None:
    target = ((queue.get("Properties") or {}).get("RedrivePolicy") or {}).get("deadLetterTargetArn")
    if isinstance(target, dict) and "Fn::GetAtt" in target:
        logical_id, attribute = target["Fn::GetAtt"]
        return str(logical_id) if attribute == "Arn" else None
    return None


def test_every_queue_redrives_to_a_dead_letter_queue_that_outlives_it(document: dict[str, Any]) -> None:
    queues = _of_type(document, "AWS::SQS::Queue")
    targets = {name: _dead_letter_target(queue) for name, queue in queues.items()}
    dead_letter_queues = {target for target in targets.values() if target}

    assert dead_letter_queues == {f"{provider}DeadLetterQueue" for provider in PROVIDERS}
    for name, target in targets.items():
        if name in dead_letter_queues:
            continue
        assert target in queues, f"{name} has no redrive policy to a queue of this template"
        policy = queues[name]["Properties"]["RedrivePolicy"]
        assert _number(document, policy["maxReceiveCount"]) >= 1
        # A message keeps its original enqueue time in the dead-letter queue; a shorter retention there
        # would drop it before anyone looked.
        retention = _number(document, queues[name]["Properties"].get("MessageRetentionPeriod", 345600))
        assert _number(document, queues[target]["Properties"]["MessageRetentionPeriod"]) > retention, name


def test_every_consumed_queue_hides_a_message_for_six_function_timeouts(document: dict[str, Any]) -> None:
    global_timeout = ((document.get("Globals") or {}).get("Function") or {}).get("Timeout", DEFAULT_LAMBDA_TIMEOUT)
    consumed = set()
    for mapping_id, mapping in mappings(document).items():
        (function_id,) = references(mapping["Properties"]["FunctionName"])
        (queue_id,) = references(mapping["Properties"]["EventSourceArn"])
        properties = document["Resources"][function_id].get("Properties") or {}
        timeout = _number(document, properties.get("Timeout", global_timeout))
        queue = document["Resources"][queue_id]["Properties"]
        visibility = _number(document, queue.get("VisibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT))
        # AWS's advice for Lambda: retries of a batch must not find its messages visible again.
        assert visibility >= 6 * timeout, f"{queue_id}: {visibility} s < 6 * {function_id}'s {timeout} s"
        consumed.add((function_id, queue_id, mapping_id))

    assert consumed == {(f"{p}Function", f"{p}Queue", f"{p}QueueMapping") for p in PROVIDERS}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_queue_mapping_reports_failed_records_and_bounds_its_pollers(
    document: dict[str, Any], provider: str
) -> None:
    properties = document["Resources"][f"{provider}QueueMapping"]["Properties"]

    # Without ReportBatchItemFailures, one failed number would resend the whole batch.
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["ScalingConfig"]["MaximumConcurrency"] == {"Ref": f"{provider}QueueMaxConcurrency"}
    assert properties["BatchSize"] == {"Ref": "QueueBatchSize"}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_provider_function_may_consume_its_own_queue_and_no_other(document: dict[str, Any], provider: str) -> None:
    granted, problems = grants(document, f"{provider}Function")

    assert not problems
    assert granted[f"{provider}Queue"] == CONSUME_ACTIONS
    queues = {name for name, r in document["Resources"].items() if r.get("Type") == "AWS::SQS::Queue"}
    assert {q for q in granted if q in queues} == {f"{provider}Queue", f"{provider}DeadLetterQueue"}


# ---------------------------------------------------------------------------------------------
# The checker sees a widened policy
# ---------------------------------------------------------------------------------------------


def _function(document: dict[str, Any], function_id: str) -> dict[str, Any]:
    properties: dict[str, Any] = document["Resources"][function_id]["Properties"]
    return properties


def _statements(document: dict[str, Any], function_id: str) -> list[dict[str, Any]]:
    policies = _function(document, function_id)["Policies"]
    return next(p["Statement"] for p in policies if isinstance(p, dict) and "Statement" in p)


def _any_resource(document: dict[str, Any]) -> None:
    _statements(document, "PolyvFunction")[0]["Resource"] = "*"


def _scan_the_quota_table(document: dict[str, Any]) -> None:
    _statements(document, "PolyvFunction")[0]["Action"].append("dynamodb:Scan")


def _every_dynamodb_action(document: dict[str, Any]) -> None:
    _statements(document, "RonglianFunction")[1]["Action"] = "dynamodb:*"


def _another_providers_secret(document: dict[str, Any]) -> None:
    _function(document, "PolyvFunction")["Policies"].append(
        {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": {"Ref": "AliyunSecret"}}}
    )


def _another_providers_dead_letter_queue(document: dict[str, Any]) -> None:
    _function(document, "AliyunFunction")["Policies"].append(
        {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["PolyvDeadLetterQueue", "QueueName"]}}}
    )


def _messages_reads_a_secret(document: dict[str, Any]) -> None:
    _function(document, "MessagesFunction")["Policies"].append(
        {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": {"Ref": "PolyvSecret"}}}
    )


def _messages_writes_the_log(document: dict[str, Any]) -> None:
    _statements(document, "MessagesFunction")[0]["Action"].append("dynamodb:PutItem")


def _messages_consumes_a_queue(document: dict[str, Any]) -> None:
    document["Resources"]["MessagesQueueMapping"] = {
        "Type": MAPPING_TYPE,
        "Properties": {
            "FunctionName": {"Ref": "MessagesFunction"},
            "EventSourceArn": {"Fn::GetAtt": ["PolyvQueue", "Arn"]},
        },
    }


def _reads_another_providers_queue(document: dict[str, Any]) -> None:
    document["Resources"]["RonglianQueueMapping"]["Properties"]["EventSourceArn"] = {
        "Fn::GetAtt": ["AliyunQueue", "Arn"]
    }


def _an_sqs_event(document: dict[str, Any]) -> None:
    event = {"Type": "SQS", "Properties": {"Queue": {"Fn::GetAtt": ["PolyvQueue", "Arn"]}}}
    _function(document, "PolyvFunction")["Events"]["Queue"] = event


def _consumes_another_providers_queue(document: dict[str, Any]) -> None:
    _function(document, "PolyvFunction")["Policies"].append(
        {
            "Statement": [
                {"Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": {"Fn::GetAtt": ["AliyunQueue", "Arn"]}}
            ]
        }
    )


def _poller_policy_template(document: dict[str, Any]) -> None:
    _function(document, "AliyunFunction")["Policies"].append(
        {"SQSPollerPolicy": {"QueueName": {"Fn::GetAtt": ["AliyunQueue", "QueueName"]}}}
    )


def _crud_policy_template(document: dict[str, Any]) -> None:
    _function(document, "PolyvFunction")["Policies"].append(
        {"DynamoDBCrudPolicy": {"TableName": {"Ref": "QuotaTable"}}}
    )


def _table_indexes_by_wildcard(document: dict[str, Any]) -> None:
    _statements(document, "PolyvFunction")[0]["Resource"] = {"Fn::Sub": "${QuotaTable.Arn}/index/*"}


def _an_arn_from_elsewhere(document: dict[str, Any]) -> None:
    _statements(document, "AliyunFunction")[2]["Resource"] = "arn:aws:dynamodb:us-east-1:123456789012:table/other"


def _managed_policy(document: dict[str, Any]) -> None:
    _function(document, "MessagesFunction")["Policies"].append("AmazonDynamoDBFullAccess")


def _unknown_policy_template(document: dict[str, Any]) -> None:
    _function(document, "PolyvFunction")["Policies"].append({"S3FullAccessPolicy": {"BucketName": "x"}})


def _not_resource(document: dict[str, Any]) -> None:
    statement = _statements(document, "PolyvFunction")[0]
    statement["NotResource"] = statement.pop("Resource")


def _own_role(document: dict[str, Any]) -> None:
    _function(document, "PolyvFunction")["Role"] = "arn:aws:iam::123456789012:role/admin"


WIDENINGS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "Resource: *": (_any_resource, "PolyvFunction.Policies[1].Statement[0]: wildcard resource '*'"),
    "an extra action": (_scan_the_quota_table, "['dynamodb:Scan'] on QuotaTable"),
    "an action wildcard": (_every_dynamodb_action, "['dynamodb:*'] on IdempotencyTable"),
    "another provider's secret": (
        _another_providers_secret,
        "PolyvFunction: ['secretsmanager:GetSecretValue'] on AliyunSecret",
    ),
    "another provider's DLQ": (
        _another_providers_dead_letter_queue,
        "AliyunFunction: ['sqs:SendMessage*'] on PolyvDeadLetterQueue",
    ),
    "a secret for the reader": (
        _messages_reads_a_secret,
        "MessagesFunction: ['secretsmanager:GetSecretValue'] on PolyvSecret",
    ),
    "writes for the reader": (_messages_writes_the_log, "MessagesFunction: ['dynamodb:PutItem'] on MessageLogTable"),
    "a queue for the reader": (_messages_consumes_a_queue, "MessagesFunction: its queue mappings read ['PolyvQueue']"),
    "another provider's queue": (
        _reads_another_providers_queue,
        "RonglianFunction: its queue mappings read ['AliyunQueue']",
    ),
    "an SQS event": (_an_sqs_event, "PolyvFunction.Events.Queue: an SQS event attaches the managed"),
    "receive from another provider's queue": (
        _consumes_another_providers_queue,
        "PolyvFunction: ['sqs:ReceiveMessage'] on AliyunQueue, which it must not touch",
    ),
    "batch actions on its queue": (_poller_policy_template, "'sqs:ChangeMessageVisibilityBatch'"),
    "a broad policy template": (_crud_policy_template, "'dynamodb:Scan'"),
    "a wildcard inside an ARN": (_table_indexes_by_wildcard, "wildcard resource"),
    "an ARN from elsewhere": (_an_arn_from_elsewhere, "names no resource of this template"),
    "a managed policy": (_managed_policy, "managed policy 'AmazonDynamoDBFullAccess'"),
    "an unknown policy template": (_unknown_policy_template, "S3FullAccessPolicy: unknown policy template"),
    "NotResource": (_not_resource, "NotResource grants everything it does not name"),
    "a role of its own": (_own_role, "PolyvFunction: Role replaces the Policies"),
}


@pytest.mark.parametrize("widening", sorted(WIDENINGS))
def test_a_widened_policy_is_reported(document: dict[str, Any], widening: str) -> None:
    widen, expected = WIDENINGS[widening]
    widened = copy.deepcopy(document)
    widen(widened)

    reported = [problem for function_id in ALLOWED for problem in function_violations(widened, function_id)]

    assert any(expected in problem for problem in reported), reported


@pytest.mark.parametrize(
    ("kind", "name"),
    [("AWS::IAM::Policy", "ExtraPolicy"), ("AWS::Serverless::Connector", "PolyvToEverything")],
)
def test_a_grant_beside_the_policies_is_reported(document: dict[str, Any], kind: str, name: str) -> None:
    widened = copy.deepcopy(document)
    widened["Resources"][name] = {"Type": kind, "Properties": {}}

    assert template_violations(widened) == [f"{name}: a {kind} grants outside the functions' Policies"]


def test_a_policy_for_every_function_is_reported(document: dict[str, Any]) -> None:
    widened = copy.deepcopy(document)
    widened["Globals"]["Function"]["Policies"] = ["AdministratorAccess"]

    assert template_violations(widened) == ["Globals.Function.Policies grants every function the same"]


def test_a_mapping_feeding_a_function_from_elsewhere_is_reported(document: dict[str, Any]) -> None:
    widened = copy.deepcopy(document)
    widened["Resources"]["ForeignMapping"] = {
        "Type": MAPPING_TYPE,
        "Properties": {"FunctionName": "some-other-function", "EventSourceArn": {"Fn::GetAtt": ["PolyvQueue", "Arn"]}},
    }

    assert template_violations(widened) == [
        "ForeignMapping: feeds no single function of this template, so no test reads its grants"
    ]
