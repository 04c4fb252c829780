"""Configuration is validated once, and a bad one says which variables are wrong."""

from __future__ import annotations

import pytest

from smsgw.config import Settings
from smsgw.errors import ConfigurationError


def test_reads_typed_values() -> None:
    settings = Settings.from_env(
        {
            "PROVIDER": "ronglian",
            "PROVIDER_SECRET_ID": "arn:x",
            "RONGLIAN_CHUNK_SIZE": "200",
            "PROVIDER_READ_TIMEOUT": "2.5",
        }
    )
    assert (settings.provider, settings.ronglian_chunk_size, settings.provider_read_timeout) == ("ronglian", 200, 2.5)
    assert settings.secret_max_age_seconds == 300


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"PROVIDER": "polyv"}, "PROVIDER_SECRET_ID"),
        ({"PROVIDER": "twilio", "PROVIDER_SECRET_ID": "x"}, "PROVIDER"),
        ({"PROVIDER": "ronglian", "PROVIDER_SECRET_ID": "x", "RONGLIAN_CHUNK_SIZE": "201"}, "RONGLIAN_CHUNK_SIZE"),
    ],
)
def test_names_what_is_wrong(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        Settings.from_env(environ)
