"""A tenant's templates for `POST /v1/messages`, straight in the stack's configuration table, and the
admin API keys that manage them over the API.

    python scripts/templates.py put login_code template.json --tenant a1b2c3d4e5 --stack sms-gateway
    python scripts/templates.py get login_code --tenant a1b2c3d4e5 --stack sms-gateway
    python scripts/templates.py list --tenant a1b2c3d4e5 --stack sms-gateway
    python scripts/templates.py delete login_code --tenant a1b2c3d4e5 --stack sms-gateway
    python scripts/templates.py put login_code template.json --local      # the stack `make run` runs
    python scripts/templates.py admin-key shop-1-admin --tenant a1b2c3d4e5 --stack sms-gateway

The tenant is an API key id, as the functions know it (`scripts/tenants.py list` shows them; on the
local stack, the first key's by default). A template is checked and versioned by the gateway's own
code, as `PUT /v1/templates/{name}` does: a put makes a new version, a delete a version that says so.

The table comes from the stack's outputs (ConfigTableName; `--table` skips that lookup), or from
`.local-stack/state.json` with `--local`. `admin-key` makes an API key with a usage plan of its own,
as `scripts/tenants.py create` does, and registers it as the tenant's admin. boto3 finds
credentials, region and `AWS_ENDPOINT_URL` the usual way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ValidationError

# Run as a file, this script sees neither the gateway's package (the layer) nor the repository's
# other modules: templates are checked and stored by the same code as the router function's.
ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "layers" / "shared"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from local.bootstrap import client  # noqa: E402
from local.invoke import NoStack, read_state  # noqa: E402
from local.stack import DEFAULT_STATE_DIR, STATE_FILE  # noqa: E402
from scripts.tenants import (  # noqa: E402
    Target,
    TenantError,
    add_plan_arguments,
    add_session_arguments,
    create_tenant,
    delete_tenant,
    find_target,
    run_command,
    stack_outputs,
)
from smsgw.admin import AdminKeys  # noqa: E402
from smsgw.errors import GatewayError  # noqa: E402
from smsgw.templates import TemplateSpec, TemplateStore  # noqa: E402

ADMIN_TAG = "sms-gateway:admin-of"
"""Marks an admin key (and its usage plan) with the tenant whose templates it manages."""


class TemplateError(Exception):
    """A request this script refuses, or a table it cannot find; the message says which."""


@dataclass(frozen=True)
class Table:
    """Where a stack keeps its templates: the table's name and a DynamoDB client that reaches it."""

    name: str
    client: Any


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


def stack_table(cloudformation: Any, stack: str) -> str:
    """The configuration table of a deployed stack, from its outputs."""
    name = stack_outputs(cloudformation, stack).get("ConfigTableName")  # a TenantError is told as it is
    if not name:
        raise TemplateError(f"stack {stack} has no configuration table (output ConfigTableName); pass --table")
    return name


def local_table(state_file: Path) -> tuple[Table, str]:
    """The running local stack's configuration table, and its first API key's tenant."""
    try:
        state = read_state(state_file)
    except NoStack as exc:
        raise TemplateError(str(exc)) from exc
    if not state.get("config_table"):
        raise TemplateError(f"the local stack of {state_file} has no configuration table")
    return Table(state["config_table"], client("dynamodb", state["dynamodb_url"])), str(state["api_key_id"])


def latest_templates(table: Table, tenant: str) -> list[dict[str, Any]]:
    """Each template of a tenant in its newest version, deleted ones left out, by name. A scan:
    the table has no index by tenant, and a command line can afford to read it all."""
    prefix = f"{tenant}#template#"
    newest: dict[str, dict[str, Any]] = {}
    pages = table.client.get_paginator("scan").paginate(
        TableName=table.name,
        FilterExpression="begins_with(pk, :prefix)",
        ExpressionAttributeValues={":prefix": {"S": prefix}},
        ConsistentRead=True,
    )
    for page in pages:
        for item in page.get("Items", []):
            name = item["pk"]["S"].removeprefix(prefix)
            if name not in newest or int(item["version"]["N"]) > int(newest[name]["version"]["N"]):
                newest[name] = item
    found = []
    for name, item in sorted(newest.items()):
        if item.get("deleted", {}).get("BOOL"):
            continue
        spec = json.loads(item["spec"]["S"])
        providers = [p for p in ("aliyun", "ronglian", "polyv") if p in spec]
        found.append({"name": name, "version": int(item["version"]["N"]), "providers": providers})
    return found


# ---------------------------------------------------------------------------------------------
# Admin keys
# ---------------------------------------------------------------------------------------------


def create_admin_key(
    apigateway: Any, target: Target, table: Table, name: str, tenant: str, **plan: Any
) -> tuple[str, str | None]:
    """An API key with a usage plan of its own (`plan`: `create_tenant`'s rate, burst and quota),
    registered as the admin of `tenant` (an API key id of the same API); its id and, this once,
    its value."""
    try:
        apigateway.get_api_key(apiKey=tenant)
    except ClientError as exc:
        raise TemplateError(f"no API key with the id {tenant}: the tenant is an API key id") from exc
    key = create_tenant(apigateway, target, name, **plan, tags={ADMIN_TAG: tenant})
    try:
        AdminKeys(table.name, client=table.client).grant(key.key_id, tenant)
    except (ClientError, BotoCoreError):
        # A key that is no one's admin would only be a tenant nobody asked for.
        delete_tenant(apigateway, target, name)
        raise
    return key.key_id, key.key_value


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _say(line: str = "") -> None:
    print(line)


