"""`LocalStack`'s API keys, worker pools and local settings as configured, and what it refuses before
anything starts: the folder of a stack that runs, a port in use."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from local.processes import StackError
from local.reconcile import seconds
from local.stack import (
    LOCAL_RECEIPT_TOKENS,
    LOCAL_WEBHOOK_SECRET,
    LOCK_FILE,
    STATE_FILE,
    LocalStack,
    StateDir,
    admin_item,
    resolve_api_keys,
)
from smsgw.admin import AdminKeys
from tests.support import free_port

ROOT = Path(__file__).parents[2]


def test_one_key_given_alone_is_the_local_tenant() -> None:
    stack = LocalStack(api_key="local-dev-key")

    assert stack.api_keys == {"local": "local-dev-key"}
    assert (stack.api_key_id, stack.api_key) == ("local", "local-dev-key")
    assert stack.function_concurrency == 2


def test_without_a_key_one_random_key_is_the_local_tenant() -> None:
    first, second = LocalStack().api_keys, LocalStack().api_keys

    assert list(first) == list(second) == ["local"]
    assert first["local"] != second["local"]


def test_several_keys_each_with_its_tenant_the_first_being_the_default() -> None:
    stack = LocalStack(api_keys={"tenant-a": "key-a", "tenant-b": "key-b"}, function_concurrency=3)

    assert stack.api_keys == {"tenant-a": "key-a", "tenant-b": "key-b"}
    assert (stack.api_key_id, stack.api_key) == ("tenant-a", "key-a")
    assert stack.function_concurrency == 3


@pytest.mark.parametrize(
    "entries",
    [
        [(None, "key-a"), ("local", "key-b")],
        [("tenant-a", "same"), ("tenant-b", "same")],
        [("tenant#a", "key-a")],
        [("tenant-a", "")],
    ],
    ids=["id-twice", "value-twice", "bad-id", "no-value"],
)
def test_keys_that_could_not_tell_tenants_apart_are_refused(entries: list[tuple[str | None, str]]) -> None:
    with pytest.raises(ValueError, match="API key"):
        resolve_api_keys(entries)


def test_an_admin_key_is_accepted_beside_the_tenants_and_named_after_the_first() -> None:
    stack = LocalStack(api_keys={"shop-1": "key-1", "shop-2": "key-2"}, admin_api_key="admin-key")

    assert stack.admin_key == ("shop-1-admin", "admin-key")
    assert stack.api_keys == {"shop-1": "key-1", "shop-2": "key-2"}
    assert stack.accepted_api_keys == {"shop-1": "key-1", "shop-2": "key-2", "shop-1-admin": "admin-key"}
    assert LocalStack(api_key="k", admin_api_key="a", admin_api_key_id="boss").admin_key == ("boss", "a")
    assert LocalStack(api_key="k").admin_key is None


@pytest.mark.parametrize(
    ("admin_id", "admin_value"), [(None, "key-1"), ("shop-1", "admin-key"), ("boss#1", "admin-key")]
)
def test_an_admin_key_that_could_not_be_told_apart_is_refused(admin_id: str | None, admin_value: str) -> None:
    with pytest.raises(ValueError, match="API key"):
        LocalStack(api_keys={"shop-1": "key-1"}, admin_api_key=admin_value, admin_api_key_id=admin_id)


class RecordedPut:
    def __init__(self) -> None:
        self.items: list[dict[str, object]] = []

    def put_item(self, *, TableName: str, Item: dict[str, object]) -> None:
        self.items.append(Item)


def test_the_admin_item_is_the_one_the_router_reads() -> None:
    written = RecordedPut()

    AdminKeys("config", client=written).grant("local-admin", "local")

    assert written.items == [admin_item("local-admin", "local")]


def test_make_run_has_an_admin_key_by_default() -> None:
    makefile = (ROOT / "Makefile").read_text()

    assert "\nADMIN_API_KEY ?= local-admin-key\n" in makefile
    assert "--admin-api-key $(ADMIN_API_KEY)" in makefile


def test_the_local_stack_sends_to_hong_kong_too_unless_told_otherwise() -> None:
    assert LocalStack(api_key="k").template.parameters["DefaultAllowedCountries"] == "CN,HK"
    overridden = LocalStack(api_key="k", parameter_overrides={"DefaultAllowedCountries": "CN"})
    assert overridden.template.parameters["DefaultAllowedCountries"] == "CN"


def test_the_receipt_tokens_and_every_tenants_webhook_secret_get_the_local_values() -> None:
    stack = LocalStack(api_keys={"shop-1": "key-1", "shop-2": "key-2"}, admin_api_key="admin-key")

    values = stack.secret_values()

    assert json.loads(values["ReceiptTokenSecret"]) == LOCAL_RECEIPT_TOKENS
    tenants = ["shop-1", "shop-2", "shop-1-admin"]
    assert json.loads(values["WebhookSecret"]) == dict.fromkeys(tenants, LOCAL_WEBHOOK_SECRET)
    assert set(values) == {"ReceiptTokenSecret", "WebhookSecret"}


@pytest.mark.parametrize(("text", "expected"), [("700", 700), ("12m", 720), ("73h", 262_800), ("1.5d", 129_600)])
def test_reconciliation_moves_its_clock_by_a_duration(text: str, expected: float) -> None:
    assert seconds(text) == expected


def test_make_reconcile_runs_reconciliation_on_the_stack_of_state_dir() -> None:
    makefile = (ROOT / "Makefile").read_text()

    assert "-m local.reconcile --state $(STATE_DIR)/state.json $(if $(AHEAD),--ahead $(AHEAD))" in makefile


def test_a_function_needs_at_least_one_worker() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LocalStack(function_concurrency=0)


# -- Refusals before anything starts ---------------------------------------------------------

# A running stack's hold on its folder, as LocalStack.start() takes it, without the engines behind it.
HOLDER = """
import json, os, sys
from pathlib import Path
from local.stack import StateDir
folder = StateDir(Path(sys.argv[1]))
folder.claim()
folder.describe(os.getpid(), "http://127.0.0.1:" + sys.argv[2])
folder.state_file.write_text(json.dumps({"pid": os.getpid(), "sandbox_control_url": "http://127.0.0.1:9"}))
print("ready", flush=True)
sys.stdin.read()
"""


@contextmanager
def running_stack_in(folder: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    holder = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-c", HOLDER, str(folder), str(port)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "ready\n"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def make_run(folder: Path, port: int) -> tuple[subprocess.CompletedProcess[str], float]:
    """`python -m local.stack` as `make run` starts it: how it ended, and how long that took."""
    began = time.monotonic()
    done = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "local.stack", "--port", str(port), "--state-dir", str(folder), "--api-key", "k"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done, time.monotonic() - began


def test_a_second_stack_in_the_same_folder_is_refused_naming_the_running_one(tmp_path: Path) -> None:
    # Given a stack running from a folder, on some port
    with running_stack_in(tmp_path, 3456) as holder:
        state = (tmp_path / STATE_FILE).read_text()

        # When another one starts with the same folder, on a port of its own
        done, _ = make_run(tmp_path, free_port())

        # Then it is refused, naming the running stack, and the running stack's files stay as they were
        assert done.returncode == 1
        assert f"a local stack already runs from {tmp_path} (pid {holder.pid}, API on http://127.0.0.1:3456)" in (
            done.stderr
        )
        assert "--state-dir" in done.stderr
        assert (tmp_path / STATE_FILE).read_text() == state
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE, STATE_FILE]


def test_a_stack_with_a_folder_of_its_own_runs_beside_and_leaves_the_other_alone(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    with running_stack_in(first, 3456):
        state = (first / STATE_FILE).read_text()
        beside = StateDir(second)

        beside.claim()
        beside.state_file.write_text("{}")
        beside.release()

        assert not beside.state_file.exists()
        assert (first / STATE_FILE).read_text() == state


def test_the_folder_of_a_stack_that_was_killed_is_free_again(tmp_path: Path) -> None:
    with running_stack_in(tmp_path, 3456) as holder:
        holder.send_signal(signal.SIGKILL)
        holder.wait()

    folder = StateDir(tmp_path)
    folder.claim()

    # What the killed stack left describes nothing that runs
    assert not folder.state_file.exists()
    folder.release()


def test_a_port_in_use_fails_before_anything_starts_naming_the_port(tmp_path: Path) -> None:
    # Given a port something else listens on
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = LocalStack(api_port=port, state_dir=tmp_path)

        began = time.monotonic()
        with pytest.raises(StackError, match=f"port {port} on 127.0.0.1 is in use") as refused:
            stack.start()
        took = time.monotonic() - began

        done, whole = make_run(tmp_path, port)

    assert took < 1.0
    assert "PORT=" in str(refused.value)
    # Nothing started: no engine wrote a log, and the folder is free for the next stack
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE]
    folder = StateDir(tmp_path)
    folder.claim()
    folder.release()
    # The same from the command line, interpreter start-up and all
    assert done.returncode == 1
    assert f"local stack: port {port} on 127.0.0.1 is in use" in done.stderr
    assert whole < 5.0, whole
