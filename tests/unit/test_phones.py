"""Canonical numbers: the gateway's own mainland reading agrees with libphonenumber's, every
spelling of a handset is one E.164 number, and each provider's wire form comes back from it."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw import phones
from smsgw.phones import PhoneError

PROPERTIES = settings(max_examples=400, deadline=None, derandomize=True, database=None)
mainland_national = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True).filter(str.isascii)
prefixes = st.sampled_from(["", "86", "+86", "0086"])


def library_e164(text: str, region: str | None = "CN") -> str:
    return phonenumbers.format_number(phonenumbers.parse(text, region), phonenumbers.PhoneNumberFormat.E164)


@PROPERTIES
@given(mainland_national, prefixes)
def test_mainland_spellings_agree_with_libphonenumber(number: str, prefix: str) -> None:
    text = prefix + number
    assert phones.mainland(text) == library_e164(text) == f"+86{number}"


@PROPERTIES
@given(mainland_national, prefixes, prefixes)
def test_two_spellings_of_one_handset_are_one_number(number: str, one: str, other: str) -> None:
    assert phones.mainland(one + number) == phones.mainland(other + number)
    assert phones.international(one + number) == phones.mainland(other + number)


@PROPERTIES
@given(st.text(alphabet="+0123456789 -", max_size=18))
def test_whatever_the_gateway_reads_as_mainland_libphonenumber_reads_the_same(text: str) -> None:
    try:
        ours = phones.mainland(text)
    except PhoneError:
        return
    assert library_e164(text) == ours
    assert phones.is_mainland(ours)


@PROPERTIES
@given(st.from_regex(r"1[0-9]{10}", fullmatch=True).filter(str.isascii))
def test_every_valid_mainland_mobile_number_is_accepted(number: str) -> None:
    parsed = phonenumbers.parse(number, "CN")
    is_mobile = phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.MOBILE
    if phonenumbers.is_valid_number(parsed) and is_mobile:
        assert phones.mainland(number) == library_e164(number)


@PROPERTIES
@given(st.sampled_from(["HK", "MO", "TW", "SG", "GB", "US", "JP", "FR", "DE", "AU"]), st.data())
def test_international_numbers_are_libphonenumber_s_e164(region: str, data: st.DataObject) -> None:
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    assert example is not None
    nsn = phonenumbers.national_significant_number(example)
    e164 = phones.national(nsn, region)
    assert e164 == phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    spelling = data.draw(st.sampled_from(["+", "00", ""]))
    assert phones.international(spelling + e164[1:]) == e164
    assert phones.wire_national(e164) == nsn


@pytest.mark.parametrize(
    ("e164", "mainland", "national", "international"),
    [
        ("+8613800138000", "13800138000", "13800138000", "13800138000"),
        ("+85291234567", None, "91234567", "85291234567"),
        ("+447911123456", None, "7911123456", "447911123456"),
    ],
)
def test_wire_forms(e164: str, mainland: str | None, national: str, international: str) -> None:
    if mainland is None:
        with pytest.raises(PhoneError):
            phones.wire_mainland(e164)
    else:
        assert phones.wire_mainland(e164) == mainland
    assert phones.wire_national(e164) == national
    assert phones.wire_international(e164) == international


@pytest.mark.parametrize(
    "text",
    [
        "",
        "+",
        "1380013800",
        "23800138000",
        "+8523800138000",
        "086-13800138000",
        "13800138000".translate({ord("0") + d: 0xFF10 + d for d in range(10)}),  # fullwidth digits
        "+86\n13800138000",
    ],
)
def test_what_is_not_a_mainland_mobile_number(text: str) -> None:
    with pytest.raises(PhoneError) as exc:
        phones.mainland(text)
    assert len(text) < 5 or text not in str(exc.value)


def test_a_mainland_number_costs_no_libphonenumber_import() -> None:
    phones._library.cache_clear()
    phones.mainland("+8613800138000")
    phones.international("8613800138000")
    phones.national("13800138000", "CN")
    assert phones._library.cache_info().misses == 0
