"""The unified route's function: POST /v1/messages, the template admin routes, and its queue."""

from smsgw.api import build_handler
from smsgw.routes import router as messages
from smsgw.routes import rules, templates
from smsgw.unified import router_runtime

handler = build_handler(
    "router",
    [messages.router, templates.router, rules.router],
    queue=messages.queue_operation,
    runtime=router_runtime,
)
