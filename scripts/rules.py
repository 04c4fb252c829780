"""A tenant's abuse rules and opt-out list, straight in the stack's configuration table: what its
admin API key does with `PUT/GET /v1/rules` and `PUT/GET/DELETE /v1/opt-outs/{phone}`.

    python scripts/rules.py get --tenant a1b2c3d4e5 --stack sms-gateway
    python scripts/rules.py put rules.json --tenant a1b2c3d4e5 --stack sms-gateway
    python scripts/rules.py opt-out 13800138000 --tenant a1b2c3d4e5 --stack sms-gateway
    python scripts/rules.py opted-out 13800138000 --tenant a1b2c3d4e5 --stack sms-gateway
    python scripts/rules.py opt-in 13800138000 --tenant a1b2c3d4e5 --stack sms-gateway
    python scripts/rules.py get --local                 # the stack `make run` runs, its first tenant

Rules are checked and stored by the gateway's own code (docs/abuse.md has their fields); the
functions read a tenant's rules through a cache of a minute, an opt-out at once. The table and the
tenant are named as for scripts/templates.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Run as a file, this script sees neither the gateway's package (the layer) nor the repository's
# other modules: rules are checked and stored by the same code as the functions'.
ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "layers" / "shared"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from scripts.templates import TemplateError, gateway_errors, read_model, resolve_table, where_arguments  # noqa: E402
from scripts.tenants import TenantError, run_command  # noqa: E402
from smsgw import phones  # noqa: E402
from smsgw.phones import PhoneError  # noqa: E402
from smsgw.rules import Rules, RuleStore  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    where = where_arguments()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("get", parents=[where], help="the tenant's rules (the defaults where it set none)")
    put = commands.add_parser("put", parents=[where], help="replace the tenant's rules with a JSON file's")
    put.add_argument("file", type=Path, help="the rules as JSON (docs/abuse.md); - for standard input")
    for command, text in (
        ("opt-out", "opt a number out: sends to it answer opted_out"),
        ("opted-out", "whether a number is opted out, since when and why"),
        ("opt-in", "opt a number back in"),
    ):
        commands.add_parser(command, parents=[where], help=text).add_argument("phone", help="any spelling")
    return parser


def _number(text: str) -> str:
    try:
        return phones.international(text)
    except PhoneError as exc:
        raise TemplateError(f"{text!r} is not a phone number: {exc}") from None


def run(args: argparse.Namespace, session: Any) -> None:
    table, tenant = resolve_table(args, session)
    store = RuleStore(table.name, client=table.client, default_countries=frozenset(), cache_seconds=0)
    with gateway_errors():
        _command(args, store, tenant)


def _command(args: argparse.Namespace, store: RuleStore, tenant: str) -> None:
    if args.command in ("get", "put"):
        if args.command == "put":
            store.save(tenant, read_model(args.file, Rules, "rules"))
        print(json.dumps(store.rules(tenant).model_dump(mode="json", exclude_none=True), ensure_ascii=False))
        return
    number = _number(args.phone)
    if args.command == "opt-out":
        store.opt_out(tenant, number, reason="requested")
        print(f"{number} opted out for tenant {tenant}")
    elif args.command == "opted-out":
        found = store.opted_out(tenant, number)
        if found is None:
            raise TemplateError(f"{number} is not opted out for tenant {tenant}")
        print(json.dumps({"phone_number": number, "opted_out": True, **found}))
    elif not store.opt_in(tenant, number):
        raise TemplateError(f"{number} is not opted out for tenant {tenant}")
    else:
        print(f"{number} opted back in for tenant {tenant}")


def main(argv: Sequence[str] | None = None, session: Any = None) -> int:
    return run_command(run, _parser().parse_args(argv), session, refused=(TemplateError, TenantError))


if __name__ == "__main__":
    sys.exit(main())
