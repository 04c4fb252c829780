"""Creates what template.yaml declares in the local engines: secrets and queues in moto, tables in
DynamoDB Local. Provider secrets hold the sandbox's accounts, each pointed at its provider's port of
the sandbox (or at the sandbox's shared port); the secrets the stack names (receipt tokens, webhook
signing secrets) hold the values it gives."""

from __future__ import annotations

import functools
import json
import secrets
import string
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from local.sandbox import DEFAULT_ACCOUNTS
from local.template import QUEUE_TYPE, SECRET_TYPE, TABLE_TYPES, Physical, Resolver, Template, TemplateError

REGION = "us-east-1"
# DynamoDB Local and moto accept any credentials; fixed ones keep every client on the same data.
ACCESS_KEY_ID = "local"
SECRET_ACCESS_KEY = "local"  # noqa: S105 - not a secret: the local engines accept anything
PROVIDERS = ("polyv", "aliyun", "ronglian")

_CONFIG = Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})

# CloudFormation's AWS::SQS::Queue properties that are queue attributes under the same name.
_QUEUE_ATTRIBUTES = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)
_SIMPLE_TABLE_TYPES = {"String": "S", "Number": "N", "Binary": "B"}


# A session loads the service's model anew: one client per engine, shared (clients are thread-safe),
# keeps a bootstrap of many queues from spending a second on it.
@functools.cache
def client(service: str, endpoint_url: str) -> Any:
    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY, region_name=REGION
    )
    return session.client(service, endpoint_url=endpoint_url, config=_CONFIG)


def sandbox_secret(provider: str, sandbox_url: str) -> dict[str, str]:
    """A provider secret as the gateway reads it, holding the sandbox's account for that provider."""
    accounts = DEFAULT_ACCOUNTS
    match provider:
        case "polyv":
            return {"app_id": accounts.polyv.app_id, "app_secret": accounts.polyv.app_secret, "endpoint": sandbox_url}
        case "aliyun":
            return {
                "access_key_id": accounts.aliyun.access_key_id,
                "access_key_secret": accounts.aliyun.access_key_secret,
                "endpoint": sandbox_url,
                "region_id": "cn-hangzhou",
            }
        case "ronglian":
            return {
                "account_sid": accounts.ronglian.account_sid,
                "auth_token": accounts.ronglian.auth_token,
                "app_id": accounts.ronglian.app_id,
                "endpoint": sandbox_url,
            }
        case _:
            raise TemplateError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")


def _generated_secret(spec: Mapping[str, Any]) -> str:
    """What Secrets Manager would put in a secret created from GenerateSecretString."""
    alphabet = string.ascii_letters + string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
    value = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    if "SecretStringTemplate" in spec and "GenerateStringKey" in spec:
        document = json.loads(spec["SecretStringTemplate"])
        document[spec["GenerateStringKey"]] = value
        return json.dumps(document)
    return value


