"""The receipts function: the providers' receipt routes, and the consumer of the receipts queue."""

from smsgw import snapshot
from smsgw.api import JSON_TYPES, XML_TYPES, build_handler
from smsgw.routes.receipts import router
from smsgw.workers import receipts_consumer

# A token shorter than any is refused before a receipt is queued.
handler = build_handler(
    "receipts",
    router,
    docs=False,
    accepts=JSON_TYPES | XML_TYPES,
    consume=receipts_consumer,
    refused=["POST /v1/receipts/aliyun/short", "POST /v1/receipts/ronglian/short"],
)
snapshot.register()
