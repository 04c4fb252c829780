"""Put a message on one of the running local stack's queues.

    python -m local.enqueue PolyvQueue '{"phone_numbers": ["13800138000"], ...}'
    python -m local.enqueue PolyvQueue @body.json

The stack's addresses come from `.local-stack/state.json`, written by `make run`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import boto3

STATE = Path(".local-stack/state.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("queue", help="the queue's logical id in template.yaml, e.g. PolyvQueue")
    parser.add_argument("body", help="the message body, or @FILE to read it from a file")
    parser.add_argument("--state", type=Path, default=STATE)
    args = parser.parse_args(argv)
    if not args.state.exists():
        parser.error(f"{args.state} not found: start the local stack with `make run` first")
    state = json.loads(args.state.read_text())
    queues: dict[str, str] = state.get("queues", {})
    if args.queue not in queues:
        parser.error(f"no queue {args.queue!r}; the stack has: {', '.join(sorted(queues))}")
    body = Path(args.body[1:]).read_text() if args.body.startswith("@") else args.body
    sqs = boto3.client(
        "sqs",
        endpoint_url=state["moto_url"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - moto accepts any credentials
    )
    answer = sqs.send_message(QueueUrl=queues[args.queue], MessageBody=body)
    print(json.dumps({"queue": args.queue, "message_id": answer["MessageId"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
