"""The unified route's function: POST /v1/messages, the template admin routes, and its queue."""

from smsgw import snapshot
from smsgw.api import build_handler
from smsgw.routes import router as messages
from smsgw.routes import rules, templates
from smsgw.unified import router_runtime

# Refused before the configuration table is read: a send without a body, a name and a number no rule allows.
handler = build_handler(
    "router",
    [messages.router, templates.router, rules.router],
    queue=messages.queue_operation,
    runtime=router_runtime,
    refused=["POST /v1/messages", "PUT /v1/templates/-", "GET /v1/opt-outs/1"],
)
snapshot.register()