class Bootstrap:
    """Provisions the template's secrets, queues and tables; returns them as `Physical`s by logical id."""

    def __init__(
        self,
        template: Template,
        *,
        moto_url: str,
        dynamodb_url: str,
        sandbox_url: str,
        sandbox_urls: Mapping[str, str] | None = None,
        secret_values: Mapping[str, str] | None = None,
    ) -> None:
        """`sandbox_urls`: a provider's own URL, by provider; the others get `sandbox_url`.
        `secret_values`: a secret's value by its logical id, in place of what it would generate."""
        self.template = template
        self.moto_url = moto_url
        self.dynamodb_url = dynamodb_url
        self.secret_values = dict(secret_values or {})
        self.sandbox_url = sandbox_url
        self.sandbox_urls = dict(sandbox_urls or {})

    def run(
        self, *, moto: bool = True, dynamodb: bool = True, existing: Mapping[str, Physical] | None = None
    ) -> dict[str, Physical]:
        """Provision in moto, DynamoDB Local or both; `existing` resolves references to the other."""
        kinds = (*((SECRET_TYPE, QUEUE_TYPE) if moto else ()), *(TABLE_TYPES if dynamodb else ()))
        wanted = self.template.of_type(*kinds)
        provisioned: dict[str, Physical] = {}
        for logical_id in self.template.creation_order(wanted):
            resolver = self.template.resolver({**(existing or {}), **provisioned})
            kind = wanted[logical_id]["Type"]
            if kind == SECRET_TYPE:
                provisioned[logical_id] = self._secret(logical_id, resolver)
            elif kind == QUEUE_TYPE:
                provisioned[logical_id] = self._queue(logical_id, resolver)
            else:
                provisioned[logical_id] = self._table(logical_id, resolver)
        return provisioned

    # -- Secrets Manager -------------------------------------------------------------------

    def _secret(self, logical_id: str, resolver: Resolver) -> Physical:
        props = self.template.properties(logical_id)
        provider = self.template.secret_provider(logical_id)
        if provider is not None:
            value = json.dumps(sandbox_secret(provider, self.sandbox_urls.get(provider, self.sandbox_url)))
        elif logical_id in self.secret_values:
            value = self.secret_values[logical_id]
        elif "SecretString" in props:
            value = resolver.resolve_string(props["SecretString"])
        else:
            value = _generated_secret(resolver.resolve(props.get("GenerateSecretString") or {}))
        name = resolver.resolve_string(props.get("Name", logical_id))
        tags = [{"Key": str(t["Key"]), "Value": str(t["Value"])} for t in resolver.resolve(props.get("Tags") or [])]
        sm = client("secretsmanager", self.moto_url)
        try:
            arn: str = sm.create_secret(
                Name=name, SecretString=value, Description=str(props.get("Description", "")), Tags=tags
            )["ARN"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceExistsException":
                raise
            arn = sm.put_secret_value(SecretId=name, SecretString=value)["ARN"]
        return Physical(ref=arn, attributes={"Id": arn})

    # -- SQS -------------------------------------------------------------------------------

    def _queue(self, logical_id: str, resolver: Resolver) -> Physical:
        props = resolver.resolve(self.template.properties(logical_id)) or {}
        name = str(props.get("QueueName", logical_id))
        if props.get("FifoQueue") and not name.endswith(".fifo"):
            name += ".fifo"
        attributes = {}
        for key in _QUEUE_ATTRIBUTES:
            if key not in props:
                continue
            value = props[key]
            if isinstance(value, dict):
                value = json.dumps(value)
            elif isinstance(value, bool):
                value = "true" if value else "false"
            attributes[key] = str(value)
        sqs = client("sqs", self.moto_url)
        url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return Physical(ref=url, attributes={"Arn": arn, "QueueName": name, "QueueUrl": url})

    # -- DynamoDB --------------------------------------------------------------------------

    def _table(self, logical_id: str, resolver: Resolver) -> Physical:
        props = resolver.resolve(self.template.properties(logical_id)) or {}
        if self.template.resources[logical_id]["Type"] == "AWS::Serverless::SimpleTable":
            request = self._simple_table_request(logical_id, props)
        else:
            request = self._table_request(logical_id, props)
        ddb = client("dynamodb", self.dynamodb_url)
        try:
            description = ddb.create_table(**request)["TableDescription"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
            description = ddb.describe_table(TableName=request["TableName"])["Table"]
        ddb.get_waiter("table_exists").wait(TableName=request["TableName"], WaiterConfig={"Delay": 1})
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            ddb.update_time_to_live(
                TableName=request["TableName"],
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
        attributes = {"Arn": description["TableArn"]}
        if "LatestStreamArn" in description:
            attributes["StreamArn"] = description["LatestStreamArn"]
        return Physical(ref=request["TableName"], attributes=attributes)

    @staticmethod
    def _table_request(logical_id: str, props: Mapping[str, Any]) -> dict[str, Any]:
        billing = props.get("BillingMode", "PROVISIONED")
        request: dict[str, Any] = {
            "TableName": props.get("TableName", logical_id),
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": billing,
        }
        if billing == "PROVISIONED":
            request["ProvisionedThroughput"] = _throughput(props.get("ProvisionedThroughput"))
        indexes = []
        for index in props.get("GlobalSecondaryIndexes") or []:
            gsi = {k: index[k] for k in ("IndexName", "KeySchema", "Projection") if k in index}
            if billing == "PROVISIONED":
                gsi["ProvisionedThroughput"] = _throughput(index.get("ProvisionedThroughput"))
            indexes.append(gsi)
        if indexes:
            request["GlobalSecondaryIndexes"] = indexes
        local_indexes = [
            {k: index[k] for k in ("IndexName", "KeySchema", "Projection") if k in index}
            for index in props.get("LocalSecondaryIndexes") or []
        ]
        if local_indexes:
            request["LocalSecondaryIndexes"] = local_indexes
        stream = props.get("StreamSpecification")
        if stream:
            request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
        return request

    @staticmethod
    def _simple_table_request(logical_id: str, props: Mapping[str, Any]) -> dict[str, Any]:
        key = props.get("PrimaryKey") or {"Name": "id", "Type": "String"}
        request: dict[str, Any] = {
            "TableName": props.get("TableName", logical_id),
            "KeySchema": [{"AttributeName": key["Name"], "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": key["Name"], "AttributeType": _SIMPLE_TABLE_TYPES[key["Type"]]}],
        }
        if props.get("ProvisionedThroughput"):
            request["BillingMode"] = "PROVISIONED"
            request["ProvisionedThroughput"] = _throughput(props["ProvisionedThroughput"])
        else:
            request["BillingMode"] = "PAY_PER_REQUEST"
        return request


def _throughput(spec: Mapping[str, Any] | None) -> dict[str, int]:
    spec = spec or {}
    return {
        "ReadCapacityUnits": int(spec.get("ReadCapacityUnits", 5)),
        "WriteCapacityUnits": int(spec.get("WriteCapacityUnits", 5)),
    }
