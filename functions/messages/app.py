"""The message log reader: the shared handler wired to GET /v1/messages/{requestId} (docs at /v1/messages/docs)."""

from smsgw.api import build_handler
from smsgw.routes.messages import router

handler = build_handler("messages", router)
