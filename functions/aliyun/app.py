"""The Aliyun function: the shared handler wired to its queue and the Aliyun routes."""

from smsgw import snapshot
from smsgw.api import build_handler
from smsgw.routes.aliyun import queue_operation, router

handler = build_handler(
    "aliyun", router, queue=queue_operation, refused=["POST /v1/aliyun/messages", "POST /v1/aliyun/batch-messages"]
)
snapshot.register()
