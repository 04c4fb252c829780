"""Phone numbers in one canonical form: E.164 (`+8613800138000`).

A handset has many spellings (`13800138000`, `8613800138000`, `+8613800138000`,
`008613800138000`); every number is read once, where the request is validated, into its E.164
form, and quotas, idempotency, the message log and duplicate detection all see that form only.
Each provider client writes the form its wire protocol wants from it (`wire_*` below).

Mainland China mobile numbers, nearly every number the gateway sends to, are read here by their
one fixed shape: importing libphonenumber (`phonenumberslite`) costs ~25 ms of a cold start and its
validity data would refuse newly opened mainland ranges that the providers already serve. Every
other country is read by libphonenumber, imported on the first such number. The tests check the
mainland reading against libphonenumber's.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from types import ModuleType

from smsgw.lazy_packages import lazy_package

MAINLAND_CALLING_CODE = "86"
# The mainland mobile shape: 11 digits, 1 then 3-9 (the providers' own check).
_MAINLAND_NATIONAL = re.compile(r"1[3-9][0-9]{9}")
_MAINLAND = re.compile(r"(?:\+86|0086|86)?(1[3-9][0-9]{9})")
# An international number as a caller writes it: `+` or `00`, or nothing, then digits.
_INTERNATIONAL = re.compile(r"(?:\+|00)?([1-9][0-9]{6,14})")
_REGION = re.compile(r"[A-Z]{2}")

MAINLAND_FORMS = "11 digits, optionally after +86, 0086 or 86"


class PhoneError(ValueError):
    """A number the gateway cannot read; the message never repeats the number."""


@cache
def _library() -> ModuleType:
    # Its package's __init__ imports the as-you-type formatter, the text matcher and the short-number
    # rules too; the gateway parses, validates and formats (smsgw.lazy_packages).
    lazy_package("phonenumbers")
    import phonenumbers

    return phonenumbers


def mainland(text: str) -> str:
    """A mainland China mobile number, in any of its four spellings, as E.164."""
    match = _MAINLAND.fullmatch(text)
    if match is None:
        raise PhoneError(f"must be a mainland China mobile number ({MAINLAND_FORMS})")
    return f"+{MAINLAND_CALLING_CODE}{match.group(1)}"


def reads_as_mainland(text: str) -> bool:
    """Whether a number as written (`14155550123`) has the shape of a mainland one."""
    return _MAINLAND.fullmatch(text) is not None


def is_mainland(e164: str) -> bool:
    return e164.startswith("+86") and _MAINLAND_NATIONAL.fullmatch(e164[3:]) is not None


def international(text: str) -> str:
    """A number with its country code (`+85291234567`, `0085291234567`, `85291234567`), or a
    mainland number in any of its spellings, as E.164."""
    if _MAINLAND.fullmatch(text):
        return mainland(text)
    match = _INTERNATIONAL.fullmatch(text)
    if match is None:
        raise PhoneError("must be a mainland mobile number or a country code and number (+85291234567)")
    return _valid("+" + match.group(1), None)


def national(text: str, region: str) -> str:
    """A national number of `region` (ISO 3166-1 alpha-2, e.g. HK), or an E.164 number of it, as E.164."""
    if text.startswith("+"):
        e164 = international(text)
        if e164[1:].startswith(str(_library().country_code_for_region(region))):
            return e164
        raise PhoneError("is not a number of the request's country_code")
    if region == "CN":
        if not _MAINLAND_NATIONAL.fullmatch(text):
            raise PhoneError("must be an 11-digit mainland China mobile number")
        return f"+{MAINLAND_CALLING_CODE}{text}"
    if not text.isascii() or not text.isdigit() or not 4 <= len(text) <= 15:
        raise PhoneError("must be a national number of 4 to 15 digits, without the country code")
    return _valid(text, region)


def known_region(region: str) -> bool:
    """Whether `region` is an ISO 3166-1 alpha-2 code with a calling code of its own."""
    return _REGION.fullmatch(region) is not None and _library().country_code_for_region(region) != 0


def _valid(text: str, region: str | None) -> str:
    lib = _library()
    try:
        number = lib.parse(text, region)
    except lib.NumberParseException:
        raise PhoneError("is not a phone number") from None
    if not lib.is_valid_number(number):
        raise PhoneError("is not a valid phone number for its country")
    e164: str = lib.format_number(number, lib.PhoneNumberFormat.E164)
    if e164.startswith("+86") and not is_mainland(e164):
        raise PhoneError("must be a mainland China mobile number (landlines cannot receive SMS)")
    return e164


def calling_code(e164: str) -> str:
    """The country calling code of an E.164 number (`+85291234567` → `852`)."""
    if is_mainland(e164):
        return MAINLAND_CALLING_CODE
    lib = _library()
    return str(lib.parse(e164, None).country_code)


def wire_mainland(e164: str) -> str:
    """The 11 national digits (Polyv, Ronglian, and Aliyun for mainland numbers)."""
    if not is_mainland(e164):
        raise PhoneError("is not a mainland China mobile number")
    return e164[3:]


def wire_national(e164: str) -> str:
    """The national significant number, without the country code (Aliyun SendInterSms)."""
    return e164[1 + len(calling_code(e164)) :]


def wire_international(e164: str) -> str:
    """Country code and number without `+` (Aliyun SendBatchSms); mainland numbers as 11 digits."""
    return wire_mainland(e164) if is_mainland(e164) else e164[1:]


@lru_cache(maxsize=4096)  # a send asks it of each number up to four times (countries, guard, budget, metrics)
def region_of(e164: str) -> str:
    """The ISO 3166-1 alpha-2 region of an E.164 number (`+85291234567` → `HK`; mainland: `CN`)."""
    if is_mainland(e164):
        return "CN"
    lib = _library()
    region: str | None = lib.region_code_for_number(lib.parse(e164, None))
    if not region or region == "ZZ":
        raise PhoneError("is not a number of a known country")
    return region
