"""Least privilege, read from template.yaml itself: what each function may touch and how, and the
table and queue settings the functions rely on. The template is read as CloudFormation deploys it,
its loops expanded (local.language_extensions), so a grant written once in a loop is judged for
every function it reaches. The unified route's function has a role of its own: every provider's
secret and the configuration table, but no provider's queue or log group. So do the functions of
delivery tracking: the receipt routes and their consumer (the receipt tokens, the receipts queue,
a number's status written once), the webhook sender (the signing secrets, its queue and dead-letter
queue) and reconciliation (Aliyun's secret, the message log's `open` index and no other).

The expected grants are spelled out below on purpose: widening a policy (a new action, a `*`, another
function's secret or queue) fails here and names what was widened. The checker is tested too, on
copies of the template widened in memory, so that it cannot quietly stop seeing anything.

Each function runs with a role of its own, declared in the template: a role SAM generates carries the
AWS managed AWSLambdaBasicExecutionRole (logs on every log group of the account), and a function's
`Type: SQS` event would add AWSLambdaSQSQueueExecutionRole (every queue). Queues feed the functions
through explicit `AWS::Lambda::EventSourceMapping` resources instead, and each role names its own
log group and queue. The one `Resource: "*"` left is X-Ray's, which has no resource-level permissions.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from local.template import expand, load_document, parameter_values, read_document, references

TEMPLATE = Path(__file__).parents[2] / "template.yaml"
PROVIDERS = ("Polyv", "Aliyun", "Ronglian")
# The functions that send: each provider's and the unified route's.
SENDERS = (*PROVIDERS, "Router")
# The functions a queue feeds: the senders, the receipts consumer and the webhook sender.
CONSUMERS = (*SENDERS, "Receipts", "Webhook")

# TransactWriteItems is authorised per action inside it (UpdateItem); BatchGetItem is its own action.
QUOTA_ACTIONS = {"dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:BatchGetItem"}
IDEMPOTENCY_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
# The record (in the idempotency record's transaction, or alone), and the receipt index of its
# accepted numbers: in that transaction while it fits, else in batches.
MESSAGE_LOG_WRITE_ACTIONS = {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:BatchWriteItem"}
SEND_ACTIONS = {"sqs:SendMessage"}
# Lambda writes the function's logs with its role; the stack creates the log group.
LOG_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}
# Actions of a service without resource-level permissions: the only ones allowed on "*".
UNSCOPED_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
# What Lambda's event source mapping needs from the function's role to poll a queue, and no more.
CONSUME_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
# Templates (a query for the newest version, a conditional put of the next), admin keys and tenant
# rules (reads; rules put by the admin routes), circuits (reads and conditional updates), opt-outs
# (a ConditionCheck in each number's quota transaction; put, read, and deleted when a number is
# opted back in). No scan: a deleted template is a version too.
CONFIG_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:ConditionCheckItem",
}
# A provider function's: the tenant's rules (a cached read) and its opt-outs (a ConditionCheck).
RULES_ACTIONS = {"dynamodb:GetItem", "dynamodb:ConditionCheckItem"}
# A sending function's `message.accepted` events, the receipts' and reconciliation's status changes.
WEBHOOK_EVENT_ACTIONS = SEND_ACTIONS

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
            "ConfigTable": RULES_ACTIONS,
            "WebhookQueue": WEBHOOK_EVENT_ACTIONS,
            f"{provider}LogGroup": LOG_ACTIONS,
            "*": UNSCOPED_ACTIONS,
        }
        for provider in PROVIDERS
    },
    "RouterFunction": {
        **{f"{provider}Secret": {"secretsmanager:GetSecretValue"} for provider in PROVIDERS},
        "RouterDeadLetterQueue": SEND_ACTIONS,
        "RouterQueue": CONSUME_ACTIONS,
        "QuotaTable": QUOTA_ACTIONS,
        "IdempotencyTable": IDEMPOTENCY_ACTIONS,
        "MessageLogTable": MESSAGE_LOG_WRITE_ACTIONS,
        "ConfigTable": CONFIG_ACTIONS,
        "WebhookQueue": WEBHOOK_EVENT_ACTIONS,
        "RouterLogGroup": LOG_ACTIONS,
        "*": UNSCOPED_ACTIONS,
    },
    # Records and delivery statuses read; a number's conversion feedback put once.
    "MessagesFunction": {
        "MessageLogTable": {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem"},
        "MessagesLogGroup": LOG_ACTIONS,
        "*": UNSCOPED_ACTIONS,
    },
    # The routes check the token and queue what they took; the consumer reads the receipt index,
    # writes each number's final status once (a conditional put), reads the tenant's rules, opts
    # out a number whose receipt says the user refused, and queues the status changes' webhooks.
    "ReceiptsFunction": {
        "ReceiptTokenSecret": {"secretsmanager:GetSecretValue"},
        "ReceiptsQueue": SEND_ACTIONS | CONSUME_ACTIONS,
        "MessageLogTable": {"dynamodb:GetItem", "dynamodb:PutItem"},
        "ConfigTable": {"dynamodb:GetItem", "dynamodb:PutItem"},
        "WebhookQueue": WEBHOOK_EVENT_ACTIONS,
        "ReceiptsLogGroup": LOG_ACTIONS,
        "*": UNSCOPED_ACTIONS,
    },
    # Each tenant's signing secret; its queue consumed and fed again with delayed retries; the
    # events it gives up on to its dead-letter queue.
    "WebhookFunction": {
        "WebhookSecret": {"secretsmanager:GetSecretValue"},
        "WebhookQueue": SEND_ACTIONS | CONSUME_ACTIONS,
        "WebhookDeadLetterQueue": SEND_ACTIONS,
        "WebhookLogGroup": LOG_ACTIONS,
        "*": UNSCOPED_ACTIONS,
    },
    # Aliyun's secret (QuerySendDetails); the open calls from the `open` index alone, their numbers'
    # statuses read and settled once, a settled call taken out of the index (UpdateItem).
    "ReconcileFunction": {
        "AliyunSecret": {"secretsmanager:GetSecretValue"},
        "MessageLogTable/index/open": {"dynamodb:Query"},
        "MessageLogTable": {"dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"},
        "WebhookQueue": WEBHOOK_EVENT_ACTIONS,
        "ReconcileLogGroup": LOG_ACTIONS,
        "*": UNSCOPED_ACTIONS,
    },
}
# Function → the queues its event source mappings may read.
QUEUES_READ: dict[str, set[str]] = {
    **{f"{consumer}Function": {f"{consumer}Queue"} for consumer in CONSUMERS},
    "MessagesFunction": set(),
    "ReconcileFunction": set(),
}

# Ways to grant a role something besides its own Policies.
GRANTING_TYPES = {
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::RolePolicy",
    "AWS::Serverless::Connector",
}
# Event types whose permissions this test reads; any other would grant access it does not check.
# A schedule lets EventBridge invoke the function and grants its role nothing.
CHECKED_EVENT_TYPES = {"Api", "Schedule"}
FUNCTION_TYPE = "AWS::Serverless::Function"
MAPPING_TYPE = "AWS::Lambda::EventSourceMapping"
ROLE_TYPE = "AWS::IAM::Role"
LAMBDA_PRINCIPAL = {"Service": "lambda.amazonaws.com"}
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


_INDEX = re.compile(r"\$\{(\w+)\.Arn\}/index/([A-Za-z0-9_.-]+)")


def _index_of(document: Mapping[str, Any], expression: Any) -> str | None:
    """`Table/index/name` for `!Sub "${Table.Arn}/index/name"`: one index of a table of this
    template, which a grant on it reaches and no other."""
    text = expression.get("Fn::Sub") if isinstance(expression, dict) and len(expression) == 1 else None
    found = _INDEX.fullmatch(text) if isinstance(text, str) else None
    if found is None or (document["Resources"].get(found[1]) or {}).get("Type") != "AWS::DynamoDB::Table":
        return None
    return f"{found[1]}/index/{found[2]}"


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
        index = _index_of(document, item)
        if index is not None:
            named.add(index)
            continue
        found = {name for name in references(item) if not name.startswith("AWS::")}
        if not found:
            problems.append(f"{where}: {item!r} names no resource of this template")
        for name in sorted(found - set(document["Resources"])):
            problems.append(f"{where}: {item!r} depends on {name}, which is not a resource of this template")
        named |= found & set(document["Resources"])
    return named, problems


def role_of(document: Mapping[str, Any], function_id: str) -> tuple[str | None, list[str]]:
    """The logical id of the template role a function runs with, and what is wrong with it."""
    properties = document["Resources"][function_id].get("Properties") or {}
    if "Role" not in properties:
        return None, [
            f"{function_id}: no Role, so SAM generates one with the managed AWSLambdaBasicExecutionRole"
            " (logs on every log group)"
        ]
    role = properties["Role"]
    target = role.get("Fn::GetAtt") if isinstance(role, dict) else None
    if isinstance(target, str):
        target = target.split(".", 1)
    if not (isinstance(target, list) and target[1:] == ["Arn"] and target[0] in document["Resources"]):
        return None, [f"{function_id}: Role {role!r} is not a role of this template"]
    if document["Resources"][target[0]].get("Type") != ROLE_TYPE:
        return None, [f"{function_id}: Role names {target[0]}, which is not an {ROLE_TYPE}"]
    return str(target[0]), []


def _role_problems(role_id: str, role: Mapping[str, Any]) -> list[str]:
    """Grants a role carries besides its own statements: managed policies, principals but Lambda."""
    problems = [
        f"{role_id}: managed policy {arn!r} is not scoped to this template's resources"
        for arn in _as_list(role.get("ManagedPolicyArns") or [])
    ]
    for statement in _as_list((role.get("AssumeRolePolicyDocument") or {}).get("Statement") or []):
        if statement.get("Effect") == "Allow" and statement.get("Principal") != LAMBDA_PRINCIPAL:
            problems.append(f"{role_id}: may be assumed by {statement.get('Principal')!r}, not only by Lambda")
    return problems


def _statement_grants(
    document: Mapping[str, Any], statement: Mapping[str, Any], where: str
) -> tuple[dict[str, set[str]], list[str]]:
    """What one Allow statement grants, as resource logical id ("*" for any) → actions."""
    problems = [
        f"{where}: {widening} grants everything it does not name"
        for widening in ("NotAction", "NotResource")
        if widening in statement
    ]
    if "Resource" not in statement:
        return {}, [*problems, f"{where}: names no Resource"]
    if statement["Resource"] in ("*", ["*"]):
        resources = {"*"}  # judged by its actions: UNSCOPED_ACTIONS only
    else:
        resources, found = _resources_named(document, statement["Resource"], where)
        problems += found
    actions: set[str] = set()
    for action in _as_list(statement.get("Action") or []):
        if isinstance(action, str):
            actions.add(action)
        else:
            problems.append(f"{where}: action {action!r} is not a plain action name")
    return {resource: set(actions) for resource in resources}, problems


def grants(document: Mapping[str, Any], function_id: str) -> tuple[dict[str, set[str]], list[str]]:
    """What a function's role allows, as resource logical id ("*" for any) → actions, and the problems."""
    properties = document["Resources"][function_id].get("Properties") or {}
    granted: dict[str, set[str]] = {}
    problems: list[str] = []
    if "Policies" in properties:
        problems.append(f"{function_id}.Policies: SAM policies beside the function's own role")
    role_id, problems_of_role = role_of(document, function_id)
    problems += problems_of_role
    if role_id is None:
        return granted, problems
    role = document["Resources"][role_id].get("Properties") or {}
    problems += _role_problems(role_id, role)
    for index, policy in enumerate(_as_list(role.get("Policies") or [])):
        for number, statement in enumerate(_as_list((policy.get("PolicyDocument") or {}).get("Statement") or [])):
            if statement.get("Effect") == "Deny":
                continue  # only ever narrows
            found, found_problems = _statement_grants(
                document, statement, f"{role_id}.Policies[{index}].Statement[{number}]"
            )
            problems += found_problems
            for resource, actions in found.items():
                granted.setdefault(resource, set()).update(actions)
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
    problems = []
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
            problems.append(f"{name}: a {resource['Type']} grants outside the functions' roles")
    known = set(document["Resources"])
    functions = {name for name, r in document["Resources"].items() if r.get("Type") == FUNCTION_TYPE}
    users: dict[str, list[str]] = {}
    for function_id in sorted(functions):
        role_id, _ = role_of(document, function_id)
        if role_id is not None:
            users.setdefault(role_id, []).append(function_id)
    for name, resource in document["Resources"].items():
        if resource.get("Type") == ROLE_TYPE and len(users.get(name, [])) != 1:
            problems.append(f"{name}: a role must belong to exactly one function, not {users.get(name, [])}")
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


