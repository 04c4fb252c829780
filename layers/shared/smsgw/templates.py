"""Logical templates: one message (`login_code`, with `code` and `minutes`) in each provider's form.

A template is stored per tenant in the configuration table, one item per version: saving makes a
new version and deleting writes a version that says so, so a message in flight keeps the version it
started with. Reads go through a short in-process cache: a warm send makes no DynamoDB call for
its template.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from smsgw.errors import DependencyUnavailable, GatewayError
from smsgw.models import MAX_PARAMS, AliyunTemplateCode, ParamName, SignName

ProviderName = Literal["polyv", "aliyun", "ronglian"]
PROVIDERS: tuple[ProviderName, ...] = ("aliyun", "ronglian", "polyv")
"""Every provider, in the order tried when a template names none."""
TemplateName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]


class TemplateNotFound(GatewayError):
    status_code = 404
    code = "template_not_found"


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolyvForm(_Form):
    """Polyv: the account's one template; each logical parameter under Polyv's name for it."""

    names: dict[ParamName, ParamName] = Field(description="Logical parameter → Polyv's parameter name.")

    def covers(self) -> list[str]:
        return list(self.names)


class AliyunForm(_Form):
    sign_name: SignName
    template_code: AliyunTemplateCode
    params: dict[ParamName, ParamName] = Field(description="Logical parameter → the template's variable.")

    def covers(self) -> list[str]:
        return list(self.params)


class AliyunMapping(AliyunForm):
    """Aliyun: mainland numbers through SendBatchSms with this form; other countries through
    SendInterSms with `international` (Aliyun's international templates are separate)."""

    international: AliyunForm | None = None


class RonglianForm(_Form):
    template_id: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,20}$")]
    datas: list[ParamName] = Field(description="The logical parameters in the order of {1}, {2}, …")

    def covers(self) -> list[str]:
        return list(self.datas)


class Routing(_Form):
    """Which provider tries first: an order, or weights (a share of the numbers each goes first to)."""

    order: list[ProviderName] | None = Field(default=None, min_length=1)
    weights: dict[ProviderName, Annotated[int, Field(ge=1, le=1000)]] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_rule(self) -> Self:
        if (self.order is None) == (self.weights is None):
            raise ValueError("routing takes either order or weights")
        if self.order is not None and len(set(self.order)) != len(self.order):
            raise ValueError("routing.order names a provider twice")
        return self

    def named(self) -> list[str]:
        return list(self.order or self.weights or [])


class TemplateSpec(_Form):
    """A template as saved: its parameters, each provider's form of it, and how to route it."""

    params: list[ParamName] = Field(default_factory=list, max_length=MAX_PARAMS)
    polyv: PolyvForm | None = None
    aliyun: AliyunMapping | None = None
    ronglian: RonglianForm | None = None
    routing: Routing | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if len(set(self.params)) != len(self.params):
            raise ValueError("params names a parameter twice")
        forms = self.forms()
        if not forms:
            raise ValueError("a template needs the form of at least one provider")
        for provider, form in forms.items():
            if sorted(form.covers()) != sorted(self.params):
                raise ValueError(f"{provider} must map every parameter of params, each once")
        international = self.aliyun.international if self.aliyun is not None else None
        if international is not None and sorted(international.covers()) != sorted(self.params):
            raise ValueError("aliyun.international must map every parameter of params, each once")
        unmapped = [p for p in (self.routing.named() if self.routing else []) if p not in forms]
        if unmapped:
            raise ValueError(f"routing names providers without a form: {', '.join(unmapped)}")
        return self

    def forms(self) -> dict[str, PolyvForm | AliyunMapping | RonglianForm]:
        found: dict[str, PolyvForm | AliyunMapping | RonglianForm | None] = {
            "polyv": self.polyv,
            "aliyun": self.aliyun,
            "ronglian": self.ronglian,
        }
        return {name: form for name, form in found.items() if form is not None}


@dataclass(frozen=True, slots=True)
class Template:
    tenant: str
    name: str
    version: int
    spec: TemplateSpec

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, **self.spec.model_dump(mode="json", exclude_none=True)}


def _key(tenant: str, name: str) -> str:
    return f"{tenant}#template#{name}"


def _sort_key(version: int) -> str:
    return f"v#{version:010d}"


