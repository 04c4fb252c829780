"""The function's configuration: environment variables, validated once on first use."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from smsgw.errors import ConfigurationError

ProviderName = Literal["polyv", "aliyun", "ronglian"]


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    provider: ProviderName
    provider_secret_id: str = Field(min_length=1)
    secret_max_age_seconds: int = Field(default=300, ge=0)
    provider_connect_timeout: float = Field(default=3.0, gt=0)
    provider_read_timeout: float = Field(default=10.0, gt=0)
    provider_max_concurrency: int = Field(default=8, ge=1, le=64)
    ronglian_chunk_size: int = Field(default=100, ge=1, le=200)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values = {name: env[name.upper()] for name in cls.model_fields if name.upper() in env}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            names = sorted({str(e["loc"][0]).upper() for e in exc.errors()})
            raise ConfigurationError(f"invalid or missing environment variables: {', '.join(names)}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
