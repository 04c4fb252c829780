"""SnapStart's hooks (`smsgw.snapshot`), run as Lambda runs them: before the snapshot a function
loads what its first requests need and opens, reads and keeps no socket, credential or client;
each copy restored from the snapshot reseeds every generator it holds, so that two copies share no
generator state, and drops every client and session it finds."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from smsgw import connections, runtime, snapshot
from smsgw.providers.base import new_nonce

ROOT = Path(__file__).parents[2]
# Each function and the requests its resolver is shown before the snapshot (functions/*/app.py).
FUNCTIONS = {
    "polyv": 1,
    "aliyun": 2,
    "ronglian": 1,
    "router": 3,
    "messages": 1,
    "receipts": 2,
    "webhooks": 0,
    "reconcile": 0,
}
# Lambda's hooks module, as the child below stands it in; every socket the hook would open and
# every AWS credential or secret it would read is recorded.
CHILD = """
import json, socket, sys, types
hooks = {}
sys.modules["snapshot_restore_py"] = types.SimpleNamespace(
    register_before_snapshot=lambda f: hooks.setdefault("before", f),
    register_after_restore=lambda f: hooks.setdefault("after", f),
)
import botocore.session
from smsgw.credentials import CredentialStore
read = []
resolve, get = botocore.session.Session.get_credentials, CredentialStore.get
botocore.session.Session.get_credentials = lambda self: read.append("aws") or resolve(self)
CredentialStore.get = lambda self, **kw: read.append("secret") or get(self, **kw)

import app
from smsgw import api, connections, runtime, snapshot

opened = []
class Recorded(socket.socket):
    def __init__(self, *args, **kwargs):
        opened.append(repr(args))
        raise OSError("no socket before the snapshot")
socket.socket = Recorded
shown = []
warm = api.warm
api.warm = lambda resolver, requests: shown.extend(requests) or warm(resolver, requests)

hooks["before"]()
print(json.dumps({
    "hooks": {name: f.__qualname__ for name, f in hooks.items()},
    "opened": opened,
    "read": read,
    "held": len(connections.live()),
    "composed": runtime.runtime.cache_info().currsize + runtime.dynamodb_client.cache_info().currsize,
    "shown": shown,
    "loaded": [name for name in snapshot.DEFERRED if name in sys.modules],
    "generators": len(snapshot._snapshot.generators),
}))
"""


@pytest.fixture(scope="module")
def before_snapshots() -> dict[str, dict[str, Any]]:
    """Each function imported by a fresh interpreter of its own, its before-snapshot hook run, all at once."""
    children = {}
    for function in FUNCTIONS:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env |= {
            "PYTHONPATH": os.pathsep.join([str(ROOT / "functions" / function), str(ROOT / "layers" / "shared")]),
            "PROVIDER": function,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        children[function] = subprocess.Popen(  # noqa: S603 - this interpreter, a fixed script
            [sys.executable, "-c", CHILD],
            env=env,
            cwd=ROOT / "functions" / function,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    found = {}
    for function, child in children.items():
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        found[function] = json.loads(out.splitlines()[-1])
    return found


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_before_the_snapshot_a_function_loads_its_first_requests_needs_and_connects_nothing(
    before_snapshots: dict[str, dict[str, Any]], function: str
) -> None:
    found = before_snapshots[function]

    assert found["hooks"] == {"before": "before_snapshot", "after": "after_restore"}
    assert found["opened"] == []
    assert found["read"] == []
    assert (found["held"], found["composed"]) == (0, 0)
    assert len(found["shown"]) == FUNCTIONS[function]
    assert found["loaded"] == list(snapshot.DEFERRED)
    # random's own generator, at least (the X-Ray SDK's samplers' too where tracing is on: off, it is not loaded)
    assert found["generators"] >= 1


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The hooks' state as a function's first import leaves it, this test's alone."""
    monkeypatch.setattr(snapshot, "_snapshot", snapshot._Snapshot())
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    yield
    boto3.DEFAULT_SESSION = None


