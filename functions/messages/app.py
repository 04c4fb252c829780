"""The message log reader: the shared handler wired to GET /v1/messages/{requestId}."""

from smsgw.api import build_handler
from smsgw.routes.messages import router

handler = build_handler("messages", router, docs=False)
