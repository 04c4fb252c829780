"""The Ronglian function: the shared handler wired to its queue and the Ronglian routes."""

from smsgw import snapshot
from smsgw.api import build_handler
from smsgw.routes.ronglian import queue_operation, router

handler = build_handler("ronglian", router, queue=queue_operation, refused=["POST /v1/ronglian/messages"])
snapshot.register()
