"""The gateway's typed errors; each maps to one HTTP status and one stable error code."""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequest(GatewayError):
    status_code = 400
    code = "invalid_request"


class ConfigurationError(GatewayError):
    status_code = 500
    code = "configuration_error"


class CredentialsInvalid(GatewayError):
    """The provider's secret is missing or malformed; the message names the secret, never its contents."""

    status_code = 500
    code = "credentials_invalid"


class DependencyUnavailable(GatewayError):
    status_code = 503
    code = "dependency_unavailable"
