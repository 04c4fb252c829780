"""What a cold start imports: each provider function's module loads what a send needs, and leaves
the OpenAPI document and Swagger UI (the docs route), the queue consumer (SQS batches) and
libphonenumber (numbers outside mainland China) to the first request that uses them; with tracing
off, the X-Ray SDK is not loaded at all, nor the parts of Powertools the gateway does not use
(smsgw.lazy_packages)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[2]
DEFERRED = (
    "aws_lambda_powertools.event_handler.openapi.models",
    "aws_lambda_powertools.event_handler.openapi.swagger_ui",
    "smsgw.queue",
    "aws_lambda_powertools.utilities.batch",
    # libphonenumber reads numbers outside mainland China only
    "phonenumbers",
    # webhooks: a request that names a callback_url
    "smsgw.webhooks",
    # tracing is off
    "aws_xray_sdk.core",
    "wrapt",
    # Powertools' other resolvers and event classes, and parameter providers other than Secrets Manager's
    "aws_lambda_powertools.event_handler.appsync",
    "aws_lambda_powertools.event_handler.bedrock_agent",
    "aws_lambda_powertools.utilities.data_classes.s3_event",
    "aws_lambda_powertools.utilities.data_classes.kinesis_firehose_event",
    "aws_lambda_powertools.utilities.parameters.ssm",
    "asyncio",
)
CHILD = """
import json, sys
import app
print(json.dumps(sorted(name for name in sys.modules if name in {names!r})))
"""


def cold_start(function: str, script: str, **environ: str) -> Any:
    """What `script` prints last, in a fresh interpreter that imports the function as Lambda would."""
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"} | {
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions" / function), str(ROOT / "layers" / "shared")]),
        "PROVIDER": function,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        **environ,
    }
    child = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", script],
        env=env,
        cwd=ROOT / "functions" / function,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(child.stdout.splitlines()[-1])


@pytest.mark.parametrize("function", ["polyv", "aliyun", "ronglian"])
def test_a_cold_start_imports_neither_the_docs_nor_the_queue_consumer(function: str) -> None:
    assert cold_start(function, CHILD.format(names=set(DEFERRED))) == []


TRACED = """
import json, sys
import app
inner = app.handler.__wrapped__  # under the Logger's decorator
print(json.dumps(["aws_xray_sdk.core" in sys.modules, inner.__code__.co_filename.rsplit("/", 2)[-2:]]))
"""


@pytest.mark.parametrize(
    ("disabled", "expected"), [("false", [True, ["tracing", "tracer.py"]]), ("true", [False, ["smsgw", "api.py"]])]
)
def test_the_handler_is_traced_when_tracing_is_on_and_the_sdk_loaded_only_then(
    disabled: str, expected: list[object]
) -> None:
    traced = cold_start(
        "polyv",
        TRACED,
        POWERTOOLS_TRACE_DISABLED=disabled,
        LAMBDA_TASK_ROOT=str(ROOT / "functions" / "polyv"),
        AWS_XRAY_CONTEXT_MISSING="IGNORE_ERROR",
    )

    assert traced == expected


PLUGINS = """
import json
import app
from pydantic.plugin import _loader
print(json.dumps(_loader._plugins is None))
"""


def test_a_cold_start_never_looks_for_pydantic_plugins() -> None:
    assert cold_start("polyv", PLUGINS) is True


PHONES = """
import json, sys
from smsgw import phones
e164 = phones.international("+85291234567")
print(json.dumps([e164, sorted(m for m in sys.modules if m.startswith("phonenumbers."))]))
"""


def test_a_number_outside_mainland_china_loads_what_libphonenumber_reads_it_with_alone() -> None:
    e164, loaded = cold_start("aliyun", PHONES)

    assert e164 == "+85291234567"
    assert "phonenumbers.phonenumberutil" in loaded
    assert not {"phonenumbers.asyoutypeformatter", "phonenumbers.phonenumbermatcher"} & set(loaded)
