"""`python -m local.invoke`: one handler in process, with its template environment, against the
stack described by a state file (here: the emulator fixture's echo handler, no engines needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "apigw"
EVENT = ROOT / "events" / "polyv-send.json"


def invoke(tmp_path: Path, state: dict[str, Any], function: str = "EchoFunction") -> subprocess.CompletedProcess[str]:
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps(state))
    command = ["-m", "local.invoke", "--function", function, "--event", str(EVENT), "--state", str(state_file)]
    return subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "AWS_PROFILE": "someone-elses", "AWS_ENDPOINT_URL_SQS": "http://elsewhere"},
    )


def running_stack(**overrides: Any) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "template": str(FIXTURES / "template.yaml"),
        "parameters": {"Greeting": "hi"},
        "resources": {},
        "endpoints": {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8"},
        **overrides,
    }


def test_the_handler_gets_the_event_and_its_environment_and_the_result_is_printed(tmp_path: Path) -> None:
    # Given a running stack and an event file
    # When one function is invoked with it
    done = invoke(tmp_path, running_stack())

    # Then stdout holds the handler's result alone, and the handler saw the stack's environment
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["statusCode"] == 200
    answer = json.loads(result["body"])
    assert answer["event"] == json.loads(EVENT.read_text())
    assert answer["environment"]["GREETING"] == "hi"
    assert answer["environment"]["AWS_LAMBDA_FUNCTION_NAME"] == "EchoFunction"
    assert answer["environment"]["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"
    assert answer["environment"]["AWS_ENDPOINT_URL_SQS"] is None
    assert answer["environment"]["AWS_PROFILE"] is None
    assert answer["context"]["function_name"] == "EchoFunction"
    # The handler's own output is its log, on stderr
    assert '"message": "echo"' in done.stderr


def test_a_failing_handler_prints_lambdas_error_document(tmp_path: Path) -> None:
    done = invoke(tmp_path, running_stack(), function="CrashFunction")

    assert done.returncode == 1
    error = json.loads(done.stdout)
    assert error["errorType"] == "RuntimeError"
    assert error["errorMessage"] == "the handler failed"


def test_without_a_running_stack_it_says_how_to_start_one(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    done = invoke(tmp_path, running_stack(pid=int(gone.stdout)))

    assert done.returncode == 2
    assert "make run" in done.stderr