def test_the_hooks_are_registered_with_lambdas_python_runtime_once_and_nowhere_else(
    fresh: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # importing it fails, as outside Lambda
    assert snapshot.register() is False

    registered: list[Callable[[], None]] = []
    lambdas = types.SimpleNamespace(
        register_before_snapshot=registered.append, register_after_restore=registered.append
    )
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", lambdas)

    assert snapshot.register() is True
    assert snapshot.register() is True
    assert registered == [snapshot.before_snapshot, snapshot.after_restore]


# A library's generator, made before the snapshot as the X-Ray SDK's samplers are.
LIBRARY = random.Random()


def _draws() -> dict[str, Any]:
    """What a restored copy makes that must differ from any other copy's."""
    return {
        "random": random.random(),  # what botocore's and the quota ledger's retry jitter read
        "library": LIBRARY.random(),
        "nonce": new_nonce(),  # Aliyun's SignatureNonce
        "token": uuid.uuid4().hex,  # idempotency owner tokens, DynamoDB ClientRequestTokens
    }


def _two_copies(restore: bool) -> list[dict[str, Any]]:
    """Two processes forked from this one, as two execution environments resumed from one snapshot.
    A fork reseeds random's own generator in the child (os.register_at_fork), which a restore does
    not: each child takes the state back first."""
    copies = []
    state = random.getstate()  # the snapshot's, taken once: a thread left running may draw meanwhile
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the copy reports through the pipe
            try:
                random.setstate(state)
                if restore:
                    snapshot.after_restore()
                os.write(write, json.dumps(_draws()).encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            copies.append(json.loads(pipe.read()))
        assert os.waitpid(pid, 0)[1] == 0
    return copies


def test_two_copies_of_one_snapshot_draw_the_same_numbers_unless_restored_by_the_hook(fresh: None) -> None:
    snapshot.before_snapshot()

    first, second = _two_copies(restore=False)
    assert (first["random"], first["library"]) == (second["random"], second["library"])
    # ids and nonces come from os.urandom, never from a state the snapshot holds
    assert first["nonce"] != second["nonce"]
    assert first["token"] != second["token"]

    first, second = _two_copies(restore=True)
    assert first["random"] != second["random"]
    assert first["library"] != second["library"]
    assert first["nonce"] != second["nonce"]
    assert first["token"] != second["token"]


def test_ids_and_nonces_read_os_urandom_at_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "urandom", lambda n: bytes(range(n)))
    expected = uuid.UUID(bytes=bytes(range(16)), version=4)

    assert uuid.uuid4() == expected
    assert new_nonce() == str(expected)


class Pool:
    """A client or session holding a connection pool."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_restored_copy_closes_and_forgets_every_client_and_session(
    fresh: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "before-the-snapshot")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "before-the-snapshot")
    client = runtime.dynamodb_client()
    pools = [connections.held(Pool()), connections.held(Pool())]
    assert len(connections.live()) == 3

    snapshot.after_restore()

    assert [p.closed for p in pools] == [True, True]
    assert connections.live() == []
    assert runtime.dynamodb_client.cache_info().currsize == 0
    assert runtime.dynamodb_client() is not client
    runtime.reset()


def test_a_restored_copy_replaces_boto3s_session_only_if_it_holds_credentials(
    fresh: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot.before_snapshot()
    kept = boto3.DEFAULT_SESSION
    models = snapshot._snapshot.core.get_component("data_loader")

    snapshot.after_restore()
    assert boto3.DEFAULT_SESSION is kept

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "before-the-snapshot")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "before-the-snapshot")
    assert kept is not None
    assert kept.get_credentials() is not None
    snapshot.after_restore()

    assert boto3.DEFAULT_SESSION is not kept
    assert snapshot._snapshot.core._credentials is None
    assert snapshot._snapshot.core.get_component("data_loader") is models