# Tables whose items expire by themselves; the configuration table's (templates, admin keys,
# circuits) are kept until someone deletes them.
EXPIRING_TABLES = {"QuotaTable", "IdempotencyTable", "MessageLogTable"}


def test_every_table_is_on_demand_and_expires_its_items_but_the_configurations(document: dict[str, Any]) -> None:
    tables = _of_type(document, "AWS::DynamoDB::Table")

    assert set(tables) == {*EXPIRING_TABLES, "ConfigTable"}
    for name, table in tables.items():
        properties = table["Properties"]
        assert properties.get("BillingMode") == "PAY_PER_REQUEST", name
        assert properties.get("SSESpecification") == {"SSEEnabled": True}, name
        ttl = properties.get("TimeToLiveSpecification") or {}
        assert ttl.get("Enabled") is (True if name in EXPIRING_TABLES else None), name
        assert bool(ttl.get("AttributeName")) is (name in EXPIRING_TABLES), name


@pytest.mark.parametrize("table", ["MessageLogTable", "ConfigTable"])
def test_the_tables_worth_keeping_can_be_restored_to_a_point_in_time(document: dict[str, Any], table: str) -> None:
    properties = document["Resources"][table]["Properties"]

    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_the_configuration_table_is_keyed_by_partition_and_sort_key(document: dict[str, Any]) -> None:
    properties = document["Resources"]["ConfigTable"]["Properties"]

    assert properties["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert {d["AttributeName"]: d["AttributeType"] for d in properties["AttributeDefinitions"]} == {
        "pk": "S",
        "sk": "S",
    }


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

    assert dead_letter_queues == {f"{consumer}DeadLetterQueue" for consumer in CONSUMERS}
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

    assert consumed == {(f"{c}Function", f"{c}Queue", f"{c}QueueMapping") for c in CONSUMERS}