def where_arguments() -> argparse.ArgumentParser:
    """The options that name a configuration table and a tenant (`resolve_table`), as a parent parser."""
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--stack", help="the gateway's CloudFormation stack")
    where.add_argument("--table", help="the configuration table (skips reading the stack's outputs)")
    where.add_argument("--local", action="store_true", help="the running local stack (make run)")
    where.add_argument("--state", type=Path, default=DEFAULT_STATE_DIR / STATE_FILE, help="with --local")
    where.add_argument("--tenant", help="the tenant's API key id (with --local: the first key's by default)")
    add_session_arguments(where)
    return where


def _parser() -> argparse.ArgumentParser:
    where = where_arguments()

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    put = commands.add_parser("put", parents=[where], help="save a template from a JSON file (a new version)")
    put.add_argument("name")
    put.add_argument("file", type=Path, help="the template as JSON (docs/api.md); - for standard input")
    for command, text in (("get", "a template's newest version"), ("delete", "delete a template")):
        commands.add_parser(command, parents=[where], help=text).add_argument("name")
    commands.add_parser("list", parents=[where], help="the tenant's templates")
    admin = commands.add_parser("admin-key", parents=[where], help="a new admin API key of the tenant")
    admin.add_argument("name", help="the key's name, as a tenant's (scripts/tenants.py)")
    add_plan_arguments(admin)
    return parser


def resolve_table(args: argparse.Namespace, session: Any) -> tuple[Table, str]:
    """The table the command works on, and the tenant it works for."""
    if args.local:
        if args.stack or args.table:
            raise TemplateError("--local goes without --stack and --table")
        table, first_tenant = local_table(args.state)
        return table, args.tenant or first_tenant
    if not (args.stack or args.table):
        raise TemplateError("name the stack (--stack), its table (--table), or --local")
    if not args.tenant:
        raise TemplateError("--tenant: the tenant's API key id")
    name = args.table or stack_table(session.client("cloudformation"), args.stack)
    return Table(name, session.client("dynamodb")), args.tenant


def read_model[M: BaseModel](file: Path, model: type[M], what: str) -> M:
    """A JSON file (- for standard input) read into the gateway's own model, or TemplateError
    naming each field that is wrong."""
    text = sys.stdin.read() if str(file) == "-" else file.read_text()
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or what}: {e['msg']}" for e in exc.errors())
        raise TemplateError(f"{file} is not a valid {what}: {problems}") from None


def run(args: argparse.Namespace, session: Any) -> None:
    table, tenant = resolve_table(args, session)
    with gateway_errors():
        _command(args, session, table, tenant)


@contextlib.contextmanager
def gateway_errors() -> Iterator[None]:
    """The gateway's own errors name the service (DynamoDB is unavailable); a command line, the cause."""
    try:
        yield
    except GatewayError as exc:
        raise TemplateError(f"{exc}{f': {exc.__cause__}' if exc.__cause__ else ''}") from exc


def _command(args: argparse.Namespace, session: Any, table: Table, tenant: str) -> None:
    store = TemplateStore(table.name, client=table.client, cache_seconds=0)
    if args.command == "put":
        saved = store.save(tenant, args.name, read_model(args.file, TemplateSpec, "template"))
        _say(json.dumps(saved.describe(), ensure_ascii=False))
    elif args.command == "get":
        found = store.latest(tenant, args.name)
        if found is None:
            raise TemplateError(f"no template {args.name!r} of tenant {tenant}")
        _say(json.dumps(found.describe(), ensure_ascii=False))
    elif args.command == "delete":
        if not store.delete(tenant, args.name):
            raise TemplateError(f"no template {args.name!r} of tenant {tenant}")
        _say(f"deleted template {args.name} of tenant {tenant}")
    elif args.command == "list":
        _say(f"{'TEMPLATE':<32} {'VERSION':>7}  PROVIDERS")
        for listed in latest_templates(table, tenant):
            _say(f"{listed['name']:<32} {listed['version']:>7}  {', '.join(listed['providers'])}")
    else:
        if not args.stack:
            raise TemplateError(
                "admin-key makes an API key on the stack's API: --stack (make run takes --admin-api-key)"
            )
        target = find_target(session.client("cloudformation"), args.stack)
        key_id, value = create_admin_key(
            session.client("apigateway"),
            target,
            table,
            args.name,
            tenant,
            rate=args.rate,
            burst=args.burst,
            quota=args.quota,
        )
        _say(f"admin key id  {key_id}")
        _say(f"admin key     {value}")
        _say(f"tenant        {tenant}: its templates, with PUT/GET/DELETE /v1/templates/{{name}}")
        _say("The key's value is shown this once: send it as x-api-key on the template routes.")


def main(argv: Sequence[str] | None = None, session: Any = None) -> int:
    return run_command(run, _parser().parse_args(argv), session, refused=(TemplateError, TenantError))


if __name__ == "__main__":
    sys.exit(main())
