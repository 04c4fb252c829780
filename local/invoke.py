"""Run one handler in this process with an event file, against the running local stack: the
Docker-free twin of `sam local invoke`.

    python -m local.invoke --function PolyvFunction --event events/polyv-send.json

The function gets the environment the stack gives its worker (resolved from template.yaml and the
resources in .local-stack/state.json, and the stack's own variables). The handler's logs go to
stderr, its result to stdout as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from local.lambda_worker import LambdaContext, error_document, load_handler
from local.processes import function_environment
from local.stack import DEFAULT_STATE_DIR, STATE_FILE
from local.template import Physical, Template


class NoStack(Exception):
    """No local stack is running."""


def read_state(path: Path) -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise NoStack(f"no local stack is running ({path} does not exist): start one with `make run`") from None
    try:
        os.kill(int(state["pid"]), 0)
    except ProcessLookupError:
        raise NoStack(f"the local stack in {path} is gone (pid {state['pid']}): start one with `make run`") from None
    return state


def prepare(function_id: str, state: dict[str, Any]) -> tuple[Template, dict[str, str]]:
    """The function's template and its full environment against the running stack."""
    template = Template.load(Path(state["template"]), state.get("parameters"))
    functions = template.functions()
    if function_id not in functions:
        raise SystemExit(f"unknown function {function_id}; the template has: {', '.join(functions)}")
    resources = {name: Physical.from_json(data) for name, data in state["resources"].items()}
    variables = {**template.environment(function_id, resources), **state.get("environment", {})}
    return template, function_environment(functions[function_id], variables, state["endpoints"])


def run(
    function_id: str, event: Any, state: dict[str, Any], *, before: Callable[[], None] | None = None
) -> tuple[Any, bool]:
    """Invoke the handler once: its result, and whether the invocation failed. `before` runs once
    the handler is loaded, in its environment, just before the invocation."""
    template, environment = prepare(function_id, state)
    spec = template.functions()[function_id]
    # Nothing from the developer's shell (a profile, other endpoints) may redirect the function.
    for name in [n for n in os.environ if n.startswith(("AWS_", "POWERTOOLS_"))]:
        del os.environ[name]
    os.environ.update(environment)
    # The runtime starts in the code folder (/var/task).
    os.chdir(spec.code_uri)
    with contextlib.redirect_stdout(sys.stderr):
        handler = load_handler(spec.code_uri, spec.layers, spec.handler)
        context = LambdaContext(timeout_seconds=spec.timeout)
        try:
            if before is not None:
                before()
            return handler(event, context), False
        except Exception as exc:
            return error_document(exc) | {"requestId": context.aws_request_id}, True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.invoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--function", required=True, help="the function's logical id, e.g. PolyvFunction")
    parser.add_argument("--event", type=Path, required=True, help="an event file, e.g. events/polyv-send.json")
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE_DIR / STATE_FILE)
    args = parser.parse_args(argv)

    event = json.loads(args.event.read_text())
    try:
        state = read_state(args.state)
    except NoStack as exc:
        print(exc, file=sys.stderr)
        return 2
    result, failed = run(args.function, event, state)
    try:
        output = json.dumps(result, indent=2, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        failed, output = (
            True,
            json.dumps(
                {"errorMessage": f"Unable to marshal response: {exc}", "errorType": "Runtime.MarshalError"}, indent=2
            ),
        )
    print(output)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