@pytest.mark.parametrize("consumer", CONSUMERS)
def test_each_queue_mapping_reports_failed_records_and_bounds_its_pollers(
    document: dict[str, Any], consumer: str
) -> None:
    properties = document["Resources"][f"{consumer}QueueMapping"]["Properties"]

    # Without ReportBatchItemFailures, one failed number would resend the whole batch.
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["ScalingConfig"]["MaximumConcurrency"] == {"Ref": f"{consumer}QueueMaxConcurrency"}
    assert properties["BatchSize"] == {"Ref": "QueueBatchSize"}


@pytest.mark.parametrize("sender", SENDERS)
def test_each_sending_function_may_consume_its_own_queue_and_no_other(document: dict[str, Any], sender: str) -> None:
    granted, problems = grants(document, f"{sender}Function")

    assert not problems
    assert granted[f"{sender}Queue"] == CONSUME_ACTIONS
    queues = {name for name, r in document["Resources"].items() if r.get("Type") == "AWS::SQS::Queue"}
    # Besides its own: the webhook queue, its `message.accepted` events.
    assert {q for q in granted if q in queues} == {f"{sender}Queue", f"{sender}DeadLetterQueue", "WebhookQueue"}
    assert granted["WebhookQueue"] == SEND_ACTIONS


def test_the_unified_route_reads_every_providers_secret_and_each_provider_only_its_own(
    document: dict[str, Any],
) -> None:
    secrets = {name for name, r in document["Resources"].items() if r.get("Type") == "AWS::SecretsManager::Secret"}
    readers = {
        function_id: {name for name in grants(document, function_id)[0] if name in secrets} for function_id in ALLOWED
    }

    provider_secrets = {f"{provider}Secret" for provider in PROVIDERS}
    assert readers == {
        **{f"{provider}Function": {f"{provider}Secret"} for provider in PROVIDERS},
        "RouterFunction": provider_secrets,
        "MessagesFunction": set(),
        "ReceiptsFunction": {"ReceiptTokenSecret"},
        "WebhookFunction": {"WebhookSecret"},
        "ReconcileFunction": {"AliyunSecret"},
    }
    # The Ronglian token's origin only: ReceiptTokenSecret holds the token the routes check.
    assert "RonglianReceiptToken" in secrets - set().union(*readers.values())


