"""Provider credentials from Secrets Manager, cached for a configurable time.

A failure tells apart a secret that is missing or malformed (a deployment mistake: 500 naming the
secret) from Secrets Manager being out of reach (503: try later). Neither message carries any
part of the secret's value.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
import botocore.exceptions
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError
from botocore.config import Config
from pydantic import BaseModel, ValidationError

from smsgw.connections import held
from smsgw.errors import CredentialsInvalid, DependencyUnavailable

_MISSING_CODES = frozenset({"ResourceNotFoundException", "AccessDeniedException", "InvalidRequestException"})
# The gateway builds every request itself: botocore's client-side validation would only repeat it.
_BOTO_CONFIG = Config(
    connect_timeout=1, read_timeout=3, retries={"total_max_attempts": 2, "mode": "standard"}, parameter_validation=False
)


class CredentialStore[CredentialsT: BaseModel]:
    """Reads one provider's secret and validates it into that provider's credentials model."""

    def __init__(self, secret_id: str, model: type[CredentialsT], *, max_age: int) -> None:
        self.secret_id = secret_id
        self.model = model
        self.max_age = max_age
        self._provider: parameters.SecretsProvider | None = None
        self._lock = threading.Lock()

    def _secrets(self) -> parameters.SecretsProvider:
        with self._lock:
            if self._provider is None:
                # From boto3's default session, which the DynamoDB client shares: one loader reads
                # the SDK's endpoint and retry data once per instance, not once per client.
                client = held(boto3.client("secretsmanager", config=_BOTO_CONFIG))
                self._provider = parameters.SecretsProvider(boto3_client=client)
            return self._provider

    def get(self, *, force_fetch: bool = False) -> CredentialsT:
        try:
            value: Any = self._secrets().get(
                self.secret_id, transform="json", max_age=self.max_age, force_fetch=force_fetch
            )
        except TransformParameterError:
            raise CredentialsInvalid(f"secret {self.secret_id} is not a JSON object") from None
        except GetParameterError as exc:
            raise self._fetch_error(exc) from None
        if not isinstance(value, dict):
            raise CredentialsInvalid(f"secret {self.secret_id} is not a JSON object")
        try:
            return self.model.model_validate(value)
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
            raise CredentialsInvalid(
                f"secret {self.secret_id} does not hold valid credentials (fields: {', '.join(fields)})"
            ) from None

    def _fetch_error(self, exc: GetParameterError) -> Exception:
        # Powertools wraps every SDK error in GetParameterError; the SDK's own error is its context.
        cause = exc.__context__
        if isinstance(cause, botocore.exceptions.ClientError):
            code = cause.response.get("Error", {}).get("Code", "")
            if code in _MISSING_CODES:
                return CredentialsInvalid(f"secret {self.secret_id} cannot be read ({code})")
        return DependencyUnavailable("Secrets Manager is unavailable")
