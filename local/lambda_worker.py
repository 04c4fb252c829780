"""One function instance: imports a handler the way the Lambda Python runtime does and serves
invocations on loopback HTTP, so that each function runs in a process of its own, with its own
environment and module state, like a Lambda execution environment.

    python -m local.lambda_worker --code-uri functions/polyv --layer layers/shared \
        --handler app.handler --port 9001

`POST /invoke` takes the event as JSON and answers the handler's result as JSON; a failed invocation
answers Lambda's error document with the `X-Amz-Function-Error: Unhandled` header, as Lambda's
Invoke API does. `GET /health` answers once the handler module has been imported (or failed to).

Like a Lambda execution environment, a worker runs one invocation at a time: a second one waits for
the first to end. Concurrency is more workers (see `local.processes.FunctionPool`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Handler = Callable[[Any, Any], Any]
FUNCTION_ERROR_HEADER = "X-Amz-Function-Error"


class _Server(ThreadingHTTPServer):
    # The default listen backlog of 5 resets connections when many clients arrive at once.
    request_queue_size = 128
    daemon_threads = True


class LambdaContext:
    """The context object of the Lambda Python runtime, read from the same environment variables."""

    def __init__(self, *, timeout_seconds: float) -> None:
        name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "function")
        region = os.environ.get("AWS_REGION", "us-east-1")
        self.function_name = name
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        # The runtime hands this over as the environment variable's string, not an int.
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", f"/aws/lambda/{name}")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def import_path(code_uri: Path, layers: Sequence[Path]) -> list[str]:
    """The folders the runtime puts first on sys.path: the code, then each layer's `python/` folder.

    SAM builds a layer's ContentUri into `python/`; an unbuilt layer folder is importable as is.
    """
    paths = [code_uri]
    for layer in layers:
        paths.append(layer / "python" if (layer / "python").is_dir() else layer)
    return [str(p.resolve()) for p in paths]


def load_handler(code_uri: Path, layers: Sequence[Path], handler: str) -> Handler:
    """Import `module.function` from the function's code, as the runtime does on a cold start."""
    sys.path[:0] = [p for p in import_path(code_uri, layers) if p not in sys.path]
    module_name, _, function_name = handler.rpartition(".")
    if not module_name:
        raise ValueError(f"Bad handler '{handler}': expected module.function")
    module = importlib.import_module(module_name.replace("/", "."))
    function: Handler = getattr(module, function_name)
    return function


def error_document(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": traceback.format_exception(exc)[1:],
    }


def invoke(handler: Handler, event: Any, context: LambdaContext) -> tuple[bytes, bool]:
    """Run the handler once: the JSON answer, and whether it is an error document."""
    try:
        result = handler(event, context)
    except Exception as exc:
        # The runtime logs an unhandled error in the function's log stream before answering.
        traceback.print_exc()
        return json.dumps(error_document(exc) | {"requestId": context.aws_request_id}).encode(), True
    try:
        return json.dumps(result).encode(), False
    except (TypeError, ValueError) as exc:
        document = error_document(exc, "Runtime.MarshalError")
        document["errorMessage"] = f"Unable to marshal response: {exc}"
        return json.dumps(document).encode(), True


class Worker:
    """Holds the imported handler, or the error that kept it from importing."""

    def __init__(self, code_uri: Path, layers: Sequence[Path], handler: str, timeout: float) -> None:
        self.timeout = timeout
        # Handlers keep per-invocation state in module-level objects (Powertools' Logger and Metrics),
        # which Lambda makes safe by never running two invocations in one environment.
        self._one_at_a_time = threading.Lock()
        self.handler: Handler | None = None
        self.init_error: dict[str, Any] | None = None
        try:
            self.handler = load_handler(code_uri, layers, handler)
        except Exception as exc:
            traceback.print_exc()
            kind = "Runtime.HandlerNotFound" if isinstance(exc, AttributeError) else "Runtime.ImportModuleError"
            module_name = handler.rpartition(".")[0]
            self.init_error = error_document(exc, kind)
            self.init_error["errorMessage"] = f"Unable to import module '{module_name}': {exc}"

    def invoke(self, event: Any) -> tuple[bytes, bool]:
        if self.handler is None:
            return json.dumps(self.init_error).encode(), True
        with self._one_at_a_time:
            # The clock starts when the invocation does, not while it waits for the previous one.
            return invoke(self.handler, event, LambdaContext(timeout_seconds=self.timeout))


def make_server(worker: Worker, host: str, port: int) -> ThreadingHTTPServer:
    class RequestHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/health":
                self._answer(404, b'{"message": "not found"}')
                return
            self._answer(200, json.dumps({"ready": True, "init_error": worker.init_error is not None}).encode())

        def do_POST(self) -> None:
            if self.path != "/invoke":
                self._answer(404, b'{"message": "not found"}')
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                event = json.loads(self.rfile.read(length) or b"null")
            except ValueError as exc:
                self._answer(400, json.dumps({"message": f"event is not JSON: {exc}"}).encode())
                return
            body, failed = worker.invoke(event)
            self._answer(200, body, {FUNCTION_ERROR_HEADER: "Unhandled"} if failed else {})

        def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            # The function's log stream is for the handler's own logs, not for access lines.
            return

    server = _Server((host, port), RequestHandler)
    server.daemon_threads = True
    return server


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code-uri", type=Path, required=True, help="the function's CodeUri folder")
    parser.add_argument("--handler", required=True, help="module.function, as in the template")
    parser.add_argument("--layer", type=Path, action="append", default=[], help="a layer's folder (repeatable)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--timeout", type=float, default=3.0, help="the function's Timeout, in seconds")
    args = parser.parse_args(argv)

    code_uri = args.code_uri.resolve()
    layers = [layer.resolve() for layer in args.layer]
    # `-m` put the repository on sys.path; a Lambda instance sees only its code and its layers.
    repository = str(Path(__file__).resolve().parents[1])
    sys.path[:] = [p for p in sys.path if p not in ("", repository)]
    # The runtime starts in the code folder (/var/task); relative file reads behave the same.
    os.chdir(code_uri)
    worker = Worker(code_uri, layers, args.handler, args.timeout)
    server = make_server(worker, args.host, args.port)
    serving = threading.Thread(target=server.serve_forever, name="invocations", daemon=True)
    serving.start()
    try:
        serving.join()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