def test_reconciliation_queries_the_open_index_and_nothing_else_of_the_table(document: dict[str, Any]) -> None:
    granted, problems = grants(document, "ReconcileFunction")
    index = document["Resources"]["MessageLogTable"]["Properties"]["GlobalSecondaryIndexes"]

    assert not problems
    assert granted["MessageLogTable/index/open"] == {"dynamodb:Query"}
    assert "dynamodb:Query" not in granted["MessageLogTable"]
    assert [i["IndexName"] for i in index] == ["open"]
    assert index[0]["KeySchema"] == [
        {"AttributeName": "open_day", "KeyType": "HASH"},
        {"AttributeName": "accepted_at", "KeyType": "RANGE"},
    ]


# ---------------------------------------------------------------------------------------------
# The checker sees a widened policy
# ---------------------------------------------------------------------------------------------


def _function(document: dict[str, Any], function_id: str) -> dict[str, Any]:
    properties: dict[str, Any] = document["Resources"][function_id]["Properties"]
    return properties


def _role(document: dict[str, Any], function_id: str) -> dict[str, Any]:
    role_id = _function(document, function_id)["Role"]["Fn::GetAtt"][0]
    properties: dict[str, Any] = document["Resources"][role_id]["Properties"]
    return properties


def _statement(document: dict[str, Any], function_id: str, sid: str) -> dict[str, Any]:
    statements = _role(document, function_id)["Policies"][0]["PolicyDocument"]["Statement"]
    found: dict[str, Any] = next(s for s in statements if s.get("Sid") == sid)
    return found


