"""The Aliyun function: the shared handler wired to its queue and the Aliyun routes."""

from smsgw.api import build_handler
from smsgw.routes.aliyun import queue_operation, router

handler = build_handler("aliyun", router, queue=queue_operation)
