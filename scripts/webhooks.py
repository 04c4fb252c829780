"""Each tenant's webhook signing secret, in the stack's WebhookSecret: `{"<API key id>": "whsec_…"}`.

    python scripts/webhooks.py set --tenant a1b2c3d4e5 --stack sms-gateway      # a new secret, shown once
    python scripts/webhooks.py set --tenant a1b2c3d4e5 --stack sms-gateway --secret whsec_...
    python scripts/webhooks.py remove --tenant a1b2c3d4e5 --stack sms-gateway
    python scripts/webhooks.py set --local                # the stack `make run` runs, its first tenant

A secret is `whsec_` and a base64 key (Standard Webhooks); the webhook function reads the secret
again within SecretMaxAgeSeconds, so a new one signs within five minutes, and a tenant without one
gets no webhooks. The secret's ARN comes from the stack's outputs (WebhookSecretArn; `--secret-id`
skips that lookup), or from `.local-stack/state.json` with `--local`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from local.bootstrap import client  # noqa: E402
from local.invoke import NoStack, read_state  # noqa: E402
from local.stack import DEFAULT_STATE_DIR, STATE_FILE  # noqa: E402
from scripts.tenants import TenantError, add_session_arguments, run_command, stack_outputs  # noqa: E402

PREFIX = "whsec_"
KEY_BYTES = 32


class WebhookError(Exception):
    """A request this script refuses, or a secret it cannot find; the message says which."""


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def checked(secret: str) -> str:
    """A signing secret as Standard Webhooks has it: `whsec_` and at least 16 bytes of base64."""
    try:
        key = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except binascii.Error:
        key = b""
    if not secret.startswith(PREFIX) or len(key) < 16:
        raise argparse.ArgumentTypeError("a signing secret is whsec_ and the base64 of at least 16 bytes")
    return secret


def _parser() -> argparse.ArgumentParser:
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--stack", help="the gateway's CloudFormation stack")
    where.add_argument("--secret-id", help="WebhookSecret's ARN (skips reading the stack's outputs)")
    where.add_argument("--local", action="store_true", help="the running local stack (make run)")
    where.add_argument("--state", type=Path, default=DEFAULT_STATE_DIR / STATE_FILE, help="with --local")
    where.add_argument("--tenant", help="the tenant's API key id (with --local: the first key's by default)")
    add_session_arguments(where)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    put = commands.add_parser("set", parents=[where], help="give the tenant a signing secret (a new one by default)")
    put.add_argument("--secret", type=checked, help="this secret rather than a new one")
    commands.add_parser("remove", parents=[where], help="take the tenant's signing secret away: no more webhooks")
    return parser


def resolve(args: argparse.Namespace, session: Any) -> tuple[Any, str, str]:
    """Secrets Manager, WebhookSecret's id and the tenant."""
    if args.local:
        try:
            state = read_state(args.state)
        except NoStack as exc:
            raise WebhookError(str(exc)) from exc
        secrets_manager = client("secretsmanager", state["moto_url"])
        return secrets_manager, state["resources"]["WebhookSecret"]["ref"], args.tenant or str(state["api_key_id"])
    if not args.tenant:
        raise WebhookError("--tenant: the tenant's API key id")
    secret_id = args.secret_id
    if not secret_id:
        if not args.stack:
            raise WebhookError("name the stack (--stack), WebhookSecret (--secret-id), or --local")
        secret_id = stack_outputs(session.client("cloudformation"), args.stack).get("WebhookSecretArn")
        if not secret_id:
            raise WebhookError(f"stack {args.stack} has no WebhookSecretArn output; pass --secret-id")
    return session.client("secretsmanager"), secret_id, args.tenant


def run(args: argparse.Namespace, session: Any) -> None:
    secrets_manager, secret_id, tenant = resolve(args, session)
    current = json.loads(secrets_manager.get_secret_value(SecretId=secret_id)["SecretString"] or "{}")
    if args.command == "remove":
        if current.pop(tenant, None) is None:
            raise WebhookError(f"tenant {tenant} has no signing secret")
        secrets_manager.put_secret_value(SecretId=secret_id, SecretString=json.dumps(current))
        print(f"tenant {tenant} has no signing secret any more: its webhooks stop")
        return
    secret = args.secret or new_secret()
    secrets_manager.put_secret_value(SecretId=secret_id, SecretString=json.dumps({**current, tenant: secret}))
    print(f"tenant  {tenant}")
    print(f"secret  {secret}")
    print("Verify each webhook's signature with it (docs/webhooks.md); it is shown this once.")


def main(argv: Sequence[str] | None = None, session: Any = None) -> int:
    return run_command(run, _parser().parse_args(argv), session, refused=(WebhookError, TenantError))


if __name__ == "__main__":
    sys.exit(main())