def _grant(document: dict[str, Any], function_id: str, action: Any, resource: Any) -> None:
    statements = _role(document, function_id)["Policies"][0]["PolicyDocument"]["Statement"]
    statements.append({"Effect": "Allow", "Action": action, "Resource": resource})


def _any_resource(document: dict[str, Any]) -> None:
    _statement(document, "PolyvFunction", "QuotaCounters")["Resource"] = "*"


def _scan_the_quota_table(document: dict[str, Any]) -> None:
    _statement(document, "PolyvFunction", "QuotaCounters")["Action"].append("dynamodb:Scan")


def _every_dynamodb_action(document: dict[str, Any]) -> None:
    _statement(document, "RonglianFunction", "IdempotencyRecords")["Action"] = "dynamodb:*"


def _another_providers_secret(document: dict[str, Any]) -> None:
    _grant(document, "PolyvFunction", "secretsmanager:GetSecretValue", {"Ref": "AliyunSecret"})


def _another_providers_dead_letter_queue(document: dict[str, Any]) -> None:
    _grant(document, "AliyunFunction", "sqs:SendMessage", {"Fn::GetAtt": ["PolyvDeadLetterQueue", "Arn"]})


def _messages_reads_a_secret(document: dict[str, Any]) -> None:
    _grant(document, "MessagesFunction", "secretsmanager:GetSecretValue", {"Ref": "PolyvSecret"})


def _messages_updates_the_log(document: dict[str, Any]) -> None:
    _statement(document, "MessagesFunction", "MessageLog")["Action"].append("dynamodb:UpdateItem")


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
    _grant(document, "PolyvFunction", "sqs:ReceiveMessage", {"Fn::GetAtt": ["AliyunQueue", "Arn"]})


def _batch_actions_on_its_queue(document: dict[str, Any]) -> None:
    _statement(document, "AliyunFunction", "QueueConsumer")["Action"].append("sqs:DeleteMessageBatch")


def _logs_anywhere(document: dict[str, Any]) -> None:
    _statement(document, "RonglianFunction", "OwnLogGroup")["Resource"] = "*"


