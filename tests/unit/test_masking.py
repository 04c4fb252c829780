"""Phone numbers in logs keep just enough to tell them apart."""

from __future__ import annotations

import pytest

from smsgw.observability import mask_phone


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("13800138000", "138****8000"),
        ("8613800138000", "861******8000"),
        ("+8613800138000", "861******8000"),
        ("91234567", "912*4567"),
        ("1234567", "*****67"),
        ("1234", "**34"),
    ],
)
def test_mask(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked
    assert len(mask_phone(phone)) == len(phone.lstrip("+"))
