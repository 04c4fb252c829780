"""The message log reader: the shared handler wired to GET /v1/messages/{requestId} (docs at /v1/messages/docs)."""

from smsgw import snapshot
from smsgw.api import build_handler
from smsgw.routes.messages import router

# A request id longer than any is refused before the message log is read.
handler = build_handler("messages", router, refused=[f"GET /v1/messages/{'x' * 129}"])
snapshot.register()