def _another_functions_log_group(document: dict[str, Any]) -> None:
    _statement(document, "MessagesFunction", "OwnLogGroup")["Resource"] = {"Fn::GetAtt": ["PolyvLogGroup", "Arn"]}


def _table_indexes_by_wildcard(document: dict[str, Any]) -> None:
    _statement(document, "PolyvFunction", "QuotaCounters")["Resource"] = {"Fn::Sub": "${QuotaTable.Arn}/index/*"}


def _an_arn_from_elsewhere(document: dict[str, Any]) -> None:
    _statement(document, "AliyunFunction", "MessageLogWrite")["Resource"] = (
        "arn:aws:dynamodb:us-east-1:123456789012:table/other"
    )


def _managed_policy(document: dict[str, Any]) -> None:
    _role(document, "MessagesFunction")["ManagedPolicyArns"] = ["arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess"]


def _sam_policies(document: dict[str, Any]) -> None:
    _function(document, "PolyvFunction")["Policies"] = [{"DynamoDBCrudPolicy": {"TableName": {"Ref": "QuotaTable"}}}]


def _not_resource(document: dict[str, Any]) -> None:
    statement = _statement(document, "PolyvFunction", "QuotaCounters")
    statement["NotResource"] = statement.pop("Resource")


def _a_role_from_elsewhere(document: dict[str, Any]) -> None:
    _function(document, "PolyvFunction")["Role"] = "arn:aws:iam::123456789012:role/admin"


def _the_role_sam_would_generate(document: dict[str, Any]) -> None:
    del _function(document, "MessagesFunction")["Role"]


def _assumed_by_anyone(document: dict[str, Any]) -> None:
    statement = _role(document, "AliyunFunction")["AssumeRolePolicyDocument"]["Statement"][0]
    statement["Principal"] = {"AWS": "*"}


def _router_scans_the_configuration(document: dict[str, Any]) -> None:
    _statement(document, "RouterFunction", "Configuration")["Action"].append("dynamodb:Scan")


def _router_writes_configuration_in_batches(document: dict[str, Any]) -> None:
    _statement(document, "RouterFunction", "Configuration")["Action"].append("dynamodb:BatchWriteItem")


def _a_provider_writes_the_configuration(document: dict[str, Any]) -> None:
    _grant(document, "AliyunFunction", "dynamodb:PutItem", {"Fn::GetAtt": ["ConfigTable", "Arn"]})


def _router_secrets_by_wildcard(document: dict[str, Any]) -> None:
    _statement(document, "RouterFunction", "ProviderSecrets")["Resource"] = {
        "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*"
    }


def _router_consumes_a_providers_queue(document: dict[str, Any]) -> None:
    document["Resources"]["RouterQueueMapping"]["Properties"]["EventSourceArn"] = {"Fn::GetAtt": ["PolyvQueue", "Arn"]}


def _router_sends_to_a_providers_dead_letter_queue(document: dict[str, Any]) -> None:
    _grant(document, "RouterFunction", "sqs:SendMessage", {"Fn::GetAtt": ["RonglianDeadLetterQueue", "Arn"]})


def _router_logs_in_a_providers_log_group(document: dict[str, Any]) -> None:
    _statement(document, "RouterFunction", "OwnLogGroup")["Resource"] = {"Fn::GetAtt": ["AliyunLogGroup", "Arn"]}


def _router_role_with_a_managed_policy(document: dict[str, Any]) -> None:
    _role(document, "RouterFunction")["ManagedPolicyArns"] = ["arn:aws:iam::aws:policy/SecretsManagerReadWrite"]


def _receipts_read_the_signing_secrets(document: dict[str, Any]) -> None:
    _grant(document, "ReceiptsFunction", "secretsmanager:GetSecretValue", {"Ref": "WebhookSecret"})


def _receipts_update_a_final_status(document: dict[str, Any]) -> None:
    _statement(document, "ReceiptsFunction", "DeliveryStatus")["Action"].append("dynamodb:UpdateItem")


def _reconciliation_queries_the_table(document: dict[str, Any]) -> None:
    _statement(document, "ReconcileFunction", "OpenCalls")["Resource"] = {"Fn::GetAtt": ["MessageLogTable", "Arn"]}


