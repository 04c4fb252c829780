"""Every provider code in the provider facts is classified, and no unknown code is retryable."""

from __future__ import annotations

import pytest

from smsgw.outcomes import Status
from smsgw.providers import aliyun, ronglian
from smsgw.providers.base import http_status_class
from smsgw.providers.polyv import PER_NUMBER_STATUS

ALIYUN = {
    Status.RETRYABLE: [
        "isp.SYSTEM_ERROR",
        "InternalError",
        "ServiceUnavailable",
        "Throttling",
        "Throttling.User",
        "SignatureNonceUsed",
    ],
    Status.RATE_LIMITED: [
        "isv.BUSINESS_LIMIT_CONTROL",
        "isv.DAY_LIMIT_CONTROL",
        "isv.MONTH_LIMIT_CONTROL",
        "isv.BUSINESS_LIMIT_HOUR",
        "isv.BUSINESS_LIMIT_DAY",
    ],
    Status.AMBIGUOUS: ["isp.GATEWAY_ERROR"],
    Status.REJECTED: [
        "isv.MOBILE_NUMBER_ILLEGAL",
        "isv.MOBILE_COUNT_OVER_LIMIT",
        "isv.INVALID_PARAMETERS",
        "isv.INVALID_JSON_PARAM",
        "isv.TEMPLATE_MISSING_PARAMETERS",
        "isv.SMS_TEMPLATE_ILLEGAL",
        "isv.SMS_SIGNATURE_ILLEGAL",
        "isv.BLACK_KEY_CONTROL_LIMIT",
        "isv.PARAM_LENGTH_LIMIT",
        "isv.PARAM_NOT_SUPPORT_URL",
        "isv.AMOUNT_NOT_ENOUGH",
        "isv.OUT_OF_SERVICE",
        "isv.PRODUCT_UN_SUBSCRIPT",
        "isv.PRODUCT_UNSUBSCRIBE",
        "isv.ACCOUNT_NOT_EXISTS",
        "isv.ACCOUNT_ABNORMAL",
        "isp.RAM_PERMISSION_DENY",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "MissingPhoneNumbers",
        "InvalidTimeStamp.Expired",
        "isv.DENY_IP_RANGE",
        "isv.NOT_SUPPORTED_COUNTRY",
    ],
}

RONGLIAN = {
    Status.RETRYABLE: ["111000", "111050", "111099", "111111", "160000"],
    Status.RATE_LIMITED: ["160038", "160039", "160040", "160041", "160071"],
    Status.ACCEPTED: ["160054"],
    Status.AMBIGUOUS: ["160050", "160063", "160064"],
    Status.REJECTED: [
        "160056",
        "111109",
        "111106",
        "111128",
        "111142",
        "111143",
        "111169",
        "111182",
        "112300",
        "112311",
        "160032",
        "160033",
        "160049",
        "160034",
        "160042",
        "160043",
        "160045",
        "160048",
        "160053",
        "160055",
        "160065",
        *(str(code) for code in range(111100, 111109)),
        "111110",
        "111113",
        "113302",
        "160030",
        "160031",
        "160035",
        "160036",
        "160037",
        "160044",
        "160052",
        "160057",
        *(str(code) for code in range(160058, 160063)),
        "160070",
    ],
}


@pytest.mark.parametrize(("code", "status"), [(c, s) for s, codes in ALIYUN.items() for c in codes])
def test_aliyun_codes(code: str, status: Status) -> None:
    assert aliyun.classify_code(code, 200).status is status


@pytest.mark.parametrize("code", ["SignatureDoesNotMatch", "InvalidAccessKeyId.NotFound", "isp.RAM_PERMISSION_DENY"])
def test_aliyun_credential_errors_are_flagged(code: str) -> None:
    assert aliyun.classify_code(code, 400).auth_error


@pytest.mark.parametrize(("code", "status"), [(c, s) for s, codes in RONGLIAN.items() for c in codes])
def test_ronglian_codes(code: str, status: Status) -> None:
    assert ronglian.classify_code(code).status is status


def test_polyv_per_number_statuses() -> None:
    assert PER_NUMBER_STATUS[-1].status is Status.RATE_LIMITED
    assert PER_NUMBER_STATUS[-2].status is Status.REJECTED
    assert PER_NUMBER_STATUS[11].status is Status.RETRYABLE


@pytest.mark.parametrize("code", ["isv.SOMETHING_NEW", "Weird", ""])
@pytest.mark.parametrize("http_status", [200, 500, 503])
def test_unknown_aliyun_code_is_never_retryable(code: str, http_status: int) -> None:
    classified = aliyun.classify_code(code, http_status)
    assert classified.status is not Status.RETRYABLE
    assert not classified.retry_safe


@pytest.mark.parametrize("code", ["999999", "160999", "abc", "111112", "160051"])
def test_unknown_ronglian_code_is_never_retryable(code: str) -> None:
    classified = ronglian.classify_code(code)
    assert classified.status is Status.AMBIGUOUS
    assert not classified.retry_safe


@pytest.mark.parametrize(
    ("http_status", "status"),
    [
        (500, Status.RETRYABLE),
        (502, Status.RETRYABLE),
        (503, Status.RETRYABLE),
        (429, Status.RETRYABLE),
        (504, Status.AMBIGUOUS),
        (400, Status.REJECTED),
        (200, Status.AMBIGUOUS),
    ],
)
def test_http_status_without_a_readable_body(http_status: int, status: Status) -> None:
    assert http_status_class(http_status).status is status
