"""Idempotent sends with Powertools' idempotency utility on DynamoDB.

A caller's key is scoped by tenant and route; the payload is validated, so the same key with
another body is refused. What a send answered is stored and replayed for 24 h, except answers
where provably nothing was sent (quota exhausted, provider unreachable): a caller retrying those
with the same key should get a real second attempt.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import boto3
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceConnectionError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from smsgw.errors import DependencyUnavailable, GatewayError

Answer = dict[str, Any]
"""`{"status": int, "headers": {...}, "body": {...}}`: an API answer as it is stored and replayed."""

# A fixed User-Agent: botocore otherwise rebuilds its own for every request (sanitising some
# twenty components, about 0.1 ms of CPU per call, most of a call's own work after I/O).
USER_AGENT = f"sms-gateway Boto3/{boto3.__version__} lang/python#{sys.version_info.major}.{sys.version_info.minor}"
# The gateway builds every request itself: botocore's client-side validation would only repeat it.
DYNAMODB_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"max_attempts": 3, "mode": "standard"},
    max_pool_connections=50,
    parameter_validation=False,
    user_agent=USER_AGENT,
)


class NothingSent(Exception):
    """An answer not to be stored: raising it makes Powertools drop the in-progress record."""

    def __init__(self, answer: Answer) -> None:
        super().__init__("nothing was sent")
        self.answer = answer


class IdempotencyInProgress(GatewayError):
    status_code = 409
    code = "idempotency_in_progress"


class IdempotencyKeyReused(GatewayError):
    status_code = 422
    code = "idempotency_key_reused"


class Idempotency:
    def __init__(self, table_name: str, *, expires_after_seconds: int, client: Any) -> None:
        self.config = IdempotencyConfig(
            event_key_jmespath="[tenant, route, key]",
            payload_validation_jmespath="body",
            expires_after_seconds=expires_after_seconds,
            raise_on_no_idempotency_key=True,
        )
        self.persistence = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=client)

        @idempotent_function(data_keyword_argument="payload", persistence_store=self.persistence, config=self.config)
        def run(*, payload: dict[str, Any], send: Callable[[], Answer]) -> Answer:
            return send()

        self._run = run

    def register(self, context: LambdaContext) -> None:
        """Lets a record left by a timed-out invocation expire with the invocation, not in 24 h."""
        self.config.register_lambda_context(context)

    def __call__(self, *, tenant: str, route: str, key: str, body: Any, send: Callable[[], Answer]) -> Answer:
        payload = {"tenant": tenant, "route": route, "key": key, "body": body}
        try:
            answer: Answer = self._run(payload=payload, send=send)
        except NothingSent as signal:
            # Powertools dropped its record before re-raising: a retry with this key sends again.
            return signal.answer
        except IdempotencyAlreadyInProgressError:
            raise IdempotencyInProgress("A request with this Idempotency-Key is still being processed.") from None
        except IdempotencyValidationError:
            raise IdempotencyKeyReused("This Idempotency-Key was used with another request body.") from None
        except (IdempotencyPersistenceLayerError, IdempotencyPersistenceConnectionError) as exc:
            raise DependencyUnavailable(f"DynamoDB is unavailable ({type(exc).__name__})") from None
        return answer