def _reconciliation_queries_every_index(document: dict[str, Any]) -> None:
    _statement(document, "ReconcileFunction", "OpenCalls")["Resource"] = {"Fn::Sub": "${MessageLogTable.Arn}/index/*"}


def _reconciliation_reads_the_receipt_tokens(document: dict[str, Any]) -> None:
    _grant(document, "ReconcileFunction", "secretsmanager:GetSecretValue", {"Ref": "ReceiptTokenSecret"})


def _webhooks_feed_the_receipts_queue(document: dict[str, Any]) -> None:
    _grant(document, "WebhookFunction", "sqs:SendMessage", {"Fn::GetAtt": ["ReceiptsQueue", "Arn"]})


def _webhooks_consume_their_dead_letters(document: dict[str, Any]) -> None:
    _statement(document, "WebhookFunction", "DeadLetters")["Action"] = ["sqs:SendMessage", "sqs:ReceiveMessage"]


WIDENINGS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "the receipts read the signing secrets": (
        _receipts_read_the_signing_secrets,
        "ReceiptsFunction: ['secretsmanager:GetSecretValue'] on WebhookSecret, which it must not touch",
    ),
    "the receipts update a final status": (
        _receipts_update_a_final_status,
        "ReceiptsFunction: ['dynamodb:UpdateItem'] on MessageLogTable; allowed only",
    ),
    "reconciliation queries the table": (
        _reconciliation_queries_the_table,
        "ReconcileFunction: ['dynamodb:Query'] on MessageLogTable; allowed only",
    ),
    "reconciliation queries every index": (_reconciliation_queries_every_index, "wildcard resource"),
    "reconciliation reads the receipt tokens": (
        _reconciliation_reads_the_receipt_tokens,
        "ReconcileFunction: ['secretsmanager:GetSecretValue'] on ReceiptTokenSecret, which it must not touch",
    ),
    "the webhooks feed the receipts queue": (
        _webhooks_feed_the_receipts_queue,
        "WebhookFunction: ['sqs:SendMessage'] on ReceiptsQueue, which it must not touch",
    ),
    "the webhooks consume their dead letters": (
        _webhooks_consume_their_dead_letters,
        "WebhookFunction: ['sqs:ReceiveMessage'] on WebhookDeadLetterQueue; allowed only",
    ),
    "Resource: *": (
        _any_resource,
        "PolyvFunction: ['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:UpdateItem'] on *",
    ),
    "an extra action": (_scan_the_quota_table, "['dynamodb:Scan'] on QuotaTable"),
    "an action wildcard": (_every_dynamodb_action, "['dynamodb:*'] on IdempotencyTable"),
    "another provider's secret": (
        _another_providers_secret,
        "PolyvFunction: ['secretsmanager:GetSecretValue'] on AliyunSecret",
    ),
    "another provider's DLQ": (
        _another_providers_dead_letter_queue,
        "AliyunFunction: ['sqs:SendMessage'] on PolyvDeadLetterQueue",
    ),
    "a secret for the reader": (
        _messages_reads_a_secret,
        "MessagesFunction: ['secretsmanager:GetSecretValue'] on PolyvSecret",
    ),
    "updates for the reader": (
        _messages_updates_the_log,
        "MessagesFunction: ['dynamodb:UpdateItem'] on MessageLogTable",
    ),
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
    "batch actions on its queue": (_batch_actions_on_its_queue, "['sqs:DeleteMessageBatch'] on AliyunQueue"),
    "logs anywhere": (_logs_anywhere, "RonglianFunction: ['logs:CreateLogStream', 'logs:PutLogEvents'] on *"),
    "another function's log group": (
        _another_functions_log_group,
        "MessagesFunction: ['logs:CreateLogStream', 'logs:PutLogEvents'] on PolyvLogGroup",
    ),
    "a wildcard inside an ARN": (_table_indexes_by_wildcard, "wildcard resource"),
    "an ARN from elsewhere": (_an_arn_from_elsewhere, "names no resource of this template"),
    "a managed policy": (_managed_policy, "managed policy 'arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess'"),
    "SAM policies": (_sam_policies, "PolyvFunction.Policies: SAM policies beside the function's own role"),
    "NotResource": (_not_resource, "NotResource grants everything it does not name"),
    "a role from elsewhere": (_a_role_from_elsewhere, "PolyvFunction: Role 'arn:aws:iam::123456789012:role/admin'"),
    "the role SAM would generate": (_the_role_sam_would_generate, "MessagesFunction: no Role, so SAM generates"),
    "a role anyone may assume": (_assumed_by_anyone, "AliyunFunctionRole: may be assumed by {'AWS': '*'}"),
    "the router scans its configuration": (_router_scans_the_configuration, "['dynamodb:Scan'] on ConfigTable"),
    "the router writes configuration in batches": (
        _router_writes_configuration_in_batches,
        "['dynamodb:BatchWriteItem'] on ConfigTable",
    ),
    "a provider writes the configuration": (
        _a_provider_writes_the_configuration,
        "AliyunFunction: ['dynamodb:PutItem'] on ConfigTable; allowed only",
    ),
    "the router's secrets by wildcard": (_router_secrets_by_wildcard, "wildcard resource"),
    "the router consumes a provider's queue": (
        _router_consumes_a_providers_queue,
        "RouterFunction: its queue mappings read ['PolyvQueue']",
    ),
    "the router sends to a provider's DLQ": (
        _router_sends_to_a_providers_dead_letter_queue,
        "RouterFunction: ['sqs:SendMessage'] on RonglianDeadLetterQueue, which it must not touch",
    ),
    "the router logs in a provider's log group": (
        _router_logs_in_a_providers_log_group,
        "RouterFunction: ['logs:CreateLogStream', 'logs:PutLogEvents'] on AliyunLogGroup",
    ),
    "a managed policy on the router's role": (
        _router_role_with_a_managed_policy,
        "RouterFunctionRole: managed policy 'arn:aws:iam::aws:policy/SecretsManagerReadWrite'",
    ),
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
def test_a_grant_beside_the_roles_is_reported(document: dict[str, Any], kind: str, name: str) -> None:
    widened = copy.deepcopy(document)
    widened["Resources"][name] = {"Type": kind, "Properties": {}}

    assert template_violations(widened) == [f"{name}: a {kind} grants outside the functions' roles"]


