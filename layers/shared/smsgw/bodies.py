"""Request bodies read strictly: what a lenient parser would quietly change is refused instead.

`json.loads` keeps the last of two equal keys (`{"code": "1", "code": "2"}`): which one a caller
meant is not known, so the body is refused. A body API Gateway hands over base64-encoded (a binary
media type) must be UTF-8; text bodies reach the function already decoded, and bytes that were not
UTF-8 are U+FFFD there, which the request models refuse in every field sent to a provider.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from smsgw.errors import InvalidRequest


class DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise DuplicateKey
        found[key] = value
    return found


def _invalid(field: str, kind: str, message: str) -> InvalidRequest:
    return InvalidRequest(
        "The request is invalid; nothing was sent.", details=[{"field": field, "type": kind, "message": message}]
    )


def loads(text: str) -> Any:
    """JSON with no key given twice in any object."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except DuplicateKey:
        # Not named: a key can be anything a caller typed, a phone number included.
        raise _invalid("body", "json_duplicate_key", "An object of the body gives one key twice.") from None
    except (ValueError, RecursionError):
        raise _invalid("body", "json_invalid", "The body is not valid JSON.") from None


def text_of(body: str, *, base64_encoded: bool) -> str:
    """The body as text: a base64-encoded body decoded, and refused unless it is UTF-8."""
    if not base64_encoded:
        return body
    try:
        return base64.b64decode(body, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise _invalid("body", "utf8_invalid", "The body is not valid UTF-8.") from None
