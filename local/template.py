"""template.yaml as the local stack sees it: functions, API routes, SQS triggers, gateway responses,
and CloudFormation intrinsics resolved against what the local stack provisioned.

Reading the deployed template instead of a local copy of it keeps routes, secrets, tables and queues
from drifting between `make run` and AWS. It is read as CloudFormation deploys it: the loops of
AWS::LanguageExtensions expanded first (local.language_extensions).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

import yaml

from local.language_extensions import TemplateError, expand

__all__ = ["TemplateError", "expand"]

REGION = "us-east-1"
# moto's default account, so that ARNs built here match the ones moto hands out.
ACCOUNT_ID = "123456789012"
URL_SUFFIX = "amazonaws.com"
PARTITION = "aws"
STACK_NAME = "sms-gateway-local"
LOCAL_REST_API_ID = "local"
IMPLICIT_API_ID = "ServerlessRestApi"

FUNCTION_TYPE = "AWS::Serverless::Function"
SERVERLESS_API_TYPE = "AWS::Serverless::Api"
LAYER_TYPE = "AWS::Serverless::LayerVersion"
GATEWAY_RESPONSE_TYPE = "AWS::ApiGateway::GatewayResponse"
SECRET_TYPE = "AWS::SecretsManager::Secret"  # noqa: S105 - a resource type, not a password
QUEUE_TYPE = "AWS::SQS::Queue"
EVENT_SOURCE_MAPPING_TYPE = "AWS::Lambda::EventSourceMapping"
TABLE_TYPES = ("AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable")

# Lambda's defaults when neither the function nor Globals set them.
DEFAULT_TIMEOUT = 3
DEFAULT_MEMORY_SIZE = 128
DEFAULT_SQS_BATCH_SIZE = 10


# ---------------------------------------------------------------------------------------------
# Loading: CloudFormation short-form tags become the long form, as data
# ---------------------------------------------------------------------------------------------


class CfnLoader(yaml.SafeLoader):
    """A YAML loader that reads `!Ref X` as {"Ref": "X"}, `!Sub s` as {"Fn::Sub": s}, and so on."""


def _construct_intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(cast(yaml.MappingNode, node), deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def read_document(path: Path) -> dict[str, Any]:
    """The template as written: Fn::ForEach loops and all."""
    with path.open(encoding="utf-8") as stream:
        document = yaml.load(stream, Loader=CfnLoader)  # noqa: S506 - CfnLoader is a SafeLoader
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources)")
    return document


def load_document(path: Path, parameter_overrides: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The template as CloudFormation deploys it: AWS::LanguageExtensions applied (`expand`)."""
    document = read_document(path)
    return expand(document, parameter_values(document, parameter_overrides or {}))