def test_a_role_shared_by_two_functions_is_reported(document: dict[str, Any]) -> None:
    widened = copy.deepcopy(document)
    _function(widened, "MessagesFunction")["Role"] = {"Fn::GetAtt": ["PolyvFunctionRole", "Arn"]}

    assert sorted(template_violations(widened)) == [
        "MessagesFunctionRole: a role must belong to exactly one function, not []",
        "PolyvFunctionRole: a role must belong to exactly one function, not ['MessagesFunction', 'PolyvFunction']",
    ]


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


def test_a_grant_widened_in_the_providers_loop_is_reported_for_every_provider() -> None:
    written = read_document(TEMPLATE)
    loop = written["Resources"]["Fn::ForEach::Providers"][2]
    role = loop["${Provider}FunctionRole"]["Properties"]
    role["Policies"][0]["PolicyDocument"]["Statement"].append(
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": {"Fn::GetAtt": ["PolyvQueue", "Arn"]}}
    )
    widened = expand(written, parameter_values(written, {}))

    for provider in ("Aliyun", "Ronglian"):
        reported = function_violations(widened, f"{provider}Function")
        assert f"{provider}Function: ['sqs:SendMessage'] on PolyvQueue, which it must not touch" in reported


def test_a_statement_the_router_shares_with_the_providers_loop_is_judged_for_the_router_too() -> None:
    written = read_document(TEMPLATE)
    role = written["Resources"]["Fn::ForEach::Providers"][2]["${Provider}FunctionRole"]["Properties"]
    statements = role["Policies"][0]["PolicyDocument"]["Statement"]
    # The router's role names the same statement (a YAML alias): widening it in the loop widens both.
    next(s for s in statements if s.get("Sid") == "QuotaCounters")["Action"].append("dynamodb:Scan")
    widened = expand(written, parameter_values(written, {}))

    for function_id in ("PolyvFunction", "RouterFunction"):
        reported = function_violations(widened, function_id)
        assert any("['dynamodb:Scan'] on QuotaTable" in problem for problem in reported), reported
