"""Lambda SnapStart (the `SnapStart` template parameter, docs/configuration.md#snapstart): what a
function's snapshot holds, and what each copy restored from it makes its own.

Before the snapshot, a function loads what its first requests would otherwise load: the modules a
send, a queued batch and the docs page import, botocore's models of the services it calls, and its
resolver (each route's validation built by a request it refuses). Nothing is sent and nothing
connects: no socket is opened, no AWS credential or secret is read, no client or session is kept.

After a restore, each copy reseeds every pseudo-random generator the snapshot holds, closes and
forgets every client and session (`smsgw.connections`) and what was composed from them (the cached
secrets included, `runtime.reset`), and replaces boto3's session if it holds AWS credentials: two
copies of one snapshot share no generator state, socket or credential, and each resolves its own on
its first request. The ids and nonces the gateway makes come from `uuid.uuid4`, which reads
`os.urandom` at each call, never from state the snapshot could copy.

`snapshot_restore_py` exists only in Lambda's Python runtime: elsewhere nothing is registered, and
the hooks stay callable (the tests run them in process).
"""

from __future__ import annotations

import gc
import importlib
import os
import random
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.session
from botocore import UNSIGNED
from botocore.config import Config

from smsgw import connections, runtime
from smsgw.observability import logger

# What a function would import on its first request of each kind (tests/unit/test_lazy_imports.py):
# a queued batch, the docs page, a number outside mainland China, a request with a callback_url.
DEFERRED = (
    "smsgw.queue",
    "aws_lambda_powertools.utilities.batch",
    "aws_lambda_powertools.event_handler.openapi.models",
    "aws_lambda_powertools.event_handler.openapi.swagger_ui",
    "phonenumbers",
    "smsgw.webhooks",
)
# The AWS services the functions call: their models, endpoint rules and retry settings.
SERVICES = ("dynamodb", "sqs", "secretsmanager")
# A client that signs nothing reads no credentials: building one only loads its service's model.
_MODEL_ONLY = Config(signature_version=UNSIGNED)


@dataclass
class _Snapshot:
    warmups: list[Callable[[], None]] = field(default_factory=list)
    generators: weakref.WeakSet[random.Random] = field(default_factory=weakref.WeakSet)
    session: Any = None
    """boto3's default session as the snapshot holds it, and its botocore session: service models
    loaded, no credentials resolved."""
    core: Any = None
    registered: bool = False


_snapshot = _Snapshot()


def on_snapshot(warm: Callable[[], None]) -> None:
    """A function's own preparation, run before its snapshot (its resolver's refused requests)."""
    _snapshot.warmups.append(warm)


def before_snapshot() -> None:
    """Load what the first requests need; open, read and keep nothing that is a secret or a socket."""
    for name in DEFERRED:
        importlib.import_module(name)
    _load_service_models()
    for warm in _snapshot.warmups:
        warm()
    # Every generator the snapshot will hold, whoever made it (random's own, the X-Ray SDK's
    # samplers): each restored copy reseeds them. SystemRandom reads os.urandom and has no state.
    _snapshot.generators = weakref.WeakSet(
        o for o in gc.get_objects() if isinstance(o, random.Random) and not isinstance(o, random.SystemRandom)
    )
    logger.info("ready for the snapshot", extra={"modules": len(DEFERRED), "warmups": len(_snapshot.warmups)})


def after_restore() -> None:
    """Make this copy of the snapshot its own: new generator states, no connection or credential from before."""
    reseeded = reseed()
    closed = connections.close_all()
    runtime.reset()
    renewed = _forget_aws_credentials()
    logger.info("restored from the snapshot", extra={"reseeded": reseeded, "closed": closed, "session": renewed})


def reseed() -> int:
    """Seed random's own generator, and every other one the snapshot holds, from os.urandom; how
    many others there were."""
    random.seed(os.urandom(32))
    generators = list(_snapshot.generators)
    for generator in generators:
        generator.seed(os.urandom(32))
    return len(generators)


def register() -> bool:
    """Register the hooks with Lambda's Python runtime, once (SnapStart runs them where it is on);
    whether they are registered: not outside Lambda."""
    if _snapshot.registered:
        return True
    try:
        hooks = importlib.import_module("snapshot_restore_py")
    except ImportError:
        return False
    hooks.register_before_snapshot(before_snapshot)
    hooks.register_after_restore(after_restore)
    _snapshot.registered = True
    return True


def _load_service_models() -> None:
    """boto3's default session with the models of SERVICES loaded, and no credentials resolved."""
    _use_session(botocore.session.get_session())
    for service in SERVICES:
        boto3.client(service, config=_MODEL_ONLY).close()


def _forget_aws_credentials() -> bool:
    """A new default session, sharing the loaded models, unless the snapshot's own is still the
    default and has resolved no credentials (a new one costs tens of milliseconds of a restore);
    whether it was replaced. botocore keeps a session's credentials in `_credentials`."""
    kept = _snapshot.core
    if kept is not None and boto3.DEFAULT_SESSION is _snapshot.session and getattr(kept, "_credentials", None) is None:
        return False
    session = botocore.session.get_session()
    if kept is not None:
        session.register_component("data_loader", kept.get_component("data_loader"))
    _use_session(session)
    return True


def _use_session(core: botocore.session.Session) -> None:
    boto3.setup_default_session(botocore_session=core)
    _snapshot.session, _snapshot.core = boto3.DEFAULT_SESSION, core
