"""The Polyv function: the shared handler wired to its queue and the Polyv routes."""

from smsgw import snapshot
from smsgw.api import build_handler
from smsgw.routes.polyv import queue_operation, router

handler = build_handler("polyv", router, queue=queue_operation, refused=["POST /v1/polyv/messages"])
snapshot.register()