def parameter_values(document: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
    """Every parameter's value: its override, else its default (a parameter with neither has none)."""
    declared: dict[str, Any] = document.get("Parameters") or {}
    unknown = set(overrides) - set(declared)
    if unknown:
        raise TemplateError(f"unknown parameters: {', '.join(sorted(unknown))}")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in overrides:
            values[name] = str(overrides[name])
        elif "Default" in spec:
            values[name] = _as_string(spec["Default"])
    return values


# ---------------------------------------------------------------------------------------------
# What the template describes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Physical:
    """A provisioned resource: what `!Ref` returns and what `!GetAtt` can read."""

    ref: str
    attributes: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "attributes": dict(self.attributes)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Physical:
        return cls(ref=str(data["ref"]), attributes={str(k): str(v) for k, v in data.get("attributes", {}).items()})


@dataclass(frozen=True)
class ApiRoute:
    function_id: str
    event_id: str
    api_id: str
    path: str
    method: str
    api_key_required: bool


@dataclass(frozen=True)
class SqsEventSource:
    """An SQS trigger: `queue` is the template's expression, `queue_id` the queue's logical id."""

    function_id: str
    event_id: str
    queue: Any
    queue_id: str | None
    batch_size: int
    function_response_types: tuple[str, ...]
    maximum_batching_window_seconds: int
    enabled: bool
    maximum_concurrency: int | None

    @property
    def reports_batch_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.function_response_types


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_uri: Path
    handler: str
    runtime: str | None
    timeout: int
    memory_size: int
    layers: tuple[Path, ...]
    environment: Mapping[str, Any]
    api_routes: tuple[ApiRoute, ...]
    sqs_events: tuple[SqsEventSource, ...]


# VTL's `$context.requestId` and `${context.requestId}`.
_CONTEXT_VARIABLE = re.compile(r"\$(?:\{context\.([\w.]+)\}|context\.((?:\w+\.)*\w+))")


@dataclass(frozen=True)
class GatewayResponse:
    response_type: str
    status_code: int
    templates: Mapping[str, str]
    headers: Mapping[str, str] = field(default_factory=dict)

    def render(self, context: Mapping[str, str]) -> bytes:
        """The body API Gateway sends: the application/json template with `$context.*` filled in."""
        template = self.templates.get("application/json")
        if template is None:
            template = next(iter(self.templates.values()), "")

        def substitute(match: re.Match[str]) -> str:
            return context.get(match.group(1) or match.group(2), match.group(0))

        return _CONTEXT_VARIABLE.sub(substitute, template).encode()


# API Gateway's own answers when the template does not customise them. The default template is
# AWS's: the message, JSON-quoted.
_DEFAULT_BODY = '{"message":$context.error.messageString}'
BUILTIN_RESPONSES: Mapping[str, tuple[int, str]] = {
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
    "INVALID_API_KEY": (403, "Forbidden"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out"),
    "DEFAULT_4XX": (400, "Bad Request"),
    # A function error or a malformed proxy result: what API Gateway answers for a Lambda proxy.
    "DEFAULT_5XX": (502, "Internal server error"),
}
ERROR_TYPES: Mapping[str, str] = {
    "MISSING_AUTHENTICATION_TOKEN": "MissingAuthenticationTokenException",
    "INVALID_API_KEY": "ForbiddenException",
    "INTEGRATION_TIMEOUT": "InternalServerErrorException",
    "DEFAULT_5XX": "InternalServerErrorException",
}


@dataclass(frozen=True)
class ApiSpec:
    logical_id: str
    stage_name: str
    api_key_required: bool
    binary_media_types: tuple[str, ...]
    gateway_responses: Mapping[str, GatewayResponse]

    def gateway_response(self, response_type: str) -> tuple[GatewayResponse, str]:
        """The response API Gateway would send for `response_type`, and its default message."""
        status, message = BUILTIN_RESPONSES.get(response_type, BUILTIN_RESPONSES["DEFAULT_5XX"])
        custom = self.gateway_responses.get(response_type)
        if custom is None:
            family = "DEFAULT_5XX" if status >= 500 else "DEFAULT_4XX"
            fallback = self.gateway_responses.get(family)
            if fallback is not None:
                # A DEFAULT_* response without StatusCode keeps the specific response's status.
                code = fallback.status_code or status
                custom = GatewayResponse(response_type, code, fallback.templates, fallback.headers)
        if custom is None:
            custom = GatewayResponse(response_type, status, {"application/json": _DEFAULT_BODY})
        elif not custom.templates:
            default = {"application/json": _DEFAULT_BODY}
            custom = GatewayResponse(response_type, custom.status_code, default, custom.headers)
        if not custom.status_code:
            custom = GatewayResponse(response_type, status, custom.templates, custom.headers)
        return custom, message


# ---------------------------------------------------------------------------------------------
# Intrinsics
# ---------------------------------------------------------------------------------------------


class _NoValue:
    """AWS::NoValue: the property it stands for disappears."""


NO_VALUE = _NoValue()


def pseudo_parameters() -> dict[str, str]:
    return {
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::URLSuffix": URL_SUFFIX,
        "AWS::Partition": PARTITION,
        "AWS::StackName": STACK_NAME,
        "AWS::StackId": f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{STACK_NAME}/local",
    }


def _as_string(value: Any) -> str:
    """How CloudFormation turns a scalar into a string (environment variables, Sub, Join)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise TemplateError(f"expected a scalar, got {json.dumps(value, default=str)}")


class Resolver:
    """Resolves intrinsics against parameters, pseudo parameters and provisioned resources."""

    def __init__(
        self,
        document: Mapping[str, Any],
        parameters: Mapping[str, str],
        resources: Mapping[str, Physical],
    ) -> None:
        self._document = document
        self._parameters = parameters
        self._resources = resources
        self._conditions: dict[str, bool] = {}

    def resolve(self, value: Any) -> Any:
        resolved = self._resolve(value)
        return None if resolved is NO_VALUE else resolved

    def resolve_string(self, value: Any) -> str:
        return _as_string(self.resolve(value))

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            resolved = [self._resolve(v) for v in value]
            return [v for v in resolved if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), *_ = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key == "Condition" and isinstance(argument, str):
                return self.condition(argument)
            if key.startswith("Fn::"):
                return self._function(key, argument)
        items = {k: self._resolve(v) for k, v in value.items()}
        return {k: v for k, v in items.items() if v is not NO_VALUE}

    def _ref(self, name: Any) -> Any:
        if not isinstance(name, str):
            raise TemplateError(f"!Ref needs a name, got {name!r}")
        if name == "AWS::NoValue":
            return NO_VALUE
        pseudo = pseudo_parameters()
        if name in pseudo:
            return pseudo[name]
        if name in self._parameters:
            return self._parameter(name)
        if name in self._resources:
            return self._resources[name].ref
        raise TemplateError(f"!Ref {name}: not a parameter, and no local resource was provisioned for it")

    def _parameter(self, name: str) -> str | list[str]:
        """A parameter's value as `!Ref` gives it: a list for a list type (CommaDelimitedList, List<…>)."""
        value = self._parameters[name]
        kind = str(((self._document.get("Parameters") or {}).get(name) or {}).get("Type", "String"))
        if kind == "CommaDelimitedList" or kind.startswith("List<"):
            return [part.strip() for part in value.split(",")]
        return value

    def _get_att(self, argument: Any) -> str:
        if isinstance(argument, str):
            argument = argument.split(".", 1)
        logical_id, attribute = self._resolve(argument)
        physical = self._resources.get(logical_id)
        if physical is None or attribute not in physical.attributes:
            raise TemplateError(f"!GetAtt {logical_id}.{attribute}: not provided by the local stack")
        return physical.attributes[attribute]

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], {k: self._resolve(v) for k, v in argument[1].items()}
        else:
            text, variables = argument, {}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return _as_string(variables[name])
            if "." in name:
                return self._get_att(name)
            return _as_string(self._ref(name))

        return re.sub(r"\$\{([^}]+)\}", substitute, _as_string(text))

    def _function(self, key: str, argument: Any) -> Any:
        handler = self._FUNCTIONS.get(key)
        if handler is None:
            raise TemplateError(f"{key} is not supported by the local stack")
        return handler(self, argument)

    def _join(self, argument: Any) -> str:
        delimiter, items = argument
        return _as_string(delimiter).join(_as_string(i) for i in self._resolve(items))

    def _select(self, argument: Any) -> Any:
        index, items = self._resolve(argument)
        return items[int(index)]

    def _split(self, argument: Any) -> list[str]:
        delimiter, text = argument
        return self.resolve_string(text).split(_as_string(delimiter))

    def _if(self, argument: Any) -> Any:
        name, when_true, when_false = argument
        return self._resolve(when_true if self.condition(name) else when_false)

    def _equals(self, argument: Any) -> bool:
        left, right = self._resolve(argument)
        return _as_string(left) == _as_string(right)

    def _find_in_map(self, argument: Any) -> Any:
        """AWS::LanguageExtensions adds a fourth argument: {"DefaultValue": …} for a missing key."""
        name, top, second = (self.resolve_string(a) for a in argument[:3])
        found = ((self._document.get("Mappings") or {}).get(name) or {}).get(top) or {}
        if second in found:
            return found[second]
        if len(argument) > 3 and "DefaultValue" in (argument[3] or {}):
            return self._resolve(argument[3]["DefaultValue"])
        raise TemplateError(f"Fn::FindInMap: Mappings has no {name}.{top}.{second}")

    _FUNCTIONS: ClassVar[Mapping[str, Callable[[Resolver, Any], Any]]] = {
        "Fn::GetAtt": lambda self, argument: self._get_att(argument),
        "Fn::Sub": lambda self, argument: self._sub(argument),
        "Fn::Join": _join,
        "Fn::Select": _select,
        "Fn::Split": _split,
        "Fn::If": _if,
        "Fn::Equals": _equals,
        "Fn::Not": lambda self, argument: not self._truth(argument[0]),
        "Fn::And": lambda self, argument: all(self._truth(c) for c in argument),
        "Fn::Or": lambda self, argument: any(self._truth(c) for c in argument),
        "Fn::FindInMap": _find_in_map,
        "Fn::Base64": lambda self, argument: base64.b64encode(self.resolve_string(argument).encode()).decode(),
        "Fn::GetAZs": lambda self, argument: [f"{REGION}{zone}" for zone in "abc"],
    }

    def _truth(self, value: Any) -> bool:
        resolved = self._resolve(value)
        if isinstance(resolved, bool):
            return resolved
        raise TemplateError(f"expected a condition, got {resolved!r}")

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            expression = self._document.get("Conditions", {}).get(name)
            if expression is None:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = self._truth(expression)
        return self._conditions[name]


def references(value: Any) -> set[str]:
    """The logical ids and parameters an expression refers to (to order creation). SAM's `!Ref
    Function.Alias` (the alias AutoPublishAlias publishes) refers to the function."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        for key, argument in value.items():
            if key == "Ref" and isinstance(argument, str):
                found.add(argument.removesuffix(".Alias"))
            elif key == "Fn::GetAtt":
                parts = argument.split(".", 1) if isinstance(argument, str) else argument
                if isinstance(parts[0], str):
                    found.add(parts[0])
            elif key == "Fn::Sub":
                text = argument[0] if isinstance(argument, list) else argument
                if isinstance(text, str):
                    found |= {m.split(".", 1)[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text)}
                if isinstance(argument, list):
                    found |= references(argument[1:])
            else:
                found |= references(argument)
    return found


# ---------------------------------------------------------------------------------------------
# The template
# ---------------------------------------------------------------------------------------------


def _merge_globals(global_value: Any, local_value: Any) -> Any:
    """SAM's Globals rules: maps merge, lists add up, a function's own scalar wins."""
    if isinstance(global_value, dict) and isinstance(local_value, dict):
        merged = dict(global_value)
        for key, value in local_value.items():
            merged[key] = _merge_globals(global_value[key], value) if key in global_value else value
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return [*global_value, *local_value]
    return local_value


class Template:
    """A SAM template and the parameter values it is run with."""

    def __init__(
        self,
        document: dict[str, Any],
        base_dir: Path,
        parameter_overrides: Mapping[str, str] | None = None,
    ) -> None:
        self.base_dir = base_dir
        self.parameters = parameter_values(document, parameter_overrides or {})
        # What CloudFormation deploys: the loops of AWS::LanguageExtensions expanded.
        self.document = expand(document, self.parameters)

    @classmethod
    def load(cls, path: Path, parameter_overrides: Mapping[str, str] | None = None) -> Template:
        path = path.resolve()
        return cls(read_document(path), path.parent, parameter_overrides)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.document["Resources"]
        return resources

    def of_type(self, *types: str) -> dict[str, dict[str, Any]]:
        return {name: r for name, r in self.resources.items() if r.get("Type") in types}

    def properties(self, logical_id: str) -> dict[str, Any]:
        props: dict[str, Any] = self.resources[logical_id].get("Properties") or {}
        return props

    def resolver(self, resources: Mapping[str, Physical] | None = None) -> Resolver:
        return Resolver(self.document, self.parameters, {**self.synthetic_resources(), **(resources or {})})

    def _globals(self, section: str) -> dict[str, Any]:
        found: dict[str, Any] = (self.document.get("Globals") or {}).get(section) or {}
        return found

    # -- APIs ------------------------------------------------------------------------------

    def apis(self) -> dict[str, ApiSpec]:
        resolver = self.resolver()
        declared = {name: self.properties(name) for name in self.of_type(SERVERLESS_API_TYPE)}
        uses_implicit = any(r.api_id == IMPLICIT_API_ID for f in self._function_ids() for r in self._routes(f))
        if uses_implicit:
            # SAM's implicit API is created with the Prod stage.
            declared[IMPLICIT_API_ID] = {"StageName": "Prod"}
        apis: dict[str, ApiSpec] = {}
        for name, own in declared.items():
            props = _merge_globals(self._globals("Api"), own)
            auth = props.get("Auth") or {}
            apis[name] = ApiSpec(
                logical_id=name,
                stage_name=resolver.resolve_string(props.get("StageName", "Prod")),
                api_key_required=bool(resolver.resolve(auth.get("ApiKeyRequired", False))),
                binary_media_types=tuple(
                    str(t).replace("~1", "/") for t in resolver.resolve(props.get("BinaryMediaTypes") or [])
                ),
                gateway_responses=self._gateway_responses(name, props, resolver),
            )
        return apis

    def _gateway_responses(
        self, api_id: str, api_props: Mapping[str, Any], resolver: Resolver
    ) -> dict[str, GatewayResponse]:
        found: dict[str, GatewayResponse] = {}
        # SAM's inline form: the Api's GatewayResponses property.
        for response_type, spec in (api_props.get("GatewayResponses") or {}).items():
            spec = resolver.resolve(spec)
            headers = (spec.get("ResponseParameters") or {}).get("Headers") or {}
            found[response_type] = GatewayResponse(
                response_type=response_type,
                status_code=int(spec.get("StatusCode") or 0),
                templates=spec.get("ResponseTemplates") or {},
                headers={k: str(v).strip("'") for k, v in headers.items()},
            )
        # CloudFormation's form: AWS::ApiGateway::GatewayResponse resources pointing at the API.
        for name in self.of_type(GATEWAY_RESPONSE_TYPE):
            props = self.properties(name)
            if props.get("RestApiId") not in ({"Ref": api_id}, api_id):
                continue
            response_type = resolver.resolve_string(props["ResponseType"])
            parameters = resolver.resolve(props.get("ResponseParameters") or {})
            found[response_type] = GatewayResponse(
                response_type=response_type,
                status_code=int(resolver.resolve(props.get("StatusCode")) or 0),
                templates=resolver.resolve(props.get("ResponseTemplates") or {}),
                headers={
                    key.removeprefix("gatewayresponse.header."): str(value).strip("'")
                    for key, value in parameters.items()
                    if key.startswith("gatewayresponse.header.") and str(value).startswith("'")
                },
            )
        return found

    # -- Functions -------------------------------------------------------------------------

    def _function_ids(self) -> list[str]:
        return list(self.of_type(FUNCTION_TYPE))

    def function_properties(self, logical_id: str) -> dict[str, Any]:
        merged: dict[str, Any] = _merge_globals(self._globals("Function"), self.properties(logical_id))
        return merged

    def _events(self, function_id: str) -> dict[str, dict[str, Any]]:
        events: dict[str, dict[str, Any]] = self.properties(function_id).get("Events") or {}
        return events

    def _routes(self, function_id: str) -> list[ApiRoute]:
        resolver = Resolver(self.document, self.parameters, {})
        declared_apis = {name: self.properties(name) for name in self.of_type(SERVERLESS_API_TYPE)}
        routes = []
        for event_id, event in self._events(function_id).items():
            if event.get("Type") != "Api":
                continue
            props = event.get("Properties") or {}
            api_ref = props.get("RestApiId")
            api_id = api_ref["Ref"] if isinstance(api_ref, dict) and "Ref" in api_ref else IMPLICIT_API_ID
            api_props = _merge_globals(self._globals("Api"), declared_apis.get(api_id, {}))
            required = (api_props.get("Auth") or {}).get("ApiKeyRequired", False)
            own_auth = props.get("Auth") or {}
            if "ApiKeyRequired" in own_auth:
                required = own_auth["ApiKeyRequired"]
            routes.append(
                ApiRoute(
                    function_id=function_id,
                    event_id=event_id,
                    api_id=api_id,
                    path=resolver.resolve_string(props["Path"]),
                    method=resolver.resolve_string(props["Method"]).upper(),
                    api_key_required=bool(resolver.resolve(required)),
                )
            )
        return routes

    def _sqs_events(self, function_id: str) -> list[SqsEventSource]:
        """The function's `Type: SQS` events (SAM's shorthand for an event source mapping)."""
        return [
            self._sqs_source(function_id, event_id, event.get("Properties") or {}, queue_key="Queue")
            for event_id, event in self._events(function_id).items()
            if event.get("Type") == "SQS"
        ]

    def _sqs_mappings(self) -> list[SqsEventSource]:
        """`AWS::Lambda::EventSourceMapping` resources feeding a function of the template from one of
        its queues; `event_id` is the mapping's logical id."""
        functions = set(self._function_ids())
        queues = set(self.of_type(QUEUE_TYPE))
        found = []
        for mapping_id, mapping in self.of_type(EVENT_SOURCE_MAPPING_TYPE).items():
            props = mapping.get("Properties") or {}
            targets = references(props.get("FunctionName")) & functions
            if len(targets) != 1 or not references(props.get("EventSourceArn")) & queues:
                continue  # a stream, or a function or queue from outside the template
            found.append(self._sqs_source(targets.pop(), mapping_id, props, queue_key="EventSourceArn"))
        return found

    def _sqs_source(self, function_id: str, event_id: str, props: dict[str, Any], queue_key: str) -> SqsEventSource:
        resolver = Resolver(self.document, self.parameters, {})
        queue = props[queue_key]
        queue_refs = references(queue) & set(self.of_type(QUEUE_TYPE))
        scaling = props.get("ScalingConfig") or {}
        maximum_concurrency = scaling.get("MaximumConcurrency")
        return SqsEventSource(
            function_id=function_id,
            event_id=event_id,
            queue=queue,
            queue_id=next(iter(queue_refs)) if len(queue_refs) == 1 else None,
            batch_size=int(resolver.resolve(props.get("BatchSize", DEFAULT_SQS_BATCH_SIZE))),
            function_response_types=tuple(resolver.resolve(props.get("FunctionResponseTypes") or [])),
            maximum_batching_window_seconds=int(resolver.resolve(props.get("MaximumBatchingWindowInSeconds", 0))),
            enabled=bool(resolver.resolve(props.get("Enabled", True))),
            maximum_concurrency=(None if maximum_concurrency is None else int(resolver.resolve(maximum_concurrency))),
        )

    def _layer_paths(self, layers: Iterable[Any]) -> tuple[Path, ...]:
        paths = []
        for layer in layers:
            if isinstance(layer, dict) and isinstance(layer.get("Ref"), str):
                resource = self.resources.get(layer["Ref"], {})
                if resource.get("Type") == LAYER_TYPE:
                    content = (resource.get("Properties") or {}).get("ContentUri")
                    if isinstance(content, str):
                        paths.append((self.base_dir / content).resolve())
            # A layer from outside the template (an ARN) has no local content; it is not mounted.
        return tuple(paths)

    def functions(self) -> dict[str, FunctionSpec]:
        resolver = Resolver(self.document, self.parameters, {})
        functions = {}
        for logical_id in self._function_ids():
            props = self.function_properties(logical_id)
            code_uri = props.get("CodeUri")
            if not isinstance(code_uri, str):
                raise TemplateError(f"{logical_id}: CodeUri must be a local folder to run locally")
            functions[logical_id] = FunctionSpec(
                logical_id=logical_id,
                code_uri=(self.base_dir / code_uri).resolve(),
                handler=resolver.resolve_string(props["Handler"]),
                runtime=resolver.resolve(props.get("Runtime")),
                timeout=int(resolver.resolve(props.get("Timeout", DEFAULT_TIMEOUT))),
                memory_size=int(resolver.resolve(props.get("MemorySize", DEFAULT_MEMORY_SIZE))),
                layers=self._layer_paths(props.get("Layers") or []),
                environment=(props.get("Environment") or {}).get("Variables") or {},
                api_routes=tuple(self._routes(logical_id)),
                sqs_events=tuple(self._sqs_events(logical_id)),
            )
        return functions

    def api_routes(self) -> list[ApiRoute]:
        return [route for f in self._function_ids() for route in self._routes(f)]

    def sqs_event_sources(self) -> list[SqsEventSource]:
        """SQS triggers, whether written as a function's `Type: SQS` event or as an
        `AWS::Lambda::EventSourceMapping` resource."""
        return [source for f in self._function_ids() for source in self._sqs_events(f)] + self._sqs_mappings()

    def environment(self, function_id: str, resources: Mapping[str, Physical]) -> dict[str, str]:
        """The function's environment variables as Lambda would see them: every value a string."""
        resolver = self.resolver(resources)
        variables = resolver.resolve(self.functions()[function_id].environment) or {}
        return {str(name): _as_string(value) for name, value in variables.items()}

    # -- Resources the local stack does not provision but that expressions may name ---------

    def synthetic_resources(self) -> dict[str, Physical]:
        """Stand-ins for functions, layers and APIs, named after their logical ids."""
        found: dict[str, Physical] = {}
        for logical_id in self._function_ids():
            arn = f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT_ID}:function:{logical_id}"
            found[logical_id] = Physical(ref=logical_id, attributes={"Arn": arn})
        for logical_id in self.of_type(LAYER_TYPE):
            arn = f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT_ID}:layer:{logical_id}:1"
            found[logical_id] = Physical(ref=arn)
        for logical_id in self.of_type(SERVERLESS_API_TYPE, "AWS::ApiGateway::RestApi"):
            found[logical_id] = Physical(ref=LOCAL_REST_API_ID, attributes={"RootResourceId": "root"})
        return found

    # -- Resources the bootstrap provisions ------------------------------------------------

    def creation_order(self, logical_ids: Iterable[str]) -> list[str]:
        """Dependencies first (a DLQ before the queue whose RedrivePolicy names it)."""
        wanted = list(logical_ids)
        ordered: list[str] = []
        visiting: set[str] = set()

        def visit(name: str) -> None:
            if name in ordered:
                return
            if name in visiting:
                raise TemplateError(f"circular reference through {name}")
            visiting.add(name)
            for dependency in sorted(references(self.resources[name].get("Properties") or {})):
                if dependency in wanted:
                    visit(dependency)
            visiting.discard(name)
            ordered.append(name)

        for name in wanted:
            visit(name)
        return ordered

    def secret_provider(self, logical_id: str) -> str | None:
        tags = self.properties(logical_id).get("Tags") or []
        for tag in tags:
            if isinstance(tag, dict) and tag.get("Key") == "sms-gateway:provider":
                value = tag.get("Value")
                return value if isinstance(value, str) else None
        return None
