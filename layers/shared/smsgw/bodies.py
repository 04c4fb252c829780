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
import zlib
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


COMPRESS_ABOVE = 32 * 1024
"""A stored JSON document longer than this goes compressed: a 1000-number answer with every
provider's attempts is over DynamoDB's 400 KB item limit as text, a tenth of it compressed."""


def stored(document: Any) -> dict[str, Any]:
    """A JSON document as a DynamoDB attribute value: a string, or compressed bytes when long."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    if len(text) <= COMPRESS_ABOVE:
        return {"S": text}
    return {"B": zlib.compress(text.encode(), 6)}


def restored(value: dict[str, Any]) -> Any:
    """What `stored` wrote."""
    if "B" in value:
        return json.loads(zlib.decompress(value["B"]))
    return json.loads(value["S"])


def text_of(body: str, *, base64_encoded: bool) -> str:
    """The body as text: a base64-encoded body decoded, and refused unless it is UTF-8."""
    if not base64_encoded:
        return body
    try:
        return base64.b64decode(body, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise _invalid("body", "utf8_invalid", "The body is not valid UTF-8.") from None