class TemplateStore:
    def __init__(
        self, table_name: str, *, client: Any, cache_seconds: int = 60, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.table_name = table_name
        self.client = client
        self.cache_seconds = cache_seconds
        self.now = now
        self._latest: dict[tuple[str, str], tuple[float, Template | None]] = {}
        self._versions: dict[tuple[str, str, int], Template | None] = {}
        self._lock = threading.Lock()

    def get(self, tenant: str, name: str, version: int | None = None) -> Template:
        """The template's latest version, or the one asked for; 404 if there is none."""
        found = self.latest(tenant, name) if version is None else self.version(tenant, name, version)
        if found is None:
            what = f"version {version} of " if version is not None else ""
            raise TemplateNotFound(f"No template {what}{name!r} for this API key.")
        return found

    def latest(self, tenant: str, name: str) -> Template | None:
        with self._lock:
            cached = self._latest.get((tenant, name))
        if cached is not None and self.now() - cached[0] < self.cache_seconds:
            return cached[1]
        item = self._newest_item(tenant, name)
        found = None if item is None or item.get("deleted", {}).get("BOOL") else _template(tenant, name, item)
        with self._lock:
            self._latest[(tenant, name)] = (self.now(), found)
        return found

    def version(self, tenant: str, name: str, version: int) -> Template | None:
        # A version never changes once written: it is kept for the instance's life.
        with self._lock:
            if (tenant, name, version) in self._versions:
                return self._versions[(tenant, name, version)]
        try:
            key = {"pk": {"S": _key(tenant, name)}, "sk": {"S": _sort_key(version)}}
            item = self.client.get_item(TableName=self.table_name, Key=key).get("Item")
        except Exception as exc:
            raise _unavailable(exc) from exc
        found = None if item is None or item.get("deleted", {}).get("BOOL") else _template(tenant, name, item)
        with self._lock:
            self._versions[(tenant, name, version)] = found
        return found

    def save(self, tenant: str, name: str, spec: TemplateSpec) -> Template:
        version = self._write(tenant, name, {"spec": {"S": spec.model_dump_json(exclude_none=True)}})
        saved = Template(tenant, name, version, spec)
        with self._lock:
            self._latest[(tenant, name)] = (self.now(), saved)
        return saved

    def delete(self, tenant: str, name: str) -> bool:
        """Deleting writes a version that says so; False if there was no template to delete."""
        if self.latest(tenant, name) is None:
            return False
        self._write(tenant, name, {"deleted": {"BOOL": True}})
        with self._lock:
            self._latest[(tenant, name)] = (self.now(), None)
        return True

    def _write(self, tenant: str, name: str, attributes: dict[str, Any]) -> int:
        for _ in range(5):  # another save may take the same version: the next one is tried
            newest = self._newest_item(tenant, name)
            version = 1 + (int(newest["version"]["N"]) if newest else 0)
            item = {
                "pk": {"S": _key(tenant, name)},
                "sk": {"S": _sort_key(version)},
                "version": {"N": str(version)},
                "saved_at": {"N": str(int(time.time()))},
                **attributes,
            }
            try:
                self.client.put_item(
                    TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(sk)"
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                    continue
                raise _unavailable(exc) from exc
            except Exception as exc:
                raise _unavailable(exc) from exc
            return version
        raise DependencyUnavailable("The template is being saved by another request; try again.")

    def _newest_item(self, tenant: str, name: str) -> dict[str, Any] | None:
        try:
            answer = self.client.query(
                TableName=self.table_name,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :v)",
                ExpressionAttributeValues={":pk": {"S": _key(tenant, name)}, ":v": {"S": "v#"}},
                ScanIndexForward=False,
                Limit=1,
                ConsistentRead=True,
            )
        except Exception as exc:
            raise _unavailable(exc) from exc
        items: list[dict[str, Any]] = answer.get("Items", [])
        return items[0] if items else None


def _template(tenant: str, name: str, item: dict[str, Any]) -> Template:
    spec = TemplateSpec.model_validate(json.loads(item["spec"]["S"]))
    return Template(tenant, name, int(item["version"]["N"]), spec)


def _unavailable(exc: Exception) -> DependencyUnavailable:
    return DependencyUnavailable(f"DynamoDB is unavailable ({type(exc).__name__})")
